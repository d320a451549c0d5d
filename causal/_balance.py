"""Standardised mean differences: how alike treated and control look on each covariate."""

from __future__ import annotations

import numpy as np


def _weighted_moments(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.average(x, axis=0, weights=w)
    var = np.average((x - mean) ** 2, axis=0, weights=w)
    return mean, var


def pooled_sd(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """√((s²_treated + s²_control)/2) on the unadjusted sample: the fixed yardstick for every SMD."""
    return np.sqrt((x[t == 1].var(axis=0) + x[t == 0].var(axis=0)) / 2)


def smd(x: np.ndarray, t: np.ndarray, weight: np.ndarray | None = None, scale: np.ndarray | None = None) -> np.ndarray:
    """(mean_treated − mean_control) / scale, per column; weighted means if weights are given.

    `scale` defaults to the pooled SD of this sample; pass the unadjusted sample's pooled SD to
    compare before and after adjustment on one yardstick (Austin 2009).
    """
    w = np.ones(len(t)) if weight is None else weight
    m1, _ = _weighted_moments(x[t == 1], w[t == 1])
    m0, _ = _weighted_moments(x[t == 0], w[t == 0])
    s = pooled_sd(x, t) if scale is None else scale
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, (m1 - m0) / s, 0.0)
