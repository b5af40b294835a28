# The method x dataset matrix: paths, and the input functions of the rules in matrix.smk.
# (docs/matrix.md) Every method of matrix.methods on every dataset of matrix.datasets,
# from the experiments' prepared data; a job per (dataset, method), or (methods_per_job: all) one per dataset. A method
# a dataset cannot feed gets an `n/a` record from its job (deciding needs torch, which a cluster's driver may lack).
from debias import paths as _paths

MX = config.get("matrix")


def matrix_outputs():
    if MX is None:
        return []
    return [f"{RESULTS}/tables/method_matrix.{e}" for e in ("csv", "md", "tex", "html")] + [
        f"{RESULTS}/figures/method_matrix.{e}" for e in ("png", "pdf")]


if MX is not None:
    MX_DATASETS = _paths.mx_datasets(config)  # those whose `from` section the config has
    MX_METHODS = list(MX["methods"])
    MX_JOB_METHODS = ["{method}"] if MX["methods_per_job"] == 1 else MX_METHODS
    MX_JOB_NAME = "{method}" if MX["methods_per_job"] == 1 else "all_methods"

    def mx_section(entry):
        """The dataset's model / train / image: its experiment's section (``from``), the entry's own keys over it."""
        base = (config.get(entry["from"]) or {}) if "from" in entry else {}
        return {k: {**(base.get(k) or {}), **(entry.get(k) or {})} for k in ("model", "train", "image")}

    def mx_inputs(entry):
        """The prepared files a dataset's runs read (``inputs``, {results} and {share} replaced), and the pretrained weights its
        experiment's model starts from."""
        share = {"share": _paths.share_tag(entry["share"])} if "share" in entry else {}
        files = {role: path.format(results=RESULTS, **share) for role, path in entry["inputs"].items()}
        return {**files, **(pretrained_input(entry["from"]) if "from" in entry else {})}

    def mx_run(dataset, method, seed):
        return _paths.mx_run(RESULTS, dataset, method, seed)

    def mx_job_methods(wc):
        return [wc.method] if MX["methods_per_job"] == 1 else MX_METHODS


def mx_bench_files():
    """The benchmark file of every matrix job (rule job_costs)."""
    if MX is None:
        return []
    names = MX_METHODS if MX["methods_per_job"] == 1 else [MX_JOB_NAME]
    return [f"{BENCH_JOBS}/matrix/{d}/{n}.tsv" for d in MX_DATASETS for n in names]
