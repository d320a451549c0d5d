"""What keeps `empathy estimate` inside its budget at corpus scale, checked to change nothing it should
not: the GCV ridge of the nuisance models equals scikit-learn's RidgeCV, and the forest's subsample
cap takes whole users, is seeded, and is honoured and recorded by the estimate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from empathy_study.causal._hte import forest_sample
from empathy_study.causal._nuisance import GCVRidge


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, p", [(60, 80), (400, 30), (5_000, 120)])
def test_gcv_ridge_chooses_the_alpha_and_coefficients_of_sklearns_ridgecv(n, p, weighted):
    rng = np.random.default_rng(n + p)
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 10, p)
    X[:, 1] = 0.98 * X[:, 0] + 0.02 * X[:, 1]  # near-collinear columns, as embedding components can be
    y = X[:, :4] @ rng.normal(size=4) + 3 * rng.normal(size=n) + 2.5
    weight = rng.uniform(0.01, 1, n) if weighted else None
    alphas = np.logspace(-2, 3, 12)
    ours = GCVRidge(alphas=alphas).fit(X, y, sample_weight=weight)
    theirs = RidgeCV(alphas=alphas, gcv_mode="svd").fit(X, y, sample_weight=weight)
    assert ours.alpha_ == theirs.alpha_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, rel=1e-9)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-7, atol=1e-9)
    assert ours.intercept_ == pytest.approx(theirs.intercept_, rel=1e-7, abs=1e-9)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-8, atol=1e-8)


def test_forest_sample_takes_whole_users_up_to_the_cap():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(500), rng.integers(1, 8, 500))
    chosen = forest_sample(clusters, 600, seed=2)
    assert 600 - 7 < len(chosen) <= 600
    users = np.unique(clusters[chosen])
    assert np.array_equal(np.sort(chosen), np.flatnonzero(np.isin(clusters, users)))  # every pair of a chosen user
    assert not np.array_equal(chosen, forest_sample(clusters, 600, seed=3))  # seeded draw
    assert np.array_equal(chosen, forest_sample(clusters, 600, seed=2))
    assert len(forest_sample(clusters, None, seed=2)) == len(clusters)
    assert len(forest_sample(clusters, 10 * len(clusters), seed=2)) == len(clusters)
