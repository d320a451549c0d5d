"""TMLE's targeting step, on data whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from empathy_study.causal._tmle import tmle_ate


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 4_000
    x = rng.normal(size=n)
    e = np.clip(1 / (1 + np.exp(-1.5 * x)), 0.01, 0.99)
    t = (rng.random(n) < e).astype(float)
    y = np.clip(np.round(4 + x + 0.6 * t + rng.normal(size=n)), 1, 7)
    return x, e, t, y


def test_targeting_solves_the_efficient_score_equation(data):
    x, e, t, y = data
    mu0, mu1 = np.full_like(y, y[t == 0].mean()), np.full_like(y, y[t == 1].mean())  # a wrong outcome model
    estimate, se, epsilon = tmle_ate(y, t, mu0, mu1, e, np.arange(len(y)))
    q = np.where(t == 1, mu1, mu0)
    h = t / e - (1 - t) / (1 - e)
    updated = expit(logit((q - 1) / 6) + epsilon * h)
    assert np.sum(h * ((y - 1) / 6 - updated)) == pytest.approx(0, abs=1e-8)
    naive = y[t == 1].mean() - y[t == 0].mean()
    dr = np.mean(mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e))
    # a wrong outcome model and a right propensity: both remove the confounding the naive difference keeps
    assert abs(naive - 0.6) > 10 * se
    assert abs(estimate - 0.6) < 3 * se and abs(dr - 0.6) < 3 * se


def test_with_the_true_outcome_model_the_fluctuation_is_small(data):
    x, e, t, y = data
    # E[Y | X, T] of the rounded, clipped outcome, by simulation from the same model
    draws = np.random.default_rng(1).normal(size=(400, 1))
    mu = [np.clip(np.round(4 + x + 0.6 * arm + draws), 1, 7).mean(axis=0) for arm in (0, 1)]
    estimate, se, epsilon = tmle_ate(y, t, mu[0], mu[1], e, np.arange(len(y)))
    assert abs(epsilon) < 0.02
    assert estimate == pytest.approx(np.mean(mu[1] - mu[0]), abs=se)
