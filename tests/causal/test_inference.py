"""Cluster-robust SEs, SMDs and the calibration test against statsmodels and hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from empathy_study.causal._balance import smd
from empathy_study.causal._hte import blp_test, subgroup_table
from empathy_study.causal._inference import (
    cluster_shape,
    difference_in_means,
    matched_difference,
    weighted_mean_with_se,
)
from empathy_study.causal._results import EffectRow


@pytest.fixture
def clustered():
    rng = np.random.default_rng(3)
    clusters = np.repeat(np.arange(60), rng.integers(1, 8, 60))
    n = len(clusters)
    shared = rng.normal(size=60)[clusters]  # within-user correlation
    t = rng.integers(0, 2, n)
    y = 2 + 0.7 * t + shared + rng.normal(size=n)
    return y, t, clusters


def statsmodels_cluster_se(y, X, clusters):
    fit = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    n, k = X.shape
    # statsmodels multiplies by G/(G-1)·(N-1)/(N-K); ours by G/(G-1) only.
    return fit.params, fit.bse * np.sqrt((n - k) / (n - 1))


def test_difference_in_means_matches_ols_with_clustered_se(clustered):
    y, t, clusters = clustered
    estimate, se = difference_in_means(y, t, clusters)
    params, bse = statsmodels_cluster_se(y, sm.add_constant(t.astype(float)), clusters)
    assert estimate == pytest.approx(params[1])
    assert se == pytest.approx(bse[1], rel=1e-6)


def test_mean_se_matches_intercept_only_ols(clustered):
    y, _, clusters = clustered
    mean, se = weighted_mean_with_se(y, clusters)
    params, bse = statsmodels_cluster_se(y, np.ones((len(y), 1)), clusters)
    assert mean == pytest.approx(params[0]) and se == pytest.approx(bse[0], rel=1e-6)


def test_weighted_mean_matches_wls(clustered):
    y, _, clusters = clustered
    w = np.random.default_rng(0).uniform(0.5, 3, len(y))
    mean, se = weighted_mean_with_se(y, clusters, w)
    fit = sm.WLS(y, np.ones((len(y), 1)), weights=w).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    assert mean == pytest.approx(fit.params[0])
    assert se == pytest.approx(fit.bse[0], rel=1e-6)  # one regressor: the corrections agree


def test_blp_calibration_test_matches_ols(clustered):
    y, t, clusters = clustered
    cate = np.random.default_rng(5).normal(size=len(y))
    scores = 0.7 + 0.8 * (cate - cate.mean()) + np.random.default_rng(6).normal(size=len(y))
    test = blp_test(scores, cate, clusters)
    params, bse = statsmodels_cluster_se(scores, sm.add_constant(cate - cate.mean()), clusters)
    assert (test.beta_mean, test.beta_het) == pytest.approx(tuple(params))
    assert (test.beta_mean_se, test.beta_het_se) == pytest.approx(tuple(bse), rel=1e-6)
    assert test.p_value < 0.001


def test_smd_by_hand():
    x = np.array([[1.0], [3.0], [2.0], [4.0]])
    t = np.array([1, 1, 0, 0])
    # treated mean 2, control mean 3; variances 1 and 1 → pooled SD 1 → SMD −1
    assert smd(x, t)[0] == pytest.approx(-1.0)
    # weights moving the control mean to 2 remove the difference
    assert smd(x, t, weight=np.array([1, 1, 1, 0.0]), scale=np.array([1.0]))[0] == pytest.approx(0.0)


def test_subgroup_table_matches_ols_on_group_dummies(clustered):
    """Group means and their joint equality test = OLS on group dummies with a cluster-robust Wald test."""
    y, t, clusters = clustered
    groups = np.random.default_rng(8).integers(0, 3, len(y))
    y = y + 0.5 * (groups == 2)
    table = subgroup_table(y, groups.astype(str), clusters, None, min_units=1)
    dummies = np.column_stack([groups == g for g in range(3)]).astype(float)
    fit = sm.OLS(y, dummies).fit(cov_type="cluster", cov_kwds={"groups": clusters})
    n, k = dummies.shape
    assert [g["estimate"] for g in table["groups"]] == pytest.approx(list(fit.params))
    assert [g["se"] for g in table["groups"]] == pytest.approx(list(fit.bse * np.sqrt((n - k) / (n - 1))), rel=1e-6)
    wald = fit.wald_test(np.array([[-1, 1, 0], [-1, 0, 1]]), use_f=False, scalar=True)
    # statsmodels' covariance carries the extra (N−1)/(N−K) factor: the statistic scales inversely.
    assert table["joint_test"]["statistic"] == pytest.approx(float(wald.statistic) * (n - 1) / (n - k), rel=1e-6)
    assert table["joint_test"]["df"] == 2
    ps = [g["p_value"] for g in table["groups"]]
    holm = [g["p_holm"] for g in table["groups"]]
    order = np.argsort(ps)  # Holm by hand: sorted p × (k, k − 1, …), running maximum
    expected = np.maximum.accumulate(np.minimum(1, np.array(ps)[order] * np.array([3, 2, 1])))
    assert np.array(holm)[order] == pytest.approx(expected)


def _matched_corpus(rng: np.random.Generator, users: int = 300, effect: float = 0.5):
    """Matched pairs at corpus shape: every user has several treated and several control pairs, and each
    treated pair is matched to a control pair of a random other user — the treated-user/control-user
    graph is one connected component. Outcomes share a user effect."""
    sizes = rng.integers(2, 9, users)
    user = np.repeat(np.arange(users), sizes)
    shift = rng.normal(0, 1.0, users)[user]
    treated = rng.random(len(user)) < 0.5
    t_ids, c_ids = np.flatnonzero(treated), rng.permutation(np.flatnonzero(~treated))
    m = min(len(t_ids), len(c_ids))
    t_ids, c_ids = t_ids[:m], c_ids[:m]
    y = shift + rng.normal(0, 1.0, len(user)) + effect * treated
    return y[t_ids], y[c_ids], user[t_ids], user[c_ids]


def test_matched_difference_equals_a_stacked_regression_clustered_by_user_in_statsmodels():
    """ā − b̄ with its SE = the difference of two means in one regression over the stacked units (the
    treated side and the control side), weighted, cluster-robust by user."""
    rng = np.random.default_rng(11)
    a, b, ua, ub = _matched_corpus(rng, users=80)
    w = rng.uniform(0.5, 2.0, len(a))
    estimate, se, shape = matched_difference(a, b, ua, ub, w)
    y = np.concatenate([a, b])
    X = np.column_stack([np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[np.zeros(len(a)), np.ones(len(b))]])
    groups = np.concatenate([ua, ub])
    fit = sm.WLS(y, X, weights=np.concatenate([w, w])).fit(cov_type="cluster", cov_kwds={"groups": groups})
    n, k = X.shape
    contrast = np.array([1.0, -1.0])
    variance = contrast @ fit.cov_params() @ contrast * (n - k) / (n - 1)  # statsmodels' extra (N−1)/(N−K)
    assert estimate == pytest.approx(fit.params[0] - fit.params[1])
    assert se == pytest.approx(np.sqrt(variance), rel=1e-6)
    assert shape.clusters == len(np.unique(groups))


def test_matched_difference_covers_when_one_component_holds_every_pair():
    """At corpus shape the old bootstrap of connected components had one cluster to resample (an interval
    of width 0); summing by the user on each side covers at the nominal rate."""
    rng = np.random.default_rng(12)
    covered, width = [], []
    for _ in range(400):
        a, b, ua, ub = _matched_corpus(rng)
        estimate, se, shape = matched_difference(a, b, ua, ub)
        assert not shape.few
        covered.append(abs(estimate - 0.5) <= 1.959964 * se)
        width.append(2 * 1.959964 * se)
    # 400 draws: a true 95 % gives 0.925-0.97 with probability > 0.99
    assert 0.925 <= np.mean(covered) <= 0.975
    assert np.median(width) > 0.1


def test_few_clusters_switch_to_t_reference():
    many = cluster_shape(np.repeat(np.arange(400), 3))
    few = cluster_shape(np.repeat(np.arange(12), 30))
    unequal = cluster_shape(np.concatenate([np.zeros(900, int), np.arange(1, 101)]))  # one user holds 90 %
    assert not many.few and many.df is None
    assert few.few and few.df == 11
    assert unequal.few and unequal.effective < 2 and unequal.df == 100
    row = EffectRow("dr", "ATE", 1.0, 0.5, 360, df=few.df)
    low, high = row.conf_int(0.05)
    assert high - 1.0 == pytest.approx(stats.t.ppf(0.975, 11) * 0.5)
    assert row.conf_int(0.10)[1] - 1.0 == pytest.approx(stats.t.ppf(0.95, 11) * 0.5)
