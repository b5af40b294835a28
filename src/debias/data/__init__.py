"""Datasets: one module per dataset, each reading the real on-disk format into tensors + metadata."""
