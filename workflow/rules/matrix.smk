# The method x dataset matrix's rules (paths and functions: matrix_common.smk).
if MX is not None:
    for _ds in MX_DATASETS:
        _entry = MX["datasets"][_ds]
        _section = mx_section(_entry)

        rule:
            name:
                f"matrix_{_ds}"
            input:
                **mx_inputs(_entry),
            output:
                metrics=[mx_run(_ds, m, s) for m in MX_JOB_METHODS for s in MX["seeds"]],
            params:
                dataset=_ds,
                task=_entry.get("task", _ds),
                methods=mx_job_methods,
                seeds=MX["seeds"],
                state=lambda wc, _ds=_ds: [_paths.mx_state(RESULTS, _ds, m, s) for m in mx_job_methods(wc)
                                           for s in MX["seeds"]],
                entry=coco_sorted(_entry),
                # the methods' own entries (only this job's: another method's edit reruns nothing here)
                hparams=lambda wc: {m: MX["hparams"].get(m, {}) for m in mx_job_methods(wc)},
                model=coco_sorted(_section["model"]),
                train=coco_sorted(_section["train"]),
                image=coco_sorted(_section["image"]),
                device=config["device"],
            log:
                f"{RESULTS}/logs/matrix/{_ds}/{MX_JOB_NAME}.log",
            benchmark:
                f"{BENCH_JOBS}/matrix/{_ds}/{MX_JOB_NAME}.tsv"
            wildcard_constraints:
                method="|".join(MX_METHODS),
            threads: threads_of(_entry["resources"])
            resources:
                **res(_entry["resources"]),
            conda:
                "../../envs/torch.yaml"
            script:
                "../../scripts/matrix_train.py"

    rule matrix_table:
        input:
            metrics=[mx_run(d, m, s) for m in MX_METHODS for d in MX_DATASETS for s in MX["seeds"]],
        output:
            csv=report(f"{RESULTS}/tables/method_matrix.csv", caption="../report/method_matrix.rst",
                       category="Every method on every dataset", labels=report_label("the method × dataset matrix, tidy CSV")),
            md=f"{RESULTS}/tables/method_matrix.md",
            tex=f"{RESULTS}/tables/method_matrix.tex",
            html=report(f"{RESULTS}/tables/method_matrix.html", caption="../report/method_matrix.rst",
                        category="Every method on every dataset",
                        labels=report_label("the method × dataset matrix: test worst-group / average per cell")),
            png=report(f"{RESULTS}/figures/method_matrix.png", caption="../report/method_matrix.rst",
                       category="Every method on every dataset",
                       labels=report_label("the method × dataset matrix as a heatmap")),
            pdf=f"{RESULTS}/figures/method_matrix.pdf",
        params:
            methods=MX_METHODS,
            datasets=MX_DATASETS,
            scale=SCALE,
        log:
            f"{RESULTS}/logs/matrix/table.log",
        threads: 1
        resources:
            **res("aggregate"),
        conda:
            "../../envs/torch.yaml"
        script:
            "../../scripts/matrix_table.py"
