"""Calibration statistics against known answers: scikit-learn's isotonic regression, hand-worked
maps, confusion matrices and weights, held-out folds that never see a user's own labels, and a
joint bootstrap whose every draw keeps the ceiling and the judge on the same resample."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from empathy_study.annotation import alpha
from empathy_study.annotation import calibration as cal

nan = np.nan


def test_the_map_predicts_what_sklearn_predicts_inside_and_outside_the_fitted_range():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 8, 300).astype(float) + rng.normal(0, 0.3, 300)
    y = np.clip(np.rint(0.6 * x + 1 + rng.normal(0, 1, 300)), 1, 7)
    fitted = cal.fit_isotonic(x, y)
    reference = IsotonicRegression(y_min=1, y_max=7, out_of_bounds="clip").fit(x, y)
    probe = np.linspace(-2, 10, 121)
    assert np.allclose(fitted.apply(probe), reference.predict(probe))
    assert np.allclose(cal.IsotonicMap.from_json(fitted.to_json()).apply(probe), reference.predict(probe))


def test_a_hand_worked_map_pools_the_violating_pair():
    # y = 1, 3, 2, 4 at x = 1..4: pool-adjacent-violators merges (3, 2) into 2.5.
    fitted = cal.fit_isotonic([1, 2, 3, 4], [1, 3, 2, 4])
    assert fitted.apply([0, 1, 2, 2.5, 3, 4, 9]).tolist() == [1, 1, 2.5, 2.5, 2.5, 4, 4]


def test_a_judge_that_gives_one_value_maps_to_the_mean_gold_score():
    assert cal.fit_isotonic([1, 1, 1, 1], [2, 3, 4, 7]).apply([1, 5]).tolist() == [4, 4]


def test_held_out_scores_never_see_their_own_users_labels():
    rng = np.random.default_rng(1)
    n = 120
    groups = np.repeat(np.arange(30), 4)
    raw = rng.integers(1, 8, (n, 2)).astype(float)
    y = np.clip(raw.mean(axis=1) + rng.normal(0, 1, n), 1, 7)
    first = cal.cross_fit(raw, y, groups, "mean", folds=5, seed=3)
    # every user's pairs sit in one test fold
    assert all(np.unique(first.fold[groups == g]).size == 1 for g in np.unique(groups))
    # changing one user's labels leaves that user's held-out scores as they were, and moves others'
    changed = y.copy()
    changed[groups == 7] = 7.0
    second = cal.cross_fit(raw, changed, groups, "mean", folds=5, seed=3)
    assert np.array_equal(first.held_out[groups == 7], second.held_out[groups == 7])
    assert not np.array_equal(first.held_out[groups != 7], second.held_out[groups != 7])
    # the final fit is on every row: it is the mean of the two judges' maps fitted on all of y
    maps = [cal.fit_isotonic(raw[:, j], y) for j in range(2)]
    expected = (maps[0].apply(raw[:, 0]) + maps[1].apply(raw[:, 1])) / 2
    assert np.allclose(first.final.predict(raw), expected)


def test_aggregates_and_fitted_weights():
    matrix = np.array([[1.0, 3.0, 8.0], [2.0, 2.0, 5.0]])
    assert cal.aggregate(matrix, "mean").tolist() == [4.0, 3.0]
    assert cal.aggregate(matrix, "median").tolist() == [3.0, 2.0]
    assert cal.aggregate(matrix, "weights", [0.5, 0.5, 0]).tolist() == [2.0, 2.0]
    rng = np.random.default_rng(2)
    a, b = rng.uniform(1, 7, 200), rng.uniform(1, 7, 200)
    assert np.allclose(cal.fit_weights(np.column_stack([a, b]), 0.25 * a + 0.75 * b), [0.25, 0.75])
    # a useless judge gets (nearly) no weight; weights are never negative and sum to 1
    noise = rng.uniform(1, 7, 200)
    weights = cal.fit_weights(np.column_stack([a, noise]), a)
    assert weights[0] == pytest.approx(1.0, abs=1e-9) and weights.min() >= 0 and weights.sum() == pytest.approx(1)
    with pytest.raises(ValueError, match="aggregate must be one of"):
        cal.aggregate(matrix, "max")


def test_treatment_classes_confusion_and_flips_by_hand():
    scores = [5, 4.5, 3, 1, 6, nan]
    gold = [6, 3, 3, 4, 2, 5]
    assert cal.treatment_class(scores, 5, 3).tolist() == ["treated", "excluded", "control", "control", "treated", ""]
    # rows: score class (treated, excluded, control); columns: gold class; the NaN pair is left out
    assert cal.class_confusion(scores, gold, 5, 3).tolist() == [[1, 0, 1], [0, 0, 1], [0, 1, 1]]
    assert cal.flip_share(scores, gold, 5, 3) == pytest.approx(3 / 5)
    assert cal.flip_share([nan], [1], 5, 3) is None


def test_levels_round_half_up_within_the_scale():
    assert cal.to_levels([0.2, 1.5, 3.49, 4.5, 7.6]).tolist() == [1, 2, 3, 5, 7]


def test_judge_and_human_alpha_are_means_of_pairwise_alpha():
    rng = np.random.default_rng(4)
    humans = rng.integers(1, 8, (3, 40)).astype(float)
    humans[0, :10] = nan
    judge = np.clip(humans[1] + rng.integers(-1, 2, 40), 1, 7)
    pairwise = []
    for row in humans:
        both = ~np.isnan(row)
        pairwise.append(alpha(np.vstack([judge[both], row[both]]), "ordinal"))
    assert cal.judge_alpha(judge, humans) == pytest.approx(np.mean(pairwise))
    between = [alpha(np.vstack([humans[i][~np.isnan(humans[i])], humans[j][~np.isnan(humans[i])]]), "ordinal")
               for i, j in [(0, 1), (0, 2)]] + [alpha(humans[1:], "ordinal")]
    assert cal.human_alpha(humans) == pytest.approx(np.mean(between))
    assert cal.judge_alpha(humans[1], humans[1:2]) == pytest.approx(1.0)


def test_gap_to_the_ceiling_is_bootstrapped_jointly():
    """A judge that copies annotator 1 has α 1 with them and α(a1, a2) with annotator 2, so on every
    resample gap = c − (1 + c)/2 = (c − 1)/2. Only a joint bootstrap keeps that identity draw by draw:
    the gap's interval is then exactly (ceiling interval − 1)/2."""
    rng = np.random.default_rng(5)
    truth = rng.integers(1, 8, 80)
    humans = np.vstack([np.clip(truth + rng.integers(-1, 2, 80), 1, 7),
                        np.clip(truth + rng.integers(-1, 2, 80), 1, 7)]).astype(float)
    found = cal.ceiling_gap(humans[0], humans, boot=300, seed=1)
    assert found["n"] == 80
    assert found["gap"] == pytest.approx((found["ceiling"] - 1) / 2)
    assert np.allclose(found["gap_ci"], (np.array(found["ceiling_ci"]) - 1) / 2)
    assert found["gap_ci"][1] <= 0 < found["ceiling_ci"][0]
    cache: dict = {}
    again = cal.ceiling_gap(humans[0], humans, boot=300, seed=1, cache=cache)
    reused = cal.ceiling_gap(humans[1], humans, boot=300, seed=1, cache=cache)
    assert again == found and reused["ceiling_ci"] == found["ceiling_ci"] and len(cache) == 1


def test_rater_figures_compare_with_the_gold_mean_on_the_units_scored():
    humans = np.array([[2, 4, 6, nan], [4, 4, nan, 1]], dtype=float)
    judge = np.array([3.5, 5.0, 6.0, nan])
    figures = cal.rater_figures(judge, humans, 5, 3)
    # gold means 3, 4, 6 on the three scored units; classes judge (excluded, treated, treated) against
    # gold (control, excluded, treated)
    assert figures["n"] == 3
    assert figures["mae"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert figures["bias"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert figures["confusion"] == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert figures["flip"] == pytest.approx(2 / 3)
    assert cal.gold_mean(humans)[:3].tolist() == [3, 4, 6] and np.isnan(cal.gold_mean(humans[:, [3]] * nan)).all()
