"""The active audit's design (annotation/_audit.py): probabilities that spend a label budget where the
judges are likely wrong, draws that hold those probabilities, and an inverse-probability estimate
that stays unbiased whatever the need model says (simulated values throughout)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from empathy_study import annotation


def test_budget_probabilities_spend_the_budget_proportionally_above_the_floor():
    need = np.random.default_rng(0).gamma(2.0, size=2_000)
    p = annotation.budget_probabilities(need, 150, floor=0.02)
    assert p.sum() == pytest.approx(150, rel=1e-6)
    assert p.min() == pytest.approx(0.02) and p.max() <= 1
    inside = (p > 0.02 + 1e-9) & (p < 1 - 1e-9)
    ratio = p[inside] / need[inside]
    assert inside.sum() > 100 and np.ptp(ratio) < 1e-9 * ratio.mean()  # ∝ need between floor and 1
    assert np.all(p[need <= np.quantile(need, 0.01)] == pytest.approx(0.02))


def test_pairs_already_drawn_get_the_rule_but_do_not_spend_the_budget():
    need = np.linspace(0.1, 3.0, 500)
    counted = np.arange(500) % 2 == 0
    p = annotation.budget_probabilities(need, 40, floor=0.01, counted=counted)
    assert p[counted].sum() == pytest.approx(40, rel=1e-6)
    plain = annotation.budget_probabilities(need[counted], 40, floor=0.01)
    assert np.allclose(p[counted], plain)


def test_a_budget_the_floor_already_exceeds_is_refused():
    with pytest.raises(ValueError, match="lower min_audit_prob or raise audit_labels"):
        annotation.budget_probabilities(np.ones(1_000), 15, floor=0.02)
    assert np.all(annotation.budget_probabilities(np.ones(10), 12, floor=0.02) == 1)


def test_each_batch_draws_with_its_own_probabilities_independently_of_the_others():
    ids = pd.Series([f"pair-{i}" for i in range(40_000)])
    p = np.tile([0.05, 0.2, 0.5, 0.9], 10_000)
    first = annotation.audit_draw(ids, p, seed=3, batch=1)
    second = annotation.audit_draw(ids, p, seed=3, batch=2)
    for level in np.unique(p):
        at = p == level
        for drawn in (first, second):  # each level's draw holds its probability (two-sided binomial test)
            assert stats.binomtest(int(drawn[at].sum()), int(at.sum()), level).pvalue > 0.001
        both = (first & second)[at].sum()  # independent batches: P(both) = p²
        assert stats.binomtest(int(both), int(at.sum()), level**2).pvalue > 0.001
    assert np.array_equal(annotation.audit_draw(ids, 0.2, seed=3), annotation.audit_draw(ids, np.full(len(ids), 0.2), 3))


def test_ever_drawn_is_the_share_of_draws_that_hit_a_pair_in_some_batch():
    ids = pd.Series([f"p{i}" for i in range(4)])
    batches = np.array([[0.1, 0.5, 0.02, 1.0], [0.3, 0.5, 0.02, 0.0]])
    expected = annotation.ever_drawn(batches)
    hits = np.zeros(4)
    for seed in range(3_000):
        hits += annotation.audit_draw(ids, batches[0], seed, 1) | annotation.audit_draw(ids, batches[1], seed, 2)
    assert np.allclose(hits / 3_000, expected, atol=0.03)
    assert expected == pytest.approx([0.37, 0.75, 0.0396, 1.0])


def test_the_inverse_probability_mean_is_unbiased_and_the_active_design_narrower():
    """A quantity large where the judges disagree: sampling ∝ need keeps the Horvitz–Thompson mean
    unbiased (over 600 draws) and shrinks its spread against a uniform draw of the same expected size."""
    rng = np.random.default_rng(1)
    n = 3_000
    spread = rng.choice([0.0, 2.5], size=n, p=[0.8, 0.2])  # a fifth of the pairs: judges far apart
    error = rng.normal(0, 0.3 + spread)  # the judge's error on each pair, larger where they disagree
    features = pd.DataFrame({"empathy_spread": spread, "attachment_spread": 0.0, "uncertainty": 0.0, "near_threshold": 0.0,
                             "empathy": 4.0, "attachment": 3.0}, index=[f"p{i}" for i in range(n)])
    need, how = annotation.error_need(features)
    assert "disagreement" in how
    active = annotation.budget_probabilities(need.to_numpy(), 300, floor=0.02)
    uniform = np.full(n, 300 / n)
    ids = pd.Series(features.index)
    estimates = {"active": [], "uniform": []}
    for seed in range(600):
        for name, p in (("active", active), ("uniform", uniform)):
            drawn = annotation.audit_draw(ids, p, seed)
            estimates[name].append(np.sum(error[drawn] / p[drawn]) / n)
    truth = error.mean()
    for name, values in estimates.items():
        values = np.asarray(values)
        assert abs(values.mean() - truth) < 4 * values.std() / np.sqrt(len(values)), name
    assert np.std(estimates["active"]) < 0.8 * np.std(estimates["uniform"])


def test_the_need_model_learns_where_the_labelled_pairs_show_errors():
    """After labels, the need follows the errors the labelled pairs show, not the disagreement: here the
    judges agree everywhere but misread pairs with high attachment."""
    rng = np.random.default_rng(2)
    n = 800
    attachment = rng.uniform(1, 7, n)
    features = pd.DataFrame({"empathy_spread": 0.0, "attachment_spread": 0.0, "uncertainty": 0.0, "near_threshold": 0.0,
                             "empathy": rng.uniform(1, 7, n), "attachment": attachment},
                            index=[f"p{i}" for i in range(n)])
    squared = pd.Series(rng.normal(0, 0.2 + (attachment > 5) * 2.0) ** 2, index=features.index)
    labelled = squared.sample(120, random_state=0)
    before, _ = annotation.error_need(features, labelled.iloc[:10])  # too few labels: no model yet
    assert np.ptp(before) == 0
    after, how = annotation.error_need(features, labelled, pd.Series(10.0, index=labelled.index))
    assert "model" in how
    assert after[attachment > 5].mean() > 2 * after[attachment < 3].mean()


def test_the_forecast_of_an_active_batch_buys_what_the_uniform_labels_would():
    """A uniform pilot of 5 % of 4,000 pairs (simulated residuals, errors concentrated on a fifth of the
    pairs, a need that is partly right): the active batch `active_labels_for` forecasts, drawn on top of
    the pilot, has the audit variance (over *every* pair's residual, which the forecast never sees) of
    300 more uniform labels — within 15 % in the median over 200 pilots — and needs far fewer labels."""
    rng = np.random.default_rng(3)
    N, rate, more = 4_000, 0.05, 300
    residual = rng.normal(0, np.where(rng.random(N) < 0.2, 3.0, 0.3))
    need = np.abs(residual) * 0.7 + 0.3 * np.abs(residual).mean()
    current = np.full(N, rate)

    def variance(drawn, batch):  # the population's audit variance of the combined design
        return annotation.audit_variance(residual, np.ones(N), np.ones(N, bool), annotation.ever_drawn(
            np.vstack([current, batch])))

    ratios, labels = [], []
    for _ in range(200):
        drawn = rng.random(N) < rate
        forecast = annotation.active_labels_for(np.where(drawn, residual, np.nan), current, drawn, need, more)
        undrawn = int((~drawn).sum())
        uniform = variance(drawn, np.full(N, more / undrawn))
        active = variance(drawn, annotation.budget_probabilities(need, forecast, forecast / undrawn / 2,
                                                                 counted=~drawn))
        ratios.append(active / uniform)
        labels.append(forecast)
    print(f"\nforecast labels: median {np.median(labels):.0f} for {more} uniform; true variance ratio median "
          f"{np.median(ratios):.3f} (10–90 %: {np.percentile(ratios, 10):.2f}–{np.percentile(ratios, 90):.2f})")
    assert abs(np.median(ratios) - 1) < 0.15
    assert np.median(labels) < 0.6 * more
    assert annotation.active_labels_for(np.full(N, np.nan), current, np.zeros(N, bool), need, more) is None


def test_a_judges_own_uncertainty_raises_the_need_where_it_is_unsure():
    """A judge that recorded logprob-expected scores: where its written score sits far from its expected
    score (its probability spread over several points) the pair needs a label more; without expected
    scores the feature is 0 and the need is what it was."""
    scores = pd.DataFrame({"pair_id": ["a", "b"], "judge": "j", "empathy": [6.0, 6.0], "attachment": [3.0, 3.0],
                           "empathy_expected": [5.9, 4.6], "attachment_expected": [3.1, 3.0]})
    features = annotation.audit_features(scores, 5, 3)
    assert features.loc["a", "uncertainty"] < features.loc["b", "uncertainty"]
    need, how = annotation.error_need(features)
    assert need["b"] > need["a"] and "uncertainty" in how
    plain = annotation.audit_features(scores.drop(columns=["empathy_expected", "attachment_expected"]), 5, 3)
    assert (plain["uncertainty"] == 0).all()
    assert annotation.error_need(plain)[0]["a"] == annotation.error_need(plain)[0]["b"]
