import math

import pandas as pd
import torch

from debias.metrics import classification_metrics
from debias.tables import fmt_cell, paper_lookup, pivot_cells, summarize, to_latex, to_markdown, with_paper


def test_group_accuracy_by_hand():
    pred = torch.tensor([0, 1, 1, 0, 2, 2])
    y = torch.tensor([0, 1, 0, 0, 2, 1])
    group = torch.tensor([0, 0, 0, 1, 1, -1])
    m = classification_metrics(pred, y, group, {0: "a", 1: "b"})
    assert m["accuracy"] == 4 / 6 and m["acc_a"] == 2 / 3 and m["acc_b"] == 1.0
    assert m["worst_group_accuracy"] == 2 / 3
    # three groups, the worst one last: group 0 predicts 2 of 2 right (1.0), group 1 1 of 2 (0.5),
    # group 2 1 of 4 (0.25), unnamed groups default to "group<id>"
    pred = torch.tensor([1, 1, 0, 1, 0, 0, 0, 0])
    y = torch.tensor([1, 1, 0, 0, 1, 0, 1, 1])
    group = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])
    m = classification_metrics(pred, y, group)
    assert (m["acc_group0"], m["acc_group1"], m["acc_group2"]) == (1.0, 0.5, 0.25)
    assert m["worst_group_accuracy"] == 0.25 and m["accuracy"] == 4 / 8


def test_paper_value_and_difference_by_hand():
    summary = pd.DataFrame({"method": ["a", "a", "b"], "sigma2": [0.02, 0.05, 0.02],
                            "acc_mean": [0.600, 0.900, 0.750]})
    paper = {"values": {"a": {0.020: 0.550, 0.050: 0.950}}}  # no value for b
    out = with_paper(summary, paper, "method", "sigma2", "acc")
    # delta = mean - paper: 0.600 - 0.550 = +0.050, 0.900 - 0.950 = -0.050, b: no paper value -> NaN
    assert out.paper.tolist()[:2] == [0.550, 0.950] and math.isnan(out.paper[2])
    assert abs(out.delta[0] - 0.050) < 1e-12 and abs(out.delta[1] + 0.050) < 1e-12 and math.isnan(out.delta[2])


def test_summary_mean_sample_std_and_paper():
    runs = pd.DataFrame({"method": ["a", "a", "a", "b"], "sigma2": [0.02] * 4, "acc": [0.5, 0.6, 0.7, 0.9]})
    s = summarize(runs, ["method", "sigma2"], "acc", "acc")
    a = s[s.method == "a"].iloc[0]
    assert abs(a.acc_mean - 0.6) < 1e-12 and abs(a.acc_std - 0.1) < 1e-12 and a.n_seeds == 3
    assert math.isnan(s[s.method == "b"].iloc[0].acc_std)
    paper = {"values": {"a": {0.020: 0.55}}}
    assert paper_lookup(paper, "a", 0.02) == 0.55 and math.isnan(paper_lookup(paper, "b", 0.02))
    assert fmt_cell(0.6, 0.1, 3, 0.55) == "0.600 ± 0.100 [0.550, +0.050]"
    assert fmt_cell(0.6, 0.1, 3, 0.4055) == "0.600 ± 0.100 [0.4055, +0.195]"  # the paper gives 4 decimals: kept
    assert fmt_cell(0.9, float("nan"), 1, float("nan")) == "0.900 (n=1)"
    s["paper"] = [0.55, float("nan")]
    wide = pivot_cells(s, "method", "sigma2", "acc", ["b", "a"])
    md = to_markdown(wide)
    assert md.splitlines()[2].startswith("| b | 0.900 (n=1)") and "0.600 ± 0.100 [0.550, +0.050]" in md
    tex = to_latex(pivot_cells(s, "method", "sigma2", "acc", ["a", "b"], latex=True), "cap", "tab:x")
    assert r"0.600 $\pm$ 0.100" in tex and r"\toprule" in tex
    caption = to_latex(pivot_cells(s, "method", "sigma2", "acc", ["a", "b"]), "mAP (%) ± std, γ = 1 & top_1", "t")
    assert r"\caption{mAP (\%) $\pm$ std, $\gamma$ = 1 \& top\_1}" in caption  # a bare % would start a comment


def test_waterbirds_average_is_train_weighted_and_worst_group_is_the_lowest_accuracy():
    """Group accuracies 3/4, 1/2, 1, 2/3 (sizes 4, 2, 1, 3); weights = Waterbirds' train counts."""
    y = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    group = torch.tensor([0, 0, 0, 0, 1, 1, 2, 3, 3, 3])
    pred = torch.tensor([0, 0, 0, 1, 0, 1, 1, 1, 1, 0])
    weights = {0: 3498, 1: 184, 2: 56, 3: 1057}
    m = classification_metrics(pred, y, group, {0: "landbird_land", 1: "landbird_water"}, weights)
    assert m["accuracy"] == 7 / 10
    assert m["acc_landbird_land"] == 3 / 4 and m["acc_landbird_water"] == 1 / 2 and m["acc_group2"] == 1.0
    assert m["worst_group_accuracy"] == 1 / 2  # group 1, not the smallest group (2)
    expected = (3498 * 0.75 + 184 * 0.5 + 56 * 1.0 + 1057 * 2 / 3) / 4795
    assert abs(m["weighted_group_accuracy"] - expected) < 1e-12
    assert abs(expected - 0.7249565519638512) < 1e-12  # by hand: 3476.1667 / 4795


def test_weighted_group_accuracy_names_a_group_without_samples():
    import pytest

    from debias.metrics import weighted_group_accuracy

    with pytest.raises(ValueError, match=r"groups \[3\] have a weight but no sample"):
        weighted_group_accuracy({0: 1.0, 1: 0.5}, {0: 1, 1: 1, 3: 2})


def test_fixed_rounds_a_half_the_same_from_the_frame_and_from_its_csv():
    """The mean of 0.342 and 0.389 is 0.3655 in decimal; as a float it lies a hair off the half, and the CSV keeps
    0.3655: both print 0.366 (half away from zero), as do the other halves; negatives and signs by hand."""
    from debias.tables import fixed

    mean = (0.342 + 0.389) / 2
    assert fixed(mean, 3) == fixed(float("%.6g" % mean), 3) == "0.366"
    assert [fixed(x, 3) for x in ((0.602 + 0.605) / 2, 0.3585, 0.5995)] == ["0.604", "0.359", "0.600"]
    assert fixed(91.25, 1) == "91.3" and fixed(-0.0125, 2, sign=True) == "-0.01" and fixed(0.05, 3, sign=True) == "+0.050"
    assert fixed(float("nan"), 2) == "nan"
