# Raw data: MNIST in torchvision's raw IDX layout, either downloaded or written from the embedded digits.
from debias.data.mnist import raw_paths as _mnist_raw_paths

MNIST_CFG = config["mnist"]
MNIST_RAW = [str(p) for p in _mnist_raw_paths(MNIST_CFG["root"])]

if MNIST_CFG["source"] == "embedded":

    rule mnist_embedded:
        output:
            MNIST_RAW,
        params:
            test_per_class=MNIST_CFG.get("test_per_class", 100),
        log:
            f"{RESULTS}/logs/data/mnist_embedded.log",
        threads: 1
        resources:
            **res("prepare"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/mnist_embedded.py"

elif config["allow_download"] and any(not Path(p).is_file() for p in MNIST_RAW):
    # defined only while files are missing, so a forced rerun never deletes a user's MNIST; without downloads the
    # files have no rule, so Snakemake stops before any job a run that needs them (config.py warns with the key)

    rule mnist_download:
        output:
            MNIST_RAW,
        params:
            mirrors=MNIST_CFG.get("mirrors", []),
        log:
            f"{RESULTS}/logs/data/mnist_download.log",
        threads: 1
        resources:
            **res("prepare"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/mnist_download.py"


# Pretrained weights: the download rule (PRETRAINED, PRETRAINED_MISSING and pretrained_input: common.smk).
if config["allow_download"] and PRETRAINED_MISSING:
    # defined only while files are missing (never deletes a user's file), one job per file however many jobs read
    # it; without downloads the files have no rule, so a run that needs them stops before any job (config.py warns)

    rule pretrained_download:
        output:
            str(Path(PRETRAINED["root"]) / "{name}"),
        params:
            mirrors=PRETRAINED["mirrors"],
        log:
            f"{RESULTS}/logs/data/pretrained_download/{{name}}.log",
        wildcard_constraints:
            name="|".join(_re.escape(p.name) for p in PRETRAINED_MISSING),
        threads: 1
        resources:
            **res("prepare"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/pretrained_download.py"


# Manifests of the raw data, an input of every prepare rule (MANIFESTS, RAW_DATASETS, manifest_input: common.smk):
# written by this rule where a job of this run writes the raw data first (downloads, the mini scale's embedded data).
rule data_manifest:
    input:
        lambda wc: RAW_DATASETS[wc.dataset].anchors,
    output:
        f"{MANIFESTS}/{{dataset}}.tsv",
    log:
        f"{RESULTS}/logs/data/manifest_{{dataset}}.log",
    wildcard_constraints:
        dataset="|".join(RAW_DATASETS),
    localrule: True
    threads: 1
    run:
        _manifest.write(config, wildcards.dataset, output[0], log[0])
