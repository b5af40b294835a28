# COCO gender leakage (paper 000): data -> prepare -> train (split x augmentation x pairing x lr, GPU) ->
# logits -> leakage (dataset and model) -> Tables 1-3 and a figure. Paths and grid: coco_common.smk.

if COCO["source"] == "embedded":

    rule coco_embedded:
        output:
            coco_label_inputs(),
        params:
            generator=coco_sorted(COCO.get("embedded", {})),
        log:
            f"{RESULTS}/logs/data/coco_embedded.log",
        threads: 1
        resources:
            **res("prepare"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/coco_embedded.py"

elif config["allow_download"] and _coco_dl.missing(COCO):
    # defined only while files are missing (never deletes a user's COCO); without downloads the files have
    # no rule, so Snakemake stops before any job a run that needs them (config.py warns with the key)

    rule coco_download:
        output:
            [str(p) for p in _coco_dl.label_files(COCO)],
            [directory(str(d)) for d in _coco_dl.image_dirs(COCO)],
        params:
            section=coco_sorted(COCO),
        log:
            f"{RESULTS}/logs/data/coco_download.log",
        threads: 1
        resources:
            **res("prepare"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/coco_download.py"


rule coco_prepare:
    input:
        coco_label_inputs(),
        manifest=manifest_input("coco"),
    output:
        data=f"{COCO_PREPARED}/data.pt",
        labels=f"{COCO_PREPARED}/labels.pt",
        recipe=f"{COCO_PREPARED}/recipe.json",
    params:
        # only what the data depends on
        section=coco_sorted({k: COCO.get(k) for k in ("source", "root", "wang_dir", "split_seed", "gamma_seed", "image")}),
    log:
        f"{RESULTS}/logs/coco/prepare.log",
    threads: threads_of("prepare_photo")
    resources:
        **res("prepare_photo"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/coco_prepare.py"


# One job per (split, aug, pairing, lr) cell training its seeds, or (cells_per_job: all) one job training every
# cell: its paths, log and benchmark name come from coco_common.smk (coco_train_outputs, COCO_TRAIN_NAME).
rule coco_train:
    input:
        data=rules.coco_prepare.output.data,
        labels=rules.coco_prepare.output.labels,
        **pretrained_input("coco"),
    output:
        metrics=coco_train_outputs("metrics.json"),
        logits=coco_train_outputs("logits.pt"),
    params:
        **COCO_TRAIN_CELLS_PARAM,
        seeds=COCO["seeds"],
        state=coco_train_state,
        hparams=coco_train_hparams,
        model=coco_sorted(COCO["model"]),
        train=coco_sorted(COCO["train"]),
        image=coco_sorted(COCO["image"]),
        device=config["device"],
    log:
        f"{RESULTS}/logs/coco/{COCO_TRAIN_NAME}.log",
    benchmark:
        f"{BENCH_JOBS}/coco/{COCO_TRAIN_NAME}.tsv"
    wildcard_constraints:
        split="none|gamma[123]",
        aug=r"[A-Za-z0-9_]+",
        pairing="none|random|balanced",
        lr=r"\d(\.\d+)?e[-+]\d+",
    threads: threads_of("train")
    resources:
        **res("train"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/coco_train.py"


# One job per split, or (cells_per_job: all) one job for every split.
rule coco_dataset_leakage:
    input:
        labels=rules.coco_prepare.output.labels,
    output:
        coco_dataset_leakage_outputs(),
    params:
        **({"splits": COCO["splits"]} if COCO_ALL_CELLS else {}),
        attacker=coco_sorted(COCO["leakage"]),
    log:
        f"{RESULTS}/logs/coco/leakage/{'all_splits' if COCO_ALL_CELLS else 'dataset_split={split}'}.log",
    wildcard_constraints:
        split="none|gamma[123]",
    threads: 1
    resources:
        **res("leakage"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/coco_leakage.py"


# One job per model (cell and seed), or (cells_per_job: all) one job for every model of Table 3.
rule coco_model_leakage:
    input:
        labels=rules.coco_prepare.output.labels,
        logits=coco_model_leakage_logits(),
    output:
        [coco_model_leakage_path(*k) for k in coco_model_leakage_keys()],
    params:
        **({"models": [list(k) for k in coco_model_leakage_keys()]} if COCO_ALL_CELLS else {}),
        attacker=coco_sorted(COCO["leakage"]),
    log:
        f"{RESULTS}/logs/coco/leakage/"
        + ("all_models" if COCO_ALL_CELLS else "split={split}/{aug}/pairing={pairing}/lr={lr}/seed={seed}")
        + ".log",
    wildcard_constraints:
        split="none|gamma[123]",
        pairing="none|random|balanced",
    threads: 1
    resources:
        **res("leakage"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/coco_leakage.py"


# Wang's F1-matched dataset leakage (coco.f1_matched): one job per curve, or (cells_per_job: all) one job for all.
if coco_f1_curves():

    rule coco_f1_leakage:
        input:
            labels=rules.coco_prepare.output.labels,
        output:
            coco_f1_curve_outputs(),
        params:
            curves=coco_f1_curve_params,
            attacker=coco_sorted(COCO["leakage"]),
            rates=COCO["f1_matched"]["flip_rates"],
        log:
            f"{RESULTS}/logs/coco/leakage/f1_curve/{'all' if COCO_ALL_CELLS else '{curve}'}.log",
        wildcard_constraints:
            curve=r"balanced|unbalanced_split=(none|gamma[123])",
        threads: COCO["f1_matched"]["workers"]
        resources:
            # the job and, with workers > 1, that many spawned worker processes
            **res("leakage", processes=1 + (COCO["f1_matched"]["workers"] if COCO["f1_matched"]["workers"] > 1 else 0)),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/coco_f1_leakage.py"


# G2 calibration: `snakemake coco_calibration` (docs/coco.md); not part of `all`.
if COCO.get("calibration"):

    rule coco_calibration_train:
        input:
            data=rules.coco_prepare.output.data,
            labels=rules.coco_prepare.output.labels,
            **pretrained_input("coco"),
        output:
            metrics=[f"{COCO_CAL}/train_layers={{train_layers}}/split={{split}}/{{aug}}/pairing={{pairing}}/lr={{lr}}/"
                     f"seed={s}/metrics.json" for s in COCO["seeds"]],
            logits=[f"{COCO_CAL}/train_layers={{train_layers}}/split={{split}}/{{aug}}/pairing={{pairing}}/lr={{lr}}/"
                    f"seed={s}/logits.pt" for s in COCO["seeds"]],
        params:
            seeds=COCO["seeds"],
            state=lambda wc: [f"{COCO_STATE}/calibration/train_layers={wc.train_layers}/lr={wc.lr}/seed={s}.pt"
                              for s in COCO["seeds"]],
            hparams=lambda wc: coco_sorted({**COCO["hparams"][wc.aug], "train_layers": wc.train_layers}),
            model=coco_sorted(COCO["model"]),
            train=coco_sorted(COCO["train"]),
            image=coco_sorted(COCO["image"]),
            device=config["device"],
        log:
            f"{RESULTS}/logs/coco/calibration/train_layers={{train_layers}}/split={{split}}/{{aug}}/pairing={{pairing}}/lr={{lr}}.log",
        benchmark:
            f"{BENCH_JOBS}/coco_calibration/train_layers={{train_layers}}/split={{split}}/{{aug}}/pairing={{pairing}}/lr={{lr}}.tsv"
        wildcard_constraints:
            train_layers="head|all",
            split="none|gamma[123]",
            aug=r"[A-Za-z0-9_]+",
            pairing="none|random|balanced",
            lr=r"\d(\.\d+)?e[-+]\d+",
        threads: threads_of("train")
        resources:
            **res("train"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/coco_train.py"

    rule coco_calibration:
        input:
            metrics=[path for _, path in coco_calibration_metrics()],
            paper="config/paper_values.yaml",
        output:
            csv=f"{RESULTS}/tables/coco_g2_calibration.csv",
            md=f"{RESULTS}/tables/coco_g2_calibration.md",
        params:
            train_layers=[tl for tl, _ in coco_calibration_metrics()],
            augmentation=COCO["calibration"]["augmentation"],
            configured=COCO["hparams"][COCO["calibration"]["augmentation"]]["train_layers"],
            scale=SCALE,
        log:
            f"{RESULTS}/logs/coco/calibration/table.log",
        threads: 1
        resources:
            **res("aggregate"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/coco_calibration.py"


rule coco_tables:
    input:
        recipe=rules.coco_prepare.output.recipe,
        metrics=coco_table2_metrics(),
        dataset=expand(f"{COCO_LEAK}/dataset/split={{split}}.json", split=COCO["splits"]),
        model=[coco_model_leakage(*k) for k in coco_table3_keys()],
        model_metrics=coco_table3_metrics(),
        f1_curves=[coco_f1_curve_path(c) for c in coco_f1_curves()],
        paper="config/paper_values.yaml",
    output:
        splits_csv=report(f"{RESULTS}/tables/coco_splits.csv", caption="../report/coco_splits.rst",
                          category=COCO_REPORT, labels=report_label("the paper's Table 1, tidy CSV")),
        splits_md=f"{RESULTS}/tables/coco_splits.md",
        splits_tex=f"{RESULTS}/tables/coco_splits.tex",
        splits_html=report(f"{RESULTS}/tables/coco_splits.html", caption="../report/coco_splits.rst",
                           category=COCO_REPORT, labels=report_label("the paper's Table 1: images per split and gender")),
        map_csv=report(f"{RESULTS}/tables/coco_map.csv", caption="../report/coco_map.rst",
                       category=COCO_REPORT, labels=report_label("the paper's Table 2, tidy CSV")),
        map_md=f"{RESULTS}/tables/coco_map.md",
        map_tex=f"{RESULTS}/tables/coco_map.tex",
        map_html=report(f"{RESULTS}/tables/coco_map.html", caption="../report/coco_map.rst",
                        category=COCO_REPORT, labels=report_label("the paper's Table 2: test mAP per learning rate and augmentation")),
        leakage_csv=report(f"{RESULTS}/tables/coco_leakage.csv", caption="../report/coco_leakage.rst",
                           category=COCO_REPORT, labels=report_label("the paper's Table 3, tidy CSV")),
        leakage_md=f"{RESULTS}/tables/coco_leakage.md",
        leakage_tex=f"{RESULTS}/tables/coco_leakage.tex",
        leakage_html=report(f"{RESULTS}/tables/coco_leakage.html", caption="../report/coco_leakage.rst",
                            category=COCO_REPORT, labels=report_label("the paper's Table 3: dataset and model leakage, bias amplification")),
        png=report(f"{RESULTS}/figures/coco_leakage.png", caption="../report/coco_figure.rst",
                   category=COCO_REPORT, labels=report_label("the paper's Table 3, plotted: leakage and amplification per split")),
        pdf=f"{RESULTS}/figures/coco_leakage.pdf",
        **coco_f1_figure_outputs(),
    params:
        splits=COCO["splits"],
        augmentations=COCO["augmentations"],
        pairings=COCO["pairings"],
        attacker=coco_sorted(COCO["leakage"]),
        model_keys=coco_table3_keys(),
        f1_curve_keys=list(coco_f1_curves()),
        scale=SCALE,
    log:
        f"{RESULTS}/logs/coco/tables.log",
    threads: 1
    resources:
        **res("aggregate"),
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/coco_tables.py"
