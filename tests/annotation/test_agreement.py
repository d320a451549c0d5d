"""Agreement against known answers: Krippendorff's worked example, hand-checkable cases, degenerate input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from empathy_study.annotation import AgreementError, agreement, alpha, pair_agreement
from empathy_study.annotation import calibration as cal
from empathy_study.annotation.agreement import quadratic_kappa

nan = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 observers × 12 units example.
WORKED = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
])


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorffs_worked_example(level, published):
    assert alpha(WORKED, level, value_domain=[1, 2, 3, 4, 5]) == pytest.approx(published, abs=5e-4)


def test_unused_values_of_the_1_to_7_domain_do_not_change_alpha():
    assert alpha(WORKED, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert alpha(WORKED, "interval") == pytest.approx(0.849, abs=5e-4)


def test_perfect_agreement_and_a_hand_worked_interval_case():
    a = pd.Series([1, 3, 5, 7], name="a")
    assert pair_agreement(a, a.rename("b"), boot=0)["alpha_interval"] == pytest.approx(1.0)
    # Two raters, units (1,2) and (3,3). Coincidences: o₁₂ = o₂₁ = 1, o₃₃ = 2; n = 4 values (1, 2, 3, 3).
    # D_o = (1·1 + 1·1 + 2·0) / 4 = 0.5
    # D_e = Σ_{c≠k} n_c n_k (c−k)² / (n(n−1)) = 2·(1·1·1 + 1·2·4 + 1·2·1) / 12 = 22/12
    # α = 1 − D_o / D_e = 1 − 6/22
    x, y = pd.Series([1, 3], name="x"), pd.Series([2, 3], name="y")
    assert pair_agreement(x, y, boot=0)["alpha_interval"] == pytest.approx(1 - 6 / 22)


def test_pair_figures_and_bootstrap_interval_contains_the_estimate():
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 8, 200)
    a = pd.Series(np.clip(truth + rng.integers(-1, 2, 200), 1, 7), name="ann1")
    b = pd.Series(np.clip(truth + rng.integers(-1, 2, 200) + 1, 1, 7), name="judge")
    figures = pair_agreement(a, b, boot=300, seed=1)
    assert figures["ci"][0] <= figures["alpha_ordinal"] <= figures["ci"][1]
    assert figures["n"] == 200 and 0.5 < figures["bias"] < 1.0  # b reads about one point higher
    assert figures["mae"] == pytest.approx(np.mean(np.abs(a - b)))
    assert 0.7 < figures["kappa_qw"] <= 1 and 0.7 < figures["spearman"] <= 1


def test_summary_ceiling_and_judge_means():
    ratings = pd.DataFrame({
        "ann1": [1, 2, 3, 4, 5, 6, 7, 4], "ann2": [1, 2, 3, 4, 5, 6, 6, 4], "ann3": [2, 2, 3, 4, 5, 7, 7, 3],
        "judgeA": [1, 3, 3, 5, 5, 6, 7, 4], "judgeB": [4, 4, 4, 4, 4, 4, 4, 5],
    })
    result = agreement(ratings, ["ann1", "ann2", "ann3"], ["judgeA", "judgeB"], boot=0)
    kinds = {p["kind"] for p in result["pairs"]}
    assert kinds == {"human-human", "judge-human", "panel-human", "judge-judge"}
    human = [p["alpha_ordinal"] for p in result["pairs"] if p["kind"] == "human-human"]
    assert result["human_ceiling"] == pytest.approx(np.mean(human))
    assert result["judge_human"]["judgeA"] > result["judge_human"]["judgeB"]


def test_degenerate_inputs_say_why():
    with pytest.raises(AgreementError, match="at least two raters"):
        agreement(pd.DataFrame({"ann1": [1, 2, 3]}), ["ann1"], [], boot=0)
    with pytest.raises(AgreementError, match="share two rated units"):
        agreement(pd.DataFrame({"ann1": [1, 2, nan, nan], "ann2": [nan, nan, 3, 4]}), ["ann1", "ann2"], [], boot=0)
    constant = pair_agreement(pd.Series([4, 4, 4], name="a"), pd.Series([4, 4, 4], name="b"), boot=0)
    assert constant["alpha_ordinal"] is None and constant["verdict"] == "undefined"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quadratic_kappa_is_sklearns(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 8, 60)
    b = np.clip(a + rng.integers(-2, 3, 60), 1, 7)
    assert quadratic_kappa(a, b) == pytest.approx(
        cohen_kappa_score(a, b, weights="quadratic", labels=list(range(1, 8))), abs=1e-12)
    assert pair_agreement(pd.Series(a, name="a"), pd.Series(b, name="b"), boot=0)["kappa_qw"] == pytest.approx(
        cohen_kappa_score(a, b, weights="quadratic", labels=list(range(1, 8))), abs=1e-12)
    assert quadratic_kappa([3, 3], [3, 3]) is None


@pytest.mark.parametrize("seed", [0, 1])
def test_agreement_json_and_the_calibration_app_give_one_judge_and_one_annotator_the_same_figures(seed):
    """One implementation: α, its bootstrap interval, κ, MAE and bias of a judge against a single
    annotator are the same numbers whichever report computes them."""
    rng = np.random.default_rng(seed)
    human = rng.integers(1, 8, 80).astype(float)
    judge = np.clip(human + rng.integers(-2, 2, 80), 1, 7)
    pair = pair_agreement(pd.Series(human, name="h"), pd.Series(judge, name="j"), boot=200, seed=seed)
    app = cal.rater_figures(judge, human[None, :], 5, 3, boot=200, seed=seed)
    assert app["n"] == pair["n"] == 80
    assert app["alpha"] == pytest.approx(pair["alpha_ordinal"], abs=1e-12)
    assert app["ci"] == pytest.approx(pair["ci"], abs=1e-12)
    assert app["kappa"] == pytest.approx(pair["kappa_qw"], abs=1e-12)
    assert app["mae"] == pytest.approx(pair["mae"]) and app["bias"] == pytest.approx(pair["bias"])
