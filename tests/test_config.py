import copy
import re
from pathlib import Path

import pytest
import yaml

from debias.config import ConfigError, check

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def load(name="config.yaml"):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def test_shipped_configs_are_valid():
    check(load("config.yaml"), SCHEMA)
    check(load("mini.yaml"), SCHEMA)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["colored_mnist"]["methods"].append("nope"), r"colored_mnist\.hparams: no entry for method row 'nope'"),
        (lambda c: c["colored_mnist"]["hparams"]["gray"].update(method="nope"),
         r"colored_mnist\.hparams\.gray\.method: unknown method 'nope'; expected one of baseline, blindeye, .*gray, .*hardmining"),
        (lambda c: c["colored_mnist"]["hparams"]["baseline"].update(lr="fast"),
         r"colored_mnist\.hparams\.baseline\.lr: 'fast' is not of type 'number'"),
        (lambda c: c["colored_mnist"]["sigma2"].append(0.07),
         r"colored_mnist\.sigma2\[7\]: 0\.07 is not one of \[0\.02, 0\.025"),
        (lambda c: c["colored_mnist"]["seeds"].__setitem__(0, -1), r"colored_mnist\.seeds\[0\]: -1 is less than"),
        (lambda c: c["colored_mnist"]["hparams"]["lnl"].pop("grl_factor"),
         r"colored_mnist\.hparams\.lnl: method 'lnl' needs 'grl_factor'"),
        (lambda c: c["colored_mnist"]["hparams"]["lnl"].update(init_from="nope"),
         r"colored_mnist\.hparams\.lnl\.init_from: 'nope' is not a row of the table"),
        (lambda c: c.update(device="tpu"), r"config key device: 'tpu' is not one of"),
        # an unknown key would be silently unused: refused with the nearest key the method takes
        (lambda c: c["colored_mnist"]["hparams"].__setitem__("blindeye", {**c["colored_mnist"]["hparams"]["blindeye"],
                                                                          "lr_gama": 0.5}),
         r"colored_mnist\.hparams\.blindeye\.lr_gama: method 'blindeye' takes no 'lr_gama' \(did you mean "
         r"'lr_gamma'\?\); it takes alpha, batch_size, epochs, init_from, lr, lr_gamma, lr_halve_second_half, "
         r"lr_step_epochs, momentum, select, steps, weight_decay$"),
        (lambda c: c["reweighting"]["fairface"]["hparams"].__setitem__("l2rw", {
            **c["reweighting"]["fairface"]["hparams"]["l2rw"], "meta_gradeint": "forward"}),
         r"reweighting\.fairface\.hparams\.l2rw\.meta_gradeint: method 'l2rw' takes no 'meta_gradeint' \(did you "
         r"mean 'meta_gradient'\?\)"),
    ],
)
def test_bad_configs_name_key_and_expectation(mutate, message):
    cfg = copy.deepcopy(load())
    mutate(cfg)
    with pytest.raises(ConfigError, match=message):
        check(cfg, SCHEMA)


def set_key(path, value):
    """A mutation setting the config key ``path`` ("a.b[0].c" without brackets: "a.b.0.c") to ``value``."""
    def mutate(cfg):
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = cfg
        for p in parents:
            node = node[p]
        node[last] = value
    return mutate


@pytest.mark.parametrize(
    "path, value, error",
    [
        ("reweighting.fairface.n_train", "x", "reweighting.fairface.n_train: 'x' is not of type 'integer'"),
        ("reweighting.fairface.padding", 0.5, "reweighting.fairface.padding: 0.5 is not one of [0.25, 1.25]"),
        ("reweighting.l2rw_mnist.shares.0", 2,
         "reweighting.l2rw_mnist.shares[0]: 2 is greater than or equal to the maximum of 1"),
        ("reweighting.fairface.hparams.l2rw.meta_lr", -3,
         "reweighting.fairface.hparams.l2rw.meta_lr: -3 is less than or equal to the minimum of 0"),
        ("reweighting.fairface.hparams.l2rw.epochs", 3,  # l2rw has steps: both given
         "reweighting.fairface.hparams.l2rw: the run's length is given as epochs or as steps: exactly one of the two keys"),
        ("coco.hparams.nomix.steps", 600,  # nomix has epochs at full scale: both given
         "coco.hparams.nomix: the run's length is given as epochs or as steps: exactly one of the two keys"),
        ("reweighting.shares_per_job", "x", "reweighting.shares_per_job: 'x' is not one of [1, 'all']"),
        ("coco.cells_per_job", 2, "coco.cells_per_job: 2 is not one of [1, 'all']"),
    ],
)
def test_one_bad_value_reports_that_key_only(path, value, error):
    """Valid keys beside the bad one are not reported (an allOf that fails drops its evaluated keys, and
    unevaluatedProperties then called every sibling unexpected)."""
    cfg = load()
    set_key(path, value)(cfg)
    with pytest.raises(ConfigError) as err:
        check(cfg, SCHEMA)
    assert str(err.value).splitlines() == ["invalid config:", f"  config key {error}"]


def test_offline_without_data_warns_with_path_key_and_targets(tmp_path, capsys):
    """Missing data is not a config error (other experiments may run): one warning per dataset, on stderr."""
    cfg = load()
    cfg["allow_download"] = False
    cfg["mnist"]["root"] = str(tmp_path / "mnist")
    cfg["colored_mnist"].update(source="authors", authors_dir=str(tmp_path / "authors"))
    cfg["coco"].update(root=str(tmp_path / "coco"), wang_dir=str(tmp_path / "coco/wang"))
    cfg["waterbirds"]["root"] = str(tmp_path / "wb")
    cfg["reweighting"]["fairface"]["root"] = str(tmp_path / "ff")
    cfg["pretrained"]["root"] = str(tmp_path / "weights")
    warnings = check(cfg, SCHEMA)
    expected = [
        (r"colored_mnist\.authors_dir: .*authors/mnist_10color_jitter_var_0\.020\.npy, .*_0\.050\.npy missing",
         "(colored_mnist, all)"),
        (r"mnist\.root: .*mnist/MNIST/raw/train-images-idx3-ubyte, .*t10k-labels-idx1-ubyte missing and "
         r"allow_download is false", "(colored_mnist, reweighting, all)"),
        (r"reweighting\.fairface\.root: .*ff/fairface_label_train\.csv, .*ff/fairface_label_val\.csv not found",
         "the other jobs run"),
        (r"coco\.wang_dir and coco\.root: .*coco/wang/object_id\.map.*coco/val2014 missing", "(coco, all)"),
        (r"waterbirds\.root: .*wb/waterbirds_v1\.0/metadata\.csv missing", "(waterbirds, all)"),
        (r"coco\.model\.weights, waterbirds\.model\.weights: .*weights/resnet50-0676ba61\.pth missing and "
         r"allow_download is false", "(coco, waterbirds, all)"),
    ]
    assert len(warnings) == len(expected)
    for w, (pattern, targets) in zip(warnings, expected):
        assert re.match("config key " + pattern, w) and targets in w, w
    assert capsys.readouterr().err.splitlines() == [f"WARNING: {w}" for w in warnings]
    # with downloads allowed only the datasets no script can fetch remain
    cfg["allow_download"] = True
    assert [w.split(":")[0] for w in check(cfg, SCHEMA)] == ["config key colored_mnist.authors_dir",
                                                             "config key reweighting.fairface.root"]


def test_a_training_job_checks_its_own_row_naming_the_key():
    """What the driver cannot check without torch, each job checks when it starts (runner and COCO)."""
    from debias.config import COCO_GRID_KEYS, row_method
    from debias.runner import train_cells

    cfg = load()
    entry = dict(cfg["reweighting"]["fairface"]["hparams"]["l2rw"])
    del entry["lr"]
    with pytest.raises(ConfigError, match=r"^invalid config:\n  config key reweighting\.fairface\.hparams\.l2rw: "
                                          r"method 'l2rw' needs 'lr'$"):
        train_cells(experiment="fairface", cells=[], row="l2rw", hparams=entry, train_cfg={}, make_backbone=None,
                    model_cfg={}, device="cpu")
    with pytest.raises(ConfigError, match=r"config key colored_mnist\.hparams\.gray\.method: unknown method 'grey'"):
        row_method("colored_mnist", "gray", {**cfg["colored_mnist"]["hparams"]["gray"], "method": "grey"})
    cls, hp = row_method("coco", "mixup", cfg["coco"]["hparams"]["mixup"], supplied=COCO_GRID_KEYS)
    assert cls.name == "mixup" and "lr" not in hp
    with pytest.raises(ConfigError, match=r"config key coco\.hparams\.mixup: method 'mixup' needs 'lr'"):
        row_method("coco", "mixup", cfg["coco"]["hparams"]["mixup"])
