# Claims: the check of config/claims.yaml and the input functions of the rule in claims.smk. The claims file is
# checked here, while the DAG is built, like the config: an unknown table, column, key or method stops the run
# before any job, naming the claim and the key.
from debias.claims_spec import CLAIMS_FILE
from debias.claims_spec import ClaimsError as _ClaimsError
from debias.claims_spec import load as _load_claims
from debias.claims_tables import TABLES as _CLAIMS_TABLES

# The report's first category: Snakemake's report lists categories in alphabetical order (localeCompare), and
# this name sorts before every other (Benchmarks, COCO ..., Colored MNIST ..., Example reweighting ..., Waterbirds ...)
CLAIMS_REPORT = "All four papers: which claims reproduce"

try:
    _load_claims(CLAIMS_FILE, Path(workflow.basedir) / "schemas" / "claims.schema.yaml", config)
except _ClaimsError as _err:
    if os.environ.get(_VERBOSE_ENV):
        raise
    raise SystemExit(f"Error: {_err}")


def claims_tables():
    """The tidy CSVs this run writes that claims may read (debias.claims_tables); a claim on any other is `not run`."""
    names = {f"{RESULTS}/tables/{t.file}" for t in _CLAIMS_TABLES.values()}
    outputs = colored_mnist_outputs() + reweighting_outputs() + coco_outputs() + waterbirds_outputs()
    return [str(f) for f in outputs if str(f) in names]


def claims_runs():
    """Table -> the metrics.json of its runs: per-seed values, so that a difference of two cells is paired by seed.
    Not inputs: the tables depend on them already, and a claim falls back to the table's mean, std and n (Welch)
    where they are gone or differ from the table."""
    runs = {"colored_mnist": expand(cm_run("{sigma2}", "{method}", "{seed}", "metrics.json"), sigma2=CM_SIGMA2,
                                    method=CM_ROWS, seed=CM_SEEDS),
            "fairface_reweighting": rw_metrics("fairface"), "l2rw_mnist": rw_metrics("l2rw_mnist")}
    if WB is not None:
        runs["waterbirds"] = wb_metrics()
    if COCO is not None:
        runs["coco_map"] = coco_table2_metrics()
    return runs


def claims_outputs():
    return [f"{RESULTS}/tables/claims.csv", f"{RESULTS}/tables/claims.md", f"{RESULTS}/figures/claims.png",
            f"{RESULTS}/figures/claims.pdf"]
