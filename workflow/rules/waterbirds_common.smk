# Waterbirds (paper 002, Table 1): paths, the training grid and input functions of the rules in waterbirds.smk
# (the paths and the grid: debias.paths).
from debias import paths as _paths
from debias.data.layout import waterbirds_metadata_file as _wb_metadata_file

WB = config.get("waterbirds")
WB_REPORT = "Waterbirds (002, Fisher-trace flatness vs GroupDRO)"
WB_RUNS = f"{RESULTS}/runs/waterbirds"
WB_STATE = f"{RESULTS}/state/waterbirds"
WB_PREPARED = f"{RESULTS}/prepared/waterbirds"
WB_EPS_PREFIX = _paths.WB_EPS_PREFIX  # the fisher_flat sweep's path segment; rows without a sweep use "default"


def waterbirds_outputs():
    if WB is None:
        return []
    out = expand(f"{RESULTS}/tables/waterbirds.{{ext}}", ext=["csv", "md", "tex", "html"])
    out += expand(f"{RESULTS}/figures/waterbirds_groups.{{ext}}", ext=["png", "pdf"])
    if wb_trace_rows():
        out += expand(f"{RESULTS}/tables/waterbirds_traces.{{ext}}", ext=["csv", "md", "tex", "html"])
        out += expand(f"{RESULTS}/figures/waterbirds_traces.{{ext}}", ext=["png", "pdf"])
    return out


def wb_class(row):
    return _paths.wb_class(WB, row)


def wb_variants(row):
    """A row's path segments: one per ε percentile, or just "default" (debias.paths.wb_variants)."""
    return _paths.wb_variants(WB, row)


def wb_keys():
    """(row, variant) of every training run of the table, in table order."""
    return _paths.wb_keys(WB)


def wb_trace_rows():
    """The rows whose models' traces the premise figure shows: the ERM rows (method class erm)."""
    return [] if WB is None else [r for r in WB["methods"] if wb_class(r) == "erm"]


def wb_run(row, variant, seed, name):
    return _paths.wb_run(RESULTS, row, variant, seed, name)


def wb_percentile(wc):
    """The ε percentile a job's variant names (None for "default")."""
    return _paths.wb_percentiles(WB, wc.row)[wc.variant]


# A training job trains one seed, or (seeds_per_job: all) every seed of its (row, variant).
WB_ALL_SEEDS = WB is not None and WB.get("seeds_per_job", 1) == "all"
WB_JOB_SEEDS = (WB["seeds"] if WB_ALL_SEEDS else ["{seed}"]) if WB is not None else []
WB_JOB_NAME = "all_seeds" if WB_ALL_SEEDS else "seed={seed}"


def wb_job_seeds(wc):
    return list(WB["seeds"]) if WB_ALL_SEEDS else [int(wc.seed)]


def wb_metrics(rows=None):
    return [wb_run(r, v, s, "metrics.json") for r, v in wb_keys() if rows is None or r in rows for s in WB["seeds"]]


def wb_bench_files():
    """Snakemake's benchmark file of every Waterbirds training job (gathered by rule job_costs)."""
    names = dict.fromkeys(WB_JOB_NAME.format(seed=s) for s in (WB["seeds"] if WB is not None else []))
    return [f"{BENCH_JOBS}/waterbirds/{r}/{v}/{n}.tsv" for r, v in wb_keys() for n in names]


def wb_data_input():
    """The metadata.csv the prepare job reads: the embedded folder's or the configured release's."""
    return str(_wb_metadata_file(WB["root"], WB["source"]))
