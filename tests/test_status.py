"""`python -m debias.status`: per table, the runs done, running (epoch k of n, read from the engine's state) and not
started, from the config alone, without snakemake, without torch unless a state exists, writing nothing."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake, write_config
from debias import paths, status


def mini_config(tmp_path, mutate=lambda cfg: None):
    path = write_config(tmp_path, mutate)
    return path, yaml.safe_load(path.read_text())


def write_metrics(run):
    Path(run.metrics).parent.mkdir(parents=True, exist_ok=True)
    Path(run.metrics).write_text(json.dumps({"run": run.run_id}))


def engine_state(run, epochs_done, epochs):
    """A resumable state saved by the engine itself: a colored MNIST run of ``epochs`` epochs killed in the epoch
    after ``epochs_done`` (3 steps per epoch), its state at ``run.state`` under its run id."""
    import torch

    from debias import methods
    from debias.engine import RunSpec, fit
    from debias.models import colored_mnist_backbone

    g = torch.Generator().manual_seed(0)
    n = 96
    train = {"x": (torch.rand(n, 3, 28, 28, generator=g) * 255).to(torch.uint8),
             "y": torch.randint(0, 10, (n,), generator=g),
             "bias": torch.randint(0, 8, (n, 3, 14, 14), generator=g), "group": torch.arange(n) % 2}
    method = methods.get("baseline")(colored_mnist_backbone(4, 10, 8, [0.5] * 3, [0.25] * 3),
                                     dict(epochs=epochs, lr=0.05, momentum=0.9, weight_decay=5e-4, lr_step_epochs=2,
                                          lr_gamma=0.5))
    update, calls = method.update, {"n": 0}

    class Killed(Exception):
        pass

    def dying(batch):
        calls["n"] += 1
        if calls["n"] == epochs_done * 3 + 2:
            raise Killed
        return update(batch)

    method.update = dying
    Path(run.state).parent.mkdir(parents=True, exist_ok=True)
    spec = RunSpec(run_id=run.run_id, seed=0, epochs=epochs, batch_size=32, state_path=Path(run.state),
                   checkpoint_every_s=0, progress=False, eval_every=0)
    with pytest.raises(Killed):
        fit(method, {"train": train, "test": {k: v[:32] for k, v in train.items() if k != "bias"}}, spec)
    assert Path(run.state).is_file()


def tree(root):
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(root).rglob("*")}


def test_counts_of_a_results_tree_with_done_running_and_not_started_runs(tmp_path):
    path, cfg = mini_config(tmp_path)
    runs = paths.training_runs(cfg)
    cm = runs["colored_mnist"]
    c, rw = cfg["colored_mnist"], cfg["reweighting"]
    n_cm = len(c["sigma2"]) * len(c["methods"]) * len(c["seeds"])
    n_ff = len(rw["fairface"]["shares"]) * len(rw["methods"]) * len(rw["seeds"]) + len(rw["seeds"])  # + balanced
    n_grid = len(rw["l2rw_mnist"]["shares"]) * len(rw["methods"]) * len(rw["seeds"])
    n_wb = len(runs["waterbirds"])
    epochs = c["hparams"]["baseline"]["epochs"]
    assert epochs >= 3 and len(cm) == n_cm == 7 * 5 * 3  # sigma2 x methods x seeds of config/mini.yaml
    for run in cm[:7]:
        write_metrics(run)
    baseline = [r for r in cm[7:] if r.row == "baseline"][0]
    engine_state(baseline, epochs_done=2, epochs=epochs)
    for run in runs["waterbirds"]:
        write_metrics(run)
    (tmp_path / "results/tables").mkdir(parents=True)
    (tmp_path / "results/tables/waterbirds.csv").write_text("x\n")
    # a done run whose state was not removed yet counts as done
    Path(runs["l2rw_mnist"][0].state).parent.mkdir(parents=True, exist_ok=True)
    Path(runs["l2rw_mnist"][0].state).write_bytes(b"")
    write_metrics(runs["l2rw_mnist"][0])

    before = tree(tmp_path / "results")
    tables = {t.name: t for t in status.status(cfg)}
    assert tree(tmp_path / "results") == before  # nothing written

    t = tables["colored_mnist"]
    assert (len(t.done), len(t.running), len(t.not_started)) == (7, 1, n_cm - 8)
    assert t.running[baseline.run_id].text() == f"epoch 2 of {epochs}"
    assert t.tables == {str(tmp_path / "results/tables/colored_mnist.csv"): False}
    assert (len(tables["waterbirds"].done), len(tables["waterbirds"].not_started)) == (n_wb, 0) and n_wb == 10
    assert all(tables["waterbirds"].tables.values())
    assert (len(tables["l2rw_mnist"].done), len(tables["l2rw_mnist"].running)) == (1, 0)
    assert len(tables["fairface_reweighting"].not_started) == n_ff == 13 * 6 * 3 + 3
    assert tables["coco"].leakage == (0, 24)
    assert not tables["claims"].runs and tables["claims"].tables

    text = status.report(cfg, str(path))
    assert (f"colored_mnist         {n_cm} runs: 7 done, 1 running (epoch 2 of {epochs}), {n_cm - 8} not started; "
            "table: missing") in text
    assert f"waterbirds            {n_wb} runs: {n_wb} done, 0 running, 0 not started; table: present" in text
    # the matrix: 16 methods x 4 datasets x 2 seeds, none started
    assert "method_matrix         128 runs: 0 done, 0 running, 128 not started; table: missing" in text
    n_coco = len(runs["coco"])
    total = n_cm + n_ff + n_grid + n_wb + n_coco + 128
    assert re.search(rf"total +{total} runs: {n_wb + 8} done, 1 running, {total - n_wb - 9} not started; "
                     r"tables: 1 of 9 present", text)
    listed = status.report(cfg, str(path), list_runs=True)
    assert f"running      {baseline.run_id}: epoch 2 of {epochs}, state saved" in listed
    assert f"not started  {cm[-1].run_id}" in listed


def test_a_batched_state_marks_every_run_of_its_batch(tmp_path):
    """train.batch_runs > 1: the batch's state sits at its first run's state path and lists every run id."""
    import torch

    from debias.io import torch_save

    _, cfg = mini_config(tmp_path)
    cm = paths.training_runs(cfg)["colored_mnist"]
    first, second = cm[0], cm[1]  # seeds 0 and 1 of one cell
    epochs = cfg["colored_mnist"]["hparams"]["baseline"]["epochs"]
    engine_state(first, epochs_done=1, epochs=epochs)
    state = torch.load(first.state, weights_only=False)
    state["run_ids"] = [first.run_id, second.run_id]
    torch_save(state, first.state)
    t = {t.name: t for t in status.status(cfg)}["colored_mnist"]
    assert set(t.running) == {first.run_id, second.run_id}
    assert f"2 running (epoch 1 of {epochs})" in status.table_line(t, 13)


def test_epochs_of_a_step_counted_run_agree_with_the_engine():
    from debias.engine import RunSpec, run_length

    cfg = yaml.safe_load((ROOT / "config/mini.yaml").read_text())
    full = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    carved = yaml.safe_load((ROOT / "config/mini.yaml").read_text())  # the 5 + 5 validation images change the count
    carved["reweighting"]["fairface"].update(n_train=400, val_from_budget=True)
    carved["reweighting"]["train"]["batch_size"] = 10
    carved["reweighting"]["fairface"]["hparams"]["baseline"] = {**cfg["reweighting"]["fairface"]["hparams"]["baseline"],
                                                                "steps": 400}
    for config, exp in ((cfg, "fairface"), (cfg, "l2rw_mnist"), (full, "fairface"), (full, "l2rw_mnist"),
                        (carved, "fairface")):
        sec = config["reweighting"][exp]
        for run in paths.training_runs(config)[paths.RW_TABLES[exp]]:
            hp = sec["hparams"][run.row]
            batch = hp.get("batch_size", config["reweighting"]["train"]["batch_size"])
            n_fit = sec["n_train"] - (2 * sec["n_val_per_class"] if sec["val_from_budget"] else 0)
            spec = RunSpec(run_id=run.run_id, seed=0, epochs=None, max_steps=hp["steps"], batch_size=batch,
                           state_path=Path("unused"))
            assert status.total_epochs(config, run) == run_length(spec, n_fit)[2], run.run_id


def test_the_runs_are_the_workflows_training_outputs(tmp_path):
    """The same paths as the rules (both build them with debias.paths): every metrics.json of the four papers'
    experiments and of the method x dataset matrix in a dry run of `all`."""
    path, cfg = mini_config(tmp_path)
    proc = snakemake("-n", "--forceall", "--cores", 2, "--configfile", path, check=True)
    runs = f"{cfg['results']}/runs/"
    experiments = ("colored_mnist", "fairface", "l2rw_mnist", "waterbirds", "coco", "matrix")
    outputs = {p.strip() for line in proc.stdout.splitlines() if line.strip().startswith("output:")
               for p in line.split(":", 1)[1].split(", ")
               if p.strip().endswith("/metrics.json") and p.strip().removeprefix(runs).split("/")[0] in experiments}
    expected = {r.metrics for runs in paths.training_runs(cfg).values() for r in runs}
    assert outputs == expected


def test_command_line_without_torch_or_snakemake(tmp_path):
    path, _ = mini_config(tmp_path)
    code = ("import sys, time; t = time.monotonic(); from debias.status import main; "
            "rc = main(['--configfile', sys.argv[1]]); assert time.monotonic() - t < 5, 'slow'; "
            "assert 'torch' not in sys.modules and 'snakemake' not in sys.modules, 'imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "colored_mnist" in proc.stdout and "0 done" in proc.stdout and "not there yet" in proc.stdout
    assert not (tmp_path / "results").exists()


def test_unknown_or_bad_config_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert status.main(["--configfile", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"config file '{missing}' not found" in err and "Traceback" not in err
    bad = write_config(tmp_path, lambda c: c["colored_mnist"].update(seeds="zero"))
    assert status.main(["--configfile", str(bad)]) == 2
    assert "config key colored_mnist.seeds" in capsys.readouterr().err


def test_several_configfiles_are_merged_key_by_key_as_snakemake_does(tmp_path, capsys):
    """`--configfile a.yaml b.yaml`: b's keys replace a's at every depth, a's other keys stay (Snakemake's rule)."""
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("results: results/overlay\ncolored_mnist:\n  sigma2: [0.030]\n"
                       "reweighting:\n  l2rw_mnist:\n    shares: [0.95]\n")
    mini = yaml.safe_load((ROOT / "config/mini.yaml").read_text())
    merged = status.load_config(ROOT / "config/mini.yaml", overlay)
    assert merged["results"] == "results/overlay" and merged["colored_mnist"]["sigma2"] == [0.030]
    assert merged["colored_mnist"]["hparams"] == mini["colored_mnist"]["hparams"]  # siblings stay mini's
    assert merged["reweighting"]["l2rw_mnist"]["shares"] == [0.95]
    assert merged["reweighting"]["l2rw_mnist"]["n_train"] == mini["reweighting"]["l2rw_mnist"]["n_train"]
    assert merged["reweighting"]["fairface"] == mini["reweighting"]["fairface"]
    runs = paths.training_runs(merged)
    cm, rw = mini["colored_mnist"], mini["reweighting"]
    assert len(runs["colored_mnist"]) == len(cm["methods"]) * len(cm["seeds"])
    assert len(runs["l2rw_mnist"]) == len(rw["methods"]) * len(rw["seeds"])
    assert status.main(["--configfile", str(ROOT / "config/mini.yaml"), str(overlay)]) == 0
    assert "results/overlay" in capsys.readouterr().out
