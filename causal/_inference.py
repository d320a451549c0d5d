"""Standard errors that respect clustering: pairs from one user are not independent."""

from __future__ import annotations

import numpy as np
from scipy import stats

Z95 = stats.norm.ppf(0.975)


def clustered_se(influence: np.ndarray, clusters: np.ndarray) -> float:
    """SE of an estimator from its per-unit influence values (already scaled by 1/n), summed by cluster.

    Var = G/(G-1) · Σ_g (Σ_{i∈g} IF_i)², the usual small-sample-corrected sandwich.
    """
    sums = np.bincount(clusters, weights=influence)
    groups = np.count_nonzero(np.bincount(clusters))
    if groups < 2:
        return float("nan")
    return float(np.sqrt(groups / (groups - 1) * np.sum(sums**2)))


def weighted_mean_with_se(scores: np.ndarray, clusters: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """Mean of per-unit scores (e.g. doubly robust scores) and its cluster-robust SE."""
    w = np.ones_like(scores) if weight is None else weight
    mean = float(np.sum(w * scores) / np.sum(w))
    influence = w * (scores - mean) / np.sum(w)
    return mean, clustered_se(influence, clusters)


def difference_in_means(y: np.ndarray, t: np.ndarray, clusters: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """Treated minus control mean, with a cluster-robust SE (linearised ratio estimator)."""
    w = np.ones_like(y) if weight is None else weight
    w1, w0 = w * (t == 1), w * (t == 0)
    m1, m0 = np.sum(w1 * y) / np.sum(w1), np.sum(w0 * y) / np.sum(w0)
    influence = w1 * (y - m1) / np.sum(w1) - w0 * (y - m0) / np.sum(w0)
    return float(m1 - m0), clustered_se(influence, clusters)


def normal_interval(estimate: float, se: float) -> tuple[float, float]:
    return estimate - Z95 * se, estimate + Z95 * se


def cluster_bootstrap(values: np.ndarray, clusters: np.ndarray, weight: np.ndarray | None, draws: int, seed: int) -> np.ndarray:
    """Bootstrap distribution of a (weighted) mean, resampling whole clusters with replacement."""
    rng = np.random.default_rng(seed)
    w = np.ones_like(values) if weight is None else weight
    codes, index = np.unique(clusters, return_inverse=True)
    cluster_sum = np.bincount(index, weights=w * values)
    cluster_weight = np.bincount(index, weights=w)
    picks = rng.integers(0, len(codes), size=(draws, len(codes)))
    counts = np.apply_along_axis(np.bincount, 1, picks, minlength=len(codes))
    return (counts @ cluster_sum) / (counts @ cluster_weight)
