"""Per-experiment glue between the config, the datasets, the runner and the tables."""
