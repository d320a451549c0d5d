"""Targeted maximum likelihood (TMLE) of the ATE from the same cross-fitted nuisances as `dr`.

The outcome is mapped to [0, 1] by its scale (1–7), the per-arm predictions are fluctuated along
the clever covariate H = T/e − (1 − T)/(1 − e) by a logistic regression with offset logit Q (one
parameter ε, Newton steps), and the ATE is the mean of Q₁* − Q₀* mapped back. Unlike the DR mean it
is a plug-in, so it stays inside the scale's range however extreme the propensities; with good
overlap the two agree (their difference is second order). The SE comes from the efficient influence
function summed by user.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from ._inference import weighted_mean_with_se

BOUND = 1e-3  # predictions on [0, 1] are kept inside [BOUND, 1 − BOUND] before the logit


def fluctuate(y01: np.ndarray, t: np.ndarray, q0: np.ndarray, q1: np.ndarray, e: np.ndarray,
              weight: np.ndarray | None = None, steps: int = 50) -> float:
    """ε of the logistic fluctuation: solves Σ w H (Y − expit(logit Q_T + ε H)) = 0.

    The weights are those of the plug-in the ATE averages over: a design-weighted estimate targets the
    fluctuation with the design weights too, or the efficient-influence-function term it is meant to
    remove is removed from the wrong average (an unweighted ε under a weighted plug-in left the
    weighted ATE a third low on a stratified design: tests/causal/test_tmle.py)."""
    w = np.ones_like(y01) if weight is None else weight
    h = t / e - (1 - t) / (1 - e)
    offset = logit(np.where(t == 1, q1, q0))
    epsilon = 0.0
    for _ in range(steps):
        p = expit(offset + epsilon * h)
        gradient = np.sum(w * h * (y01 - p))
        hessian = np.sum(w * h**2 * p * (1 - p))
        step = gradient / hessian
        epsilon += step
        if abs(step) < 1e-10:
            break
    return float(epsilon)


def tmle_ate(y: np.ndarray, t: np.ndarray, mu0: np.ndarray, mu1: np.ndarray, e: np.ndarray, clusters: np.ndarray,
             weight: np.ndarray | None = None, scale: tuple[float, float] = (1.0, 7.0)) -> tuple[float, float, float]:
    """(ATE, cluster-robust SE, ε) on the outcome's own scale. `e` is the (clipped) propensity."""
    low, width = scale[0], scale[1] - scale[0]
    y01 = (y - low) / width
    q0 = np.clip((mu0 - low) / width, BOUND, 1 - BOUND)
    q1 = np.clip((mu1 - low) / width, BOUND, 1 - BOUND)
    epsilon = fluctuate(y01, t, q0, q1, e, weight)
    q1s = expit(logit(q1) + epsilon / e)
    q0s = expit(logit(q0) - epsilon / (1 - e))
    qts = np.where(t == 1, q1s, q0s)
    h = t / e - (1 - t) / (1 - e)
    # the plug-in is the (weighted) mean of Q1* − Q0*; adding H(Y − Q_T*) — whose weighted mean the targeting
    # step set to zero — gives the influence-function scores whose clustered spread is the SE
    scores = q1s - q0s + h * (y01 - qts)
    w = np.ones_like(y) if weight is None else weight
    plug_in = float(np.sum(w * (q1s - q0s)) / np.sum(w))
    _, se = weighted_mean_with_se(scores, clusters, weight)
    return width * plug_in, width * se, epsilon
