"""Cluster-robust SEs, SMDs and the calibration test against statsmodels and hand-worked values."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from empathy_study.causal._balance import smd
from empathy_study.causal._dr import blp_test
from empathy_study.causal._inference import cluster_bootstrap, difference_in_means, weighted_mean_with_se


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


def test_cluster_bootstrap_agrees_with_the_sandwich(clustered):
    y, _, clusters = clustered
    _, se = weighted_mean_with_se(y, clusters)
    draws = cluster_bootstrap(y, clusters, None, draws=4_000, seed=1)
    assert np.std(draws) == pytest.approx(se, rel=0.1)


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
