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


def test_a_design_weighted_tmle_targets_the_design_weighted_ate():
    """A stratified sample: the stratum where the effect is large was drawn at 80 %, the rest at 20 %.
    With a wrong (constant) outcome model and the right propensity, the weighted DR mean and the weighted
    TMLE must both recover the population's ATE; a fluctuation solved without the weights (the weighted
    plug-in around an unweighted ε) missed it by a third on this design."""
    rng = np.random.default_rng(4)
    n = 20_000
    x = rng.normal(size=n)
    stratum = x > 0.5
    drawn = rng.random(n) < np.where(stratum, 0.8, 0.2)
    x, stratum = x[drawn], stratum[drawn]
    weight = np.where(stratum, 1 / 0.8, 1 / 0.2)
    e = np.clip(1 / (1 + np.exp(-1.2 * x)), 0.02, 0.98)
    t = (rng.random(len(x)) < e).astype(float)
    effect = np.where(stratum, 1.6, 0.2)
    latent = 3.5 + 0.8 * x + rng.normal(size=len(x))
    y0, y1 = np.clip(np.round(latent), 1, 7), np.clip(np.round(latent + effect), 1, 7)
    y = np.where(t == 1, y1, y0)
    truth = float(np.average(y1 - y0, weights=weight))
    mu0, mu1 = np.full_like(y, y[t == 0].mean()), np.full_like(y, y[t == 1].mean())
    dr = float(np.average(mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e), weights=weight))
    estimate, se, _ = tmle_ate(y, t, mu0, mu1, e, np.arange(len(y)), weight)
    assert abs(dr - truth) < 3 * se
    assert abs(estimate - truth) < 3 * se, (estimate, truth, se)
