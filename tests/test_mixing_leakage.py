"""Mixup / CutMix, multi-label metrics, the device image pipeline, the leakage attacker."""

import numpy as np
import pytest
import torch
from torch import nn

from debias import methods
from debias.data.image_pipeline import Pipeline, crop_flip
from debias.leakage import AttackerConfig, attacker_mlp, f1_matched, flip_bits, leakage
from debias.methods.mixing import balanced_partners, reference_class_weights
from debias.metrics import average_precision, folded_accuracy, macro_f1, mean_average_precision
from debias.models import Backbone

HP = dict(lr=1e-3, weight_decay=1e-5, loss="bce", train_layers="all", alpha=1.0, pairing="random",
          label_weights="area", autocast=False)


def tiny_backbone(k=5, c=3):
    f = nn.Sequential(nn.Conv2d(c, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Backbone(f, nn.Linear(4, k))


def multilabel_batch(n=16, k=5, h=12, w=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.rand(n, 3, h, w, generator=g), "y": (torch.rand(n, k, generator=g) < 0.4).float(),
            "group": (torch.arange(n) % 4 == 0).long()}


# -- CutMix -------------------------------------------------------------------------------------------------


def test_cutmix_lambda_is_one_minus_pasted_area_with_clipped_boxes():
    torch.manual_seed(0)
    m = methods.get("cutmix")(tiny_backbone(), HP)
    n, h, w = 400, 12, 10
    b = {"x": torch.zeros(n, 1, h, w), "y": torch.eye(5)[torch.arange(n) % 5], "group": torch.zeros(n)}
    # partner images are all ones: count the pasted pixels independently of the box code
    b["x"][n // 2 :] = 1.0
    b["y"][n // 2 :] = torch.eye(5)[(torch.arange(n // 2) + 1) % 5]  # every partner of another class
    m.partners = lambda batch: (torch.cat([torch.arange(n // 2, n), torch.arange(n // 2)]), torch.ones(n, dtype=torch.bool))
    x_mix, y_mix, _ = m.mix(b)
    x_mix = x_mix[: n // 2]
    pasted = x_mix.reshape(n // 2, -1).sum(1) / (h * w)
    y_self, y_partner = b["y"][: n // 2], b["y"][n // 2 :]
    lam_from_y = (y_mix[: n // 2] * y_self).sum(1)  # one-hot rows of different classes: λ is y_self's weight
    assert torch.allclose(lam_from_y, 1 - pasted, atol=1e-6)
    assert torch.allclose((y_mix[: n // 2] * y_partner).sum(1), pasted, atol=1e-6)
    # the box is a rectangle, and some boxes were clipped at the border (smaller than the drawn cut)
    touching = ((x_mix[:, 0, 0, :].sum(1) > 0) | (x_mix[:, 0, -1, :].sum(1) > 0) | (x_mix[:, 0, :, 0].sum(1) > 0)
                | (x_mix[:, 0, :, -1].sum(1) > 0))
    assert touching.sum() > 20
    for img in x_mix[:, 0]:
        rows, cols = img.sum(1) > 0, img.sum(0) > 0
        assert img.sum() == rows.sum() * cols.sum()


def test_cutmix_seed_label_weights_use_the_drawn_lambda_on_the_partner():
    torch.manual_seed(1)
    m = methods.get("cutmix")(tiny_backbone(), {**HP, "label_weights": "seed", "lam": "batch"})
    n = 8
    b = {"x": torch.zeros(n, 1, 16, 16), "y": torch.eye(5)[torch.zeros(n, dtype=torch.long)], "group": torch.zeros(n)}
    b["y"][n // 2 :] = torch.eye(5)[1]
    m.partners = lambda batch: (torch.cat([torch.arange(n // 2, n), torch.arange(n // 2)]), torch.ones(n, dtype=torch.bool))
    _, y_mix, _ = m.mix(b)
    lam0 = y_mix[0, 1].item()  # partner's weight = the drawn λ (one per batch here)
    assert torch.allclose(y_mix[: n // 2, 1], torch.full((n // 2,), lam0))
    assert torch.allclose(y_mix.sum(1), torch.ones(n))


def test_cutmix_prob_mixes_a_whole_batch_or_none_of_it_with_probability_prob():
    """``prob`` is drawn once per batch (as the official ``cutmix_prob``): a batch is either mixed as a whole or
    comes back with its own images and targets; over many batches the mixed fraction is ≈ prob."""
    n, h, w = 8, 16, 16
    b = {"x": torch.zeros(n, 1, h, w), "y": torch.eye(5)[torch.zeros(n, dtype=torch.long)], "group": torch.zeros(n)}
    b["x"][n // 2 :] = 1.0  # partners are all ones and of another class: any pasted pixel or weight shows
    b["y"][n // 2 :] = torch.eye(5)[1]
    swap = torch.cat([torch.arange(n // 2, n), torch.arange(n // 2)])

    def draws(prob, label_weights, count):
        m = methods.get("cutmix")(tiny_backbone(), {**HP, "prob": prob, "label_weights": label_weights})
        m.partners = lambda batch: (swap, torch.ones(n, dtype=torch.bool))
        return [m.mix(b) for _ in range(count)]

    torch.manual_seed(0)
    for label_weights in ("area", "seed"):
        for x_mix, y_mix, logs in draws(0.0, label_weights, 50):  # never mixed
            assert torch.equal(x_mix, b["x"]) and torch.equal(y_mix, b["y"])
            assert logs["unpaired"].item() == n and logs["lam"].item() == 1.0
        for x_mix, y_mix, logs in draws(1.0, label_weights, 50):  # always mixed
            assert logs["unpaired"].item() == 0
            assert not torch.equal(x_mix, b["x"]) and not torch.equal(y_mix, b["y"])
    # alpha = 1: λ ~ U(0, 1); a sample's box is empty only where ⌊16·√(1−λ)⌋ < 2, i.e. λ > 1 − (2/16)² ≈ 0.984,
    # so a mixed batch of 8 has (nearly always) several pasted boxes and a mixed target per pasted box
    prob, count = 0.3, 600
    mixed = []
    for x_mix, y_mix, logs in draws(prob, "area", count):
        pasted = x_mix[: n // 2].flatten(1).sum(1) > 0
        unpaired = logs["unpaired"].item()
        assert unpaired in (0, n)  # the whole batch, or none of it
        if unpaired == n:
            assert torch.equal(x_mix, b["x"]) and torch.equal(y_mix, b["y"])
        else:
            assert pasted.sum() >= 2
            assert torch.equal(y_mix[: n // 2, 1] > 0, pasted)  # the partner's label weighs where its box lies
        mixed.append(unpaired == 0)
    # binomial sd of the fraction: √(0.3·0.7/600) ≈ 0.019
    assert abs(np.mean(mixed) - prob) < 0.06

# -- mixup and losses ---------------------------------------------------------------------------------------


def test_mixup_mixes_images_and_targets_with_the_same_lambda():
    torch.manual_seed(2)
    m = methods.get("mixup")(tiny_backbone(), HP)
    b = multilabel_batch()
    partner = torch.randperm(16)
    m.partners = lambda batch: (partner, torch.ones(16, dtype=torch.bool))
    x_mix, y_mix, _ = m.mix(b)
    # recover λ from one pixel and check every pixel and every target entry against it
    lam = ((x_mix - b["x"][partner]) / (b["x"] - b["x"][partner]))[:, 0, 0, 0]
    expect_x = lam.view(-1, 1, 1, 1) * b["x"] + (1 - lam.view(-1, 1, 1, 1)) * b["x"][partner]
    assert torch.allclose(x_mix, expect_x, atol=1e-5)
    assert torch.allclose(y_mix, lam[:, None] * b["y"] + (1 - lam[:, None]) * b["y"][partner], atol=1e-5)
    assert lam.std() > 0.05  # one λ per sample (G6)


def test_mixed_weighted_bce_equals_lambda_weighted_sum_of_two_bces():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 5))
    ya = (rng.random((6, 5)) < 0.5).astype(float)
    yb = (rng.random((6, 5)) < 0.5).astype(float)
    lam = rng.random((6, 1))
    w = rng.uniform(0.5, 3.0, 5)

    def bce(y):  # written out: w_c * -(y log σ(z) + (1-y) log(1-σ(z))), mean over all entries
        s = 1 / (1 + np.exp(-z))
        return (w * -(y * np.log(s) + (1 - y) * np.log(1 - s))).mean(1)

    expected = (lam[:, 0] * bce(ya) + (1 - lam[:, 0]) * bce(yb)).mean()
    m = methods.get("nomix")(tiny_backbone(), HP)
    m.class_weight = torch.tensor(w)
    got = m.loss(torch.tensor(z), torch.tensor(lam * ya + (1 - lam) * yb)).item()
    assert abs(got - expected) < 1e-10


def test_class_weights_are_neg_over_pos_and_clamped_where_absent():
    y = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    w = reference_class_weights(y)
    assert w.tolist() == pytest.approx([1 / 3, 3.0, 3.0])  # class 2 absent: the largest weight present, not 4 / 1e-15


def test_soft_ce_on_class_indices_equals_cross_entropy():
    m = methods.get("mixup")(tiny_backbone(k=4), {**HP, "loss": "ce"})
    z, y = torch.randn(7, 4), torch.randint(0, 4, (7,))
    from debias.methods.mixing import soft_targets

    assert torch.allclose(m.loss(z, soft_targets(y, 4)), nn.functional.cross_entropy(z, y))


def test_balanced_pairing_always_pairs_a_man_with_a_woman():
    torch.manual_seed(0)
    for trial in range(50):
        group = (torch.rand(32) < 0.3).long()
        partner, paired = balanced_partners(group)
        if group.min() == group.max():
            assert not paired.any()
            continue
        assert paired.all() and (group[partner] != group).all()
    one_side = torch.zeros(5, dtype=torch.long)
    partner, paired = balanced_partners(one_side)
    assert not paired.any() and partner.tolist() == list(range(5))


def test_balanced_methods_need_the_group_field_and_train_a_step():
    m = methods.get("cutmix")(tiny_backbone(), {**HP, "pairing": "balanced"})
    assert "group" in m.needs
    b = multilabel_batch()
    m.attach({"train": {"y": b["y"]}})
    logs = m.update(b)
    assert torch.isfinite(logs["loss"]) and logs["unpaired"].item() == 0


def test_head_only_training_leaves_the_features_unchanged_but_moves_bn_statistics():
    m = methods.get("nomix")(tiny_backbone(), {**HP, "train_layers": "head"})
    b = multilabel_batch()
    m.attach({"train": {"y": b["y"]}})
    conv = m.modules["f"][0].weight.clone()
    bn = m.modules["f"][1].running_mean.clone()
    head = m.modules["g"].weight.clone()
    m.update(b)
    assert torch.equal(conv, m.modules["f"][0].weight)
    assert not torch.equal(bn, m.modules["f"][1].running_mean)
    assert not torch.equal(head, m.modules["g"].weight)


def test_the_head_runs_in_float32_under_autocast(monkeypatch):
    """With bf16 autocast on (forced on CPU here; on CUDA in the configs) the features are bf16 but the logits are
    the float32 head applied to them, not a bf16 product rounded to 3 significant digits."""
    import debias.methods.mixing as mixing

    monkeypatch.setattr(mixing, "autocast", lambda device, enabled=True: torch.autocast("cpu", dtype=torch.bfloat16))
    torch.manual_seed(0)
    m = methods.get("nomix")(Backbone(nn.Sequential(nn.Flatten(), nn.Linear(12, 64)), nn.Linear(64, 5)),
                             {**HP, "autocast": True})
    x = torch.randn(8, 3, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feat = m.modules["f"](x)
    assert feat.dtype == torch.bfloat16
    z = m.logits(x)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z, m.modules["g"](feat.float()), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_head = m.modules["g"](feat).float()
    assert not torch.equal(z, bf16_head)


# -- metrics ------------------------------------------------------------------------------------------------


def test_map_and_macro_f1_against_scikit_learn():
    from sklearn.metrics import average_precision_score, f1_score

    rng = np.random.default_rng(0)
    y = (rng.random((300, 7)) < 0.2).astype(int)
    scores = rng.normal(size=(300, 7)) + y
    scores[:, 2] = np.round(scores[:, 2])  # ties
    for c in range(7):
        assert abs(average_precision(scores[:, c], y[:, c]) - average_precision_score(y[:, c], scores[:, c])) < 1e-12
    m, used = mean_average_precision(scores, y)
    assert used == 7 and abs(m - average_precision_score(y, scores, average="macro")) < 1e-12
    pred = scores > 0.5
    pred[:, 4] = False
    y[:, 4] = 0  # a class with neither predictions nor positives counts 0, as sklearn's zero_division=0
    assert abs(macro_f1(pred, y) - f1_score(y, pred, average="macro", zero_division=0)) < 1e-12


def test_map_leaves_out_classes_without_positives():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.3]])
    m, used = mean_average_precision(s, y)
    assert used == 1 and abs(m - (1 / 1 * 0.5 + 2 / 3 * 0.5)) < 1e-12  # hand-computed AP of class 0


def test_folded_accuracy_by_hand():
    assert folded_accuracy(0.3) == pytest.approx(0.7)
    assert folded_accuracy(0.75) == pytest.approx(0.75)
    assert folded_accuracy(0.5) == 0.5


# -- image pipeline -----------------------------------------------------------------------------------------


def test_crop_flip_matches_a_per_sample_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (9, 3, 11, 13), dtype=torch.uint8, generator=g)
    top = torch.randint(0, 11 - 6 + 1, (9,), generator=g)
    left = torch.randint(0, 13 - 6 + 1, (9,), generator=g)
    flip = torch.rand(9, generator=g) < 0.5
    got = crop_flip(x, top, left, flip, 6)
    for i in range(9):
        ref = x[i, :, top[i] : top[i] + 6, left[i] : left[i] + 6]
        if flip[i]:
            ref = ref.flip(-1)
        assert torch.equal(got[i], ref)


def test_pipeline_views_normalise_like_torchvision():
    import torchvision.transforms.functional as TF

    x = torch.randint(0, 256, (4, 3, 10, 10), dtype=torch.uint8)
    p = Pipeline(crop=8, channels_last=True)
    ev = p.eval_view(x)
    ref = TF.normalize(TF.center_crop(x, [8, 8]).float() / 255, list(p.mean), list(p.std))
    assert torch.allclose(ev, ref, atol=1e-5) and ev.is_contiguous(memory_format=torch.channels_last)
    tr = p.train_view(x, torch.Generator().manual_seed(0))
    assert tr.shape == (4, 3, 8, 8) and tr.dtype == torch.float32


# -- leakage ------------------------------------------------------------------------------------------------


def test_attacker_architecture_is_wangs():
    m = attacker_mlp(79)
    kinds = [type(layer).__name__ for layer in m]
    assert kinds == ["BatchNorm1d"] + ["Linear", "BatchNorm1d", "LeakyReLU"] * 3 + ["Linear"]
    assert [layer.out_features for layer in m if isinstance(layer, nn.Linear)] == [300, 300, 300, 2]


def test_leakage_finds_a_planted_signal_and_not_noise():
    rng = np.random.default_rng(0)
    gender = {s: (rng.random(n) < 0.3).astype(int) for s, n in (("train", 600), ("val", 300), ("test", 300))}
    noise = {s: rng.normal(size=(len(g), 6)) for s, g in gender.items()}
    signal = {s: noise[s] + 3.0 * gender[s][:, None] for s in gender}
    cfg = AttackerConfig(epochs=8, lr=1e-3, batch_size=64, hidden=32)
    kw = dict(rounds=2, cfg=cfg, n_train_per_group=150, n_eval_per_group=80)
    strong = leakage(signal, gender, None, "balanced", **kw)
    weak = leakage(noise, gender, None, "balanced", **kw)
    assert strong["mean"] > 0.9 and 0.5 <= weak["mean"] < 0.62
    unbal = leakage(noise, gender, np.arange(400), "unbalanced", **kw)
    # noise: an unbalanced attacker can do no better than (about) the majority rate
    assert abs(unbal["mean"] - unbal["test_majority_rate"]) < 0.06


def test_balanced_leakage_folds_each_rounds_accuracy_and_unbalanced_does_not(monkeypatch):
    """The attacker stubbed out: its test accuracies per round are fixed, so the reported scores are exactly the
    folding (balanced) or not (unbalanced) of them."""
    import debias.leakage as leakage_module

    accs = [0.3, 0.8, 0.5]
    calls = []

    def fake_attacker(data, cfg, seed):
        calls.append((seed, {s: tuple(t[0].shape) for s, t in data.items()}))
        return {"val": 0.6, "test": accs[len(calls) - 1], "epoch": len(calls)}

    monkeypatch.setattr(leakage_module, "train_attacker", fake_attacker)
    gender = {s: np.array([0, 1] * 4) for s in ("train", "val", "test")}
    gender["test"] = np.array([0, 0, 0, 1, 1, 0, 1, 0])  # 5 men of 8: majority rate 0.625
    features = {s: np.arange(24, dtype=float).reshape(8, 3) for s in gender}
    kw = dict(rounds=3, cfg=AttackerConfig(), seed=2, n_train_per_group=3, n_eval_per_group=2)

    bal = leakage(features, gender, None, "balanced", **kw)
    folded = [0.5 + 0.2, 0.5 + 0.3, 0.5]  # 0.5 + |acc − 0.5| by hand
    assert bal["scores"] == pytest.approx(folded, abs=1e-12)
    assert bal["mean"] == pytest.approx(2.0 / 3.0, abs=1e-12)
    assert bal["std"] == pytest.approx(np.sqrt(((0.7 - 2 / 3) ** 2 + (0.8 - 2 / 3) ** 2 + (0.5 - 2 / 3) ** 2) / 2),
                                       abs=1e-12)
    assert bal["selected_epochs"] == [1, 2, 3]
    assert [c[0] for c in calls] == [2000, 2001, 2002]  # seed * 1000 + round
    assert calls[0][1] == {"train": (6, 3), "val": (4, 3), "test": (4, 3)}  # 3 + 3 / 2 + 2 per round

    calls.clear()
    unbal = leakage(features, gender, np.arange(5), "unbalanced", **{**kw, "rounds": 2})
    assert unbal["scores"] == [0.3, 0.8]  # plain accuracy, below chance kept
    assert unbal["mean"] == pytest.approx(0.55, abs=1e-12)
    assert unbal["test_majority_rate"] == pytest.approx(0.625)
    assert calls[0][1] == {"train": (5, 3), "val": (8, 3), "test": (8, 3)}

# -- Wang's F1-matched dataset leakage ------------------------------------------------------------------------


def test_flip_bits_flips_each_entry_with_the_given_probability():
    rng = np.random.default_rng(0)
    y = (rng.random((20000, 8)) < 0.3).astype(np.float32)
    f = flip_bits(y, 0.1, np.random.default_rng(1))
    assert f.dtype == y.dtype and set(np.unique(f)) <= {0.0, 1.0}
    flipped = f != y
    # ones and zeros alike, each ≈ 10 % (binomial sd of the rate over ~48k / 112k entries < 0.0015)
    assert abs(flipped[y == 1].mean() - 0.1) < 0.006 and abs(flipped[y == 0].mean() - 0.1) < 0.006
    assert (flip_bits(y, 0.0, rng) == y).all() and (flip_bits(y, 1.0, rng) == 1 - y).all()
    with pytest.raises(ValueError, match="flip rate 1.5"):
        flip_bits(y, 1.5, rng)


def test_macro_f1_of_flipped_labels_follows_the_closed_form():
    # a class of prevalence π with every bit flipped with probability p: TP = π(1−p), FP = (1−π)p, FN = πp per
    # sample, so F1 = 2π(1−p) / (2π(1−p) + p)
    prev = np.array([0.05, 0.2, 0.5])
    rng = np.random.default_rng(3)
    y = (rng.random((200000, 3)) < prev).astype(np.float32)
    for p in (0.02, 0.1, 0.3):
        expected = np.mean(2 * prev * (1 - p) / (2 * prev * (1 - p) + p))
        assert macro_f1(flip_bits(y, p, rng), y) == pytest.approx(expected, abs=0.005)


def test_f1_matched_interpolates_between_rates_in_order_of_f1_and_never_extrapolates():
    f1, leak = [0.8, 0.6, 0.7], [70.0, 60.0, 66.0]  # rates need not come in F1 order
    assert f1_matched(f1, leak, 0.65) == pytest.approx(63.0)  # halfway between (0.6, 60) and (0.7, 66)
    assert f1_matched(f1, leak, 0.775) == pytest.approx(69.0)  # a quarter of the way down from (0.8, 70)
    assert f1_matched(f1, leak, 0.8) == pytest.approx(70.0)
    assert np.isnan(f1_matched(f1, leak, 0.59)) and np.isnan(f1_matched(f1, leak, 0.81))
    assert np.isnan(f1_matched(f1, leak, float("nan")))


def test_f1_curve_at_rate_zero_is_the_dataset_leakage_and_flipping_lowers_it(tmp_path):
    from debias.experiments.coco_leakage import f1_curve_job, leakage_job
    from debias.io import read_json

    rng = np.random.default_rng(0)
    splits = {}
    for s, n in (("train", 800), ("val", 400), ("test", 400)):
        gender = (rng.random(n) < 0.4).astype(np.int64)
        objects = (rng.random((n, 6)) < 0.2).astype(np.uint8)
        objects[:, 0] = gender  # object 0 present exactly on the women's images
        splits[s] = {"objects": torch.as_tensor(objects), "gender": torch.as_tensor(gender)}
    subsets = {"train": {g: torch.arange(0, 800, g + 1) for g in (1, 2, 3)}}
    labels = tmp_path / "labels.pt"
    torch.save({"splits": splits, "subsets": subsets}, labels)
    attacker = dict(rounds=2, epochs=6, lr=1e-3, weight_decay=1e-5, batch_size=64, hidden=32,
                    n_train_per_group=150, n_eval_per_group=60)
    for mode, split in (("balanced", None), ("unbalanced", "gamma2")):
        base = leakage_job(labels=str(labels), split=split or "none", attacker=attacker, modes=[mode],
                           out=str(tmp_path / f"{mode}.json"))["results"][mode]
        curve = f1_curve_job(labels=str(labels), mode=mode, split=split, attacker=attacker, rates=[0.0, 0.3],
                             out=str(tmp_path / f"{mode}_curve.json"))
        assert read_json(tmp_path / f"{mode}_curve.json")["rates"] == [0.0, 0.3]
        zero, noisy = curve["points"]
        assert zero["scores"] == base["scores"] and zero["f1"] == [1.0, 1.0]  # same draws, same attacker seeds
        assert zero["leakage_mean"] > 0.95 and noisy["leakage_mean"] < zero["leakage_mean"] - 0.15
        assert noisy["f1_mean"] < 0.8
    # the rates in two worker processes: the same points
    again = f1_curve_job(labels=str(labels), mode="unbalanced", split="gamma2", attacker=attacker, rates=[0.0, 0.3],
                         out=str(tmp_path / "workers.json"), workers=2)
    assert again["points"] == curve["points"]


def test_a_loaded_state_keeps_the_class_weights_on_the_device_attach_chose():
    """States are loaded onto the CPU; the class weights must go back to where attach put them (on a GPU run the
    CPU copy made the first resumed step fail). The other device is PyTorch's meta device here."""
    y = multilabel_batch()["y"]
    saved = methods.get("mixup")(tiny_backbone(), HP)
    saved.attach({"train": {"y": y}})
    state = saved.state_dict()
    resumed = methods.get("mixup")(tiny_backbone(), HP)
    resumed.attach({"train": {"y": y}})
    resumed.class_weight = resumed.class_weight.to("meta")  # as if attach had run on another device
    resumed.load_state_dict(state)
    assert resumed.class_weight.device.type == "meta" and resumed.class_weight.shape == state["class_weight"].shape
