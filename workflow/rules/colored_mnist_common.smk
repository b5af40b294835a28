# Colored MNIST: paths and input functions of the rules in colored_mnist.smk (the paths: debias.paths).
from debias import paths as _paths

CM = config["colored_mnist"]
CM_SEEDS = CM["seeds"]
CM_ROWS = CM["methods"]
CM_SIGMA2 = _paths.sigma2_tags(CM)
CM_RUNS = f"{RESULTS}/runs/colored_mnist"
CM_STATE = f"{RESULTS}/state/colored_mnist"
CM_PREPARED = f"{RESULTS}/prepared/colored_mnist"
CM_REPORT = "Colored MNIST (003, Learning Not to Learn)"


def colored_mnist_outputs():
    return expand(
        f"{RESULTS}/{{kind}}/colored_mnist.{{ext}}",
        zip,
        kind=["tables"] * 4 + ["figures"] * 2,
        ext=["csv", "md", "tex", "html", "png", "pdf"],
    )


def cm_run(sigma2, method, seed, name):
    return _paths.cm_run(RESULTS, sigma2, method, seed, name)


def cm_bench(job_path, name):
    """Snakemake's benchmark file of a training job (wall time, CPU time, peak memory)."""
    return f"{BENCH_JOBS}/colored_mnist/{job_path}/{name}.tsv"


# A training job trains one seed, or (seeds_per_job: all) every seed of its (sigma2, method) cell; with
# sigma2_per_job: all, one job trains a method (a table row) at every sigma2.
if CM["seeds_per_job"] == 1:
    CM_JOB_SEEDS, CM_JOB_NAME = ["{seed}"], "seed={seed}"  # a job's seeds in its paths; its log / benchmark name
else:
    CM_JOB_SEEDS, CM_JOB_NAME = CM_SEEDS, "all_seeds"
if CM["sigma2_per_job"] == 1:
    CM_JOB_SIGMA2, CM_JOB_PATH = ["{sigma2}"], "sigma2={sigma2}/{method}"
else:
    CM_JOB_SIGMA2, CM_JOB_PATH = CM_SIGMA2, "all_sigma2/{method}"


def cm_job_seeds(wc):
    """The seeds one training job trains."""
    return [int(wc.seed)] if CM["seeds_per_job"] == 1 else list(CM_SEEDS)


def cm_job_sigma2(wc):
    """The sigma2 values (tags) one training job trains."""
    return [wc.sigma2] if CM["sigma2_per_job"] == 1 else list(CM_SIGMA2)


def cm_prepare_inputs(wc):
    """What a prepare job reads: MNIST, or (source: authors) the authors' file of each of its sigma2 values, so that a
    missing one stops a run that needs it before any job."""
    if CM["source"] != "authors":
        return MNIST_RAW
    from debias.data.layout import colored_mnist_authors_file

    return [str(colored_mnist_authors_file(CM["authors_dir"], float(v))) for v in cm_job_sigma2(wc)]


def cm_bench_files():
    names = dict.fromkeys(CM_JOB_NAME.format(seed=s) for s in CM_SEEDS)  # one per job, in seed order
    paths = dict.fromkeys(CM_JOB_PATH.format(sigma2=v, method=m) for v in CM_SIGMA2 for m in CM_ROWS)
    return [cm_bench(p, n) for p in paths for n in names]


def cm_init_from(method):
    from debias.config import method_entry

    return method_entry(method, CM["hparams"][method])[1].get("init_from")


# every configured row (not only the table's: an init_from row may start from a row outside the table)
CM_ROWS_FROM_INIT = [r for r in CM["hparams"] if cm_init_from(r)]
CM_ROWS_FROM_SCRATCH = [r for r in CM["hparams"] if not cm_init_from(r)]


def cm_train_inputs(wc):
    """The prepared data of every sigma2 of the job and, for init_from rows, the initial models (sigma2-major)."""
    out = {"data": [f"{CM_PREPARED}/sigma2={v}.pt" for v in cm_job_sigma2(wc)]}
    init = cm_init_from(wc.method)
    if init:
        out["init"] = [cm_run(v, init, s, "model.pt") for v in cm_job_sigma2(wc) for s in cm_job_seeds(wc)]
    return out
