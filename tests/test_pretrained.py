"""Pretrained weights as a dataset (debias.data.pretrained, rule pretrained_download): named by their sha256 prefix,
fetched once through the configured mirrors, refused when the hash differs, required before any job offline, and
read by the jobs from the file, never from the network."""

import hashlib
import re
import socket

import pytest
import torch
import yaml

from conftest import ROOT, job_counts, snakemake, write_config
from debias.config import ConfigError, check
from debias.data import pretrained
from debias.data.download import DownloadError
from debias.errors import DataFormatError, MissingData
from test_download import server  # noqa: F401  (the fixture: a file server on 127.0.0.1)

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
IMAGENET = "resnet50-0676ba61.pth"  # config/config.yaml's IMAGENET1K_V1


def named_by_hash(folder, stem, data: bytes, digits=8):
    """``data`` written to ``folder/<stem>-<its sha256 prefix>.pth``."""
    path = folder / f"{stem}-{hashlib.sha256(data).hexdigest()[:digits]}.pth"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """(weights file, the state dict saved in it): a ResNet-50 state dict of its own (seeded, BN statistics and
    counters set), saved as <name>-<sha256 prefix>.pth."""
    import torchvision

    torch.manual_seed(123)
    state = torchvision.models.resnet50().state_dict()
    for k, v in state.items():
        if "running" in k:
            state[k] = torch.rand_like(v) + 0.5
        elif k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
    tmp = tmp_path_factory.mktemp("weights") / "tmp.pth"
    torch.save(state, tmp)
    path = tmp.with_name(f"standin-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth")
    tmp.rename(path)
    return path, state


# -- names and config ----------------------------------------------------------------------------------------


def test_torchvision_names_map_to_torchvisions_own_files_and_the_schema_agrees():
    import torchvision

    schema = yaml.safe_load(SCHEMA.read_text())["$defs"]["weights"]["oneOf"]
    for name, file in pretrained.TORCHVISION_FILES["resnet50"].items():
        url = torchvision.models.ResNet50_Weights[name].url
        assert url == pretrained.DEFAULTS["mirrors"][0] + file
        assert pretrained.file_name("resnet50", name) == file
    assert set(schema[1]["enum"]) == set(pretrained.TORCHVISION_FILES["resnet50"])
    pattern = re.compile(schema[2]["pattern"])
    for name, ok in [("resnet50-0676ba61.pth", True), ("my-own.v2-0123456789abcdef.pth", True),
                     ("short-0676ba6.pth", False), ("upper-0676BA61.pth", False), ("nohash.pth", False),
                     ("-0676ba61.pth", False), ("x-0676ba61.pt", False)]:
        assert bool(pattern.match(name)) == bool(pretrained.FILE_NAME.match(name)) == ok, name
    assert pretrained.sha256_prefix("my-own.v2-0123456789abcdef.pth") == "0123456789abcdef"
    # config/config.yaml spells out the defaults; the mini config trains from scratch and needs no file
    full, mini = (yaml.safe_load((ROOT / "config" / f).read_text()) for f in ("config.yaml", "mini.yaml"))
    assert full["pretrained"] == pretrained.DEFAULTS
    assert pretrained.configured(full) == {"coco.model.weights": IMAGENET, "waterbirds.model.weights": IMAGENET}
    assert pretrained.configured(mini) == {} and "pretrained" not in mini


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["coco"]["model"].update(weights="resnet50.pth"),
     r"config key coco\.model\.weights: expected null \(random initialisation\), a torchvision weights name "
     r"\(IMAGENET1K_V1, IMAGENET1K_V2\) or a file name <name>-<the first 8 or more hex digits of its sha256>\.pth"),
    (lambda c: c["waterbirds"]["model"].update(arch="small_resnet", widths=[4]),
     r"config key waterbirds\.model\.weights: 'IMAGENET1K_V1' given for arch 'small_resnet', which is built from "
     r"scratch; expected null, or arch resnet50"),
    (lambda c: c["pretrained"].update(root="/nonexistent/weights", mirrors=[]),
     r"config key pretrained\.mirrors: /nonexistent/weights/resnet50-0676ba61\.pth must be downloaded but no mirror"),
    (lambda c: c["pretrained"].update(mirrors=["https://example.org/models"]),
     r"config key pretrained\.mirrors\[0\]: 'https://example\.org/models' does not match"),
])
def test_bad_weights_settings_name_key_and_expectation(mutate, message):
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    mutate(cfg)
    with pytest.raises(ConfigError, match=message):
        check(cfg, SCHEMA)


# -- the download ----------------------------------------------------------------------------------------------


def test_the_rule_fetches_each_file_through_the_mirrors_and_refuses_a_wrong_hash(tmp_path, server):
    """Through Snakemake: the good file from the second mirror (the first refuses connections), checked; a file
    whose content does not match the hash in its name fails its job and leaves nothing in the folder."""
    served, url = server
    good = named_by_hash(served, "standin", b"weights of a stand-in model" * 100)
    bad = served / "tampered-00000000.pth"
    bad.write_bytes(b"not the file its name says")
    weights = tmp_path / "weights"

    def mutate(cfg):
        cfg["allow_download"] = True
        cfg["pretrained"] = {"root": str(weights), "mirrors": ["http://127.0.0.1:9/", url]}
        cfg["coco"]["model"] = {"arch": "resnet50", "weights": good.name}
        cfg["waterbirds"]["model"] = {"arch": "resnet50", "weights": bad.name}

    proc = snakemake(weights / good.name, weights / bad.name, "--cores", 1, "--keep-going",
                     "--configfile", write_config(tmp_path, mutate))
    assert proc.returncode != 0  # the tampered file's job failed
    assert (weights / good.name).read_bytes() == good.read_bytes()
    assert sorted(p.name for p in weights.iterdir()) == [good.name]  # no tampered file, no partial download
    log = (tmp_path / "results/logs/data/pretrained_download" / f"{bad.name}.log").read_text()
    assert f"could not download {bad.name} into {weights}" in log
    assert re.search(rf"{bad.name}: sha256 {hashlib.sha256(bad.read_bytes()).hexdigest()}, expected one starting "
                     r"with 00000000", log)


def test_a_wrong_hash_is_refused_naming_file_and_both_hashes_and_nothing_is_left(tmp_path, server):
    served, url = server
    data = b"some other file"
    name = "resnet50-0676ba61.pth"
    (served / name).write_bytes(data)
    found = hashlib.sha256(data).hexdigest()
    with pytest.raises(DownloadError, match=rf"could not download {name} into .*\n  {url}{name}: sha256 {found}, "
                                            r"expected one starting with 0676ba61"):
        pretrained.download(name, tmp_path / "weights", [url])
    assert not list((tmp_path / "weights").iterdir())
    # the same file put there by hand: a job reading it refuses it
    (tmp_path / "weights" / name).write_bytes(data)
    from debias.models import resnet50_backbone

    with pytest.raises(DataFormatError, match=rf"weights file .*weights/{name}: sha256 {found}, expected one "
                                              r"starting with 0676ba61 \(the hash its name carries\)"):
        resnet50_backbone(2, tmp_path / "weights" / name)


# -- the workflow ------------------------------------------------------------------------------------------------


def full_config_with(tmp_path, **override):
    """config/config.yaml with an override file on top (Snakemake merges them): outputs and the weights under
    tmp_path, then ``override``."""
    cfg = {"results": str(tmp_path / "results"), "pretrained": {"root": str(tmp_path / "weights")}, **override}
    (tmp_path / "override.yaml").write_text(yaml.safe_dump(cfg))
    return ["--configfile", "config/config.yaml", tmp_path / "override.yaml"]


def test_offline_without_the_file_the_full_config_stops_before_any_job_naming_file_and_key(tmp_path):
    """Downloads off, every dataset there or generated (COCO and Waterbirds embedded), only the weights missing:
    the training rules' declared input stops the run before any job, and the warning says what to do."""
    nowhere = tmp_path / "nowhere"
    args = full_config_with(tmp_path, allow_download=False, mnist={"root": str(nowhere / "mnist")},
                            reweighting={"fairface": {"root": str(nowhere / "fairface")}},
                            coco={"source": "embedded", "root": str(nowhere / "coco")},
                            waterbirds={"source": "embedded", "root": str(nowhere / "waterbirds")})
    proc = snakemake("coco", "waterbirds", "coco_calibration", "-n", "--cores", 8, "--resources", "gpu=2", *args)
    out = proc.stdout + proc.stderr
    file = tmp_path / "weights" / IMAGENET
    assert proc.returncode != 0 and not job_counts(proc.stdout)
    assert re.search(r"Missing input files for rule (coco_train|coco_calibration_train|waterbirds_train):(.|\n)*"
                     rf"affected files:\n\s+{file}", out), out[-3000:]
    warning = next(line for line in out.splitlines() if IMAGENET in line and line.startswith("WARNING"))
    assert warning == (f"WARNING: config key coco.model.weights, waterbirds.model.weights: {file} missing and "
                       "allow_download is false; a run whose targets need them (coco, waterbirds, all) stops before "
                       f"any job; put the file in pretrained.root ({file.parent}; it is published at "
                       f"https://download.pytorch.org/models/{IMAGENET}), or set allow_download: true")
    assert not (tmp_path / "results").exists() and not file.parent.exists()


def test_with_downloads_on_the_file_is_fetched_once_for_every_resnet_job(tmp_path):
    proc = snakemake("coco", "waterbirds", "coco_calibration", "-n", "--cores", 8, "--resources", "gpu=2",
                     *full_config_with(tmp_path), check=True)
    counts = job_counts(proc.stdout)
    assert counts["pretrained_download"] == 1
    assert counts["coco_train"] == 26 and counts["waterbirds_train"] == 15 and counts["coco_calibration_train"] == 3
    file = str(tmp_path / "weights" / IMAGENET)
    blocks = proc.stdout.split("\nrule ")[1:]
    download = [b for b in blocks if b.startswith("pretrained_download:")]
    assert len(download) == 1 and f"output: {file}" in download[0]
    readers = [b for b in blocks if b.split(":")[0] in ("coco_train", "coco_calibration_train", "waterbirds_train")]
    assert len(readers) == 26 + 15 + 3
    assert all(re.search(rf"input: .*{re.escape(file)}", b) for b in readers)
    # once the file is there the rule is not even defined: a forced rerun cannot replace a user's file
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / IMAGENET).write_bytes(b"")
    proc = snakemake("coco", "waterbirds", "-n", "--forceall", "--cores", 8, "--resources", "gpu=2",
                     *full_config_with(tmp_path), check=True)
    assert "pretrained_download" not in job_counts(proc.stdout)


# -- the model ---------------------------------------------------------------------------------------------------


def test_a_model_built_from_a_file_has_exactly_its_tensors(standin):
    from debias.tasks import coco as coco_task
    from debias.tasks import waterbirds
    from debias.models import resnet50_backbone

    path, state = standin
    torch.manual_seed(0)
    bb = resnet50_backbone(3, path)
    got = bb.features.state_dict()
    assert set(got) == {k for k in state if not k.startswith("fc.")}  # ImageNet's head is not used
    assert all(torch.equal(got[k], state[k]) for k in got)
    assert bb.classifier.in_features == 2048 and bb.classifier.out_features == 3
    assert bb.features(torch.zeros(1, 3, 64, 64)).shape == (1, 2048)
    torch.manual_seed(0)
    fresh = resnet50_backbone(3, None).features.state_dict()  # random initialisation differs from the file
    assert not torch.equal(fresh["conv1.weight"], state["conv1.weight"])
    # a state dict saved before BatchNorm counted its batches (PyTorch < 0.4.1) loads, the counters at 0
    old = resnet50_backbone(3, {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")})
    assert torch.equal(old.features.bn1.running_var, state["bn1.running_var"])
    assert old.features.bn1.num_batches_tracked == 0
    # through the experiments, as a training job builds it from its rule's input
    model = {"arch": "resnet50", "weights": path.name}
    assert torch.equal(coco_task.make_backbone(model, 79, str(path)).features.layer4[2].bn3.running_var,
                       state["layer4.2.bn3.running_var"])
    wb = waterbirds.make_backbone(model, str(path))  # Normalize, then the ResNet
    assert torch.equal(wb.features[1].conv1.weight, state["conv1.weight"]) and wb.classifier.out_features == 2


def test_a_job_not_given_the_file_its_config_names_is_refused(standin, tmp_path):
    from debias.tasks import coco as coco_task
    from debias.tasks import waterbirds

    path, _ = standin
    model = {"arch": "resnet50", "weights": "IMAGENET1K_V1"}
    with pytest.raises(MissingData, match=rf"config key coco\.model\.weights: 'IMAGENET1K_V1' needs the weights file "
                                          rf"{IMAGENET}, but the job was given none"):
        coco_task.make_backbone(model, 79, None)
    with pytest.raises(MissingData, match=rf"config key waterbirds\.model\.weights: .* needs the weights file "
                                          rf"{IMAGENET}, but the job was given {path}"):
        waterbirds.make_backbone(model, str(path))
    torch.save({"weight": torch.zeros(2)}, tmp_path / "x.pth")
    data = (tmp_path / "x.pth").read_bytes()
    not_resnet = named_by_hash(tmp_path, "other", data)
    from debias.models import resnet50_backbone

    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3}, tmp_path / "x.pth")
    checkpoint = named_by_hash(tmp_path, "checkpoint", (tmp_path / "x.pth").read_bytes())
    with pytest.raises(DataFormatError, match=rf"^weights file {checkpoint}: expected a state dict \(parameter name -> "
                                              r"tensor\), found entries that are not tensors: model, epoch"):
        resnet50_backbone(2, checkpoint)
    with pytest.raises(DataFormatError, match=rf"^weights file {not_resnet}: expected a state dict of torchvision's "
                                              r"ResNet; \d+ keys missing \(conv1\.weight, bn1\.weight, bn1\.bias, "
                                              r"\.\.\.\); 1 key unexpected \(weight\)$"):
        resnet50_backbone(2, not_resnet)


def test_resnet50_backbone_never_touches_the_network(standin, tmp_path, monkeypatch):
    path, state = standin

    def no_network(*args, **kw):
        raise AssertionError(f"network access: {args}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    from debias.models import resnet50_backbone

    assert torch.equal(resnet50_backbone(2, path).features.conv1.weight, state["conv1.weight"])
    assert torch.equal(resnet50_backbone(2, state).features.conv1.weight, state["conv1.weight"])
    resnet50_backbone(2, None)
    assert not (tmp_path / "torch_home").exists()
