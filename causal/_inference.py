"""Standard errors that respect clustering: pairs from one user are not independent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components

from . import _backend

Z95 = stats.norm.ppf(0.975)
FEW_CLUSTERS = 50  # below this many (effective) clusters the normal reference is replaced by t(G − 1)


def clustered_se(influence: np.ndarray, clusters: np.ndarray) -> float:
    """SE of an estimator from its per-unit influence values (already scaled by 1/n), summed by cluster.

    Var = G/(G-1) · Σ_g (Σ_{i∈g} IF_i)², the usual small-sample-corrected sandwich.
    """
    sums = np.bincount(clusters, weights=influence)
    groups = np.count_nonzero(np.bincount(clusters))
    if groups < 2:
        return float("nan")
    return float(np.sqrt(groups / (groups - 1) * np.sum(sums**2)))


def clustered_covariance(influence: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Covariance of several estimators from their influence columns (n × k), summed by cluster."""
    sums = np.vstack([np.bincount(clusters, weights=influence[:, j], minlength=clusters.max() + 1)
                      for j in range(influence.shape[1])]).T
    groups = np.count_nonzero(np.bincount(clusters))
    return groups / max(groups - 1, 1) * sums.T @ sums


def weighted_mean_with_se(scores: np.ndarray, clusters: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """Mean of per-unit scores (e.g. doubly robust scores) and its cluster-robust SE."""
    w = np.ones_like(scores) if weight is None else weight
    mean = float(np.sum(w * scores) / np.sum(w))
    influence = w * (scores - mean) / np.sum(w)
    return mean, clustered_se(influence, clusters)


def ratio_with_se(numerator: np.ndarray, denominator: np.ndarray, clusters: np.ndarray,
                  weight: np.ndarray | None = None) -> tuple[float, float, np.ndarray]:
    """Σ w·a / Σ w·b with its linearised cluster-robust SE; also returns the influence values."""
    w = np.ones_like(numerator) if weight is None else weight
    total = np.sum(w * denominator)
    ratio = float(np.sum(w * numerator) / total)
    influence = w * (numerator - ratio * denominator) / total
    return ratio, clustered_se(influence, clusters), influence


def difference_in_means(y: np.ndarray, t: np.ndarray, clusters: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """Treated minus control mean, with a cluster-robust SE (linearised ratio estimator)."""
    w = np.ones_like(y) if weight is None else weight
    w1, w0 = w * (t == 1), w * (t == 0)
    m1, m0 = np.sum(w1 * y) / np.sum(w1), np.sum(w0 * y) / np.sum(w0)
    influence = w1 * (y - m1) / np.sum(w1) - w0 * (y - m0) / np.sum(w0)
    return float(m1 - m0), clustered_se(influence, clusters)


def normal_interval(estimate: float, se: float) -> tuple[float, float]:
    return estimate - Z95 * se, estimate + Z95 * se


@dataclass(frozen=True)
class ClusterShape:
    """How many clusters carry an estimate, and whether a normal reference can be trusted."""

    clusters: int
    effective: float  # (Σ n_g)² / Σ n_g²: the number of equal clusters that would be as informative
    largest_share: float

    @property
    def few(self) -> bool:
        return self.clusters < FEW_CLUSTERS or self.effective < FEW_CLUSTERS

    @property
    def df(self) -> int | None:
        """Degrees of freedom of the t reference when clusters are few or very unequal; None: normal."""
        return max(self.clusters - 1, 1) if self.few else None

    def describe(self) -> str:
        return (f"{self.clusters} clusters (effective {self.effective:.0f}; the largest holds "
                f"{self.largest_share:.0%} of the units)")


def cluster_shape(clusters: np.ndarray, weight: np.ndarray | None = None) -> ClusterShape:
    sizes = np.bincount(clusters, weights=weight)
    sizes = sizes[sizes > 0]
    return ClusterShape(int(len(sizes)), float(sizes.sum() ** 2 / np.sum(sizes**2)), float(sizes.max() / sizes.sum()))


def pair_components(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cluster id per matched pair: connected components of the graph joining the two users of each pair.

    A control user reused across pairs (or a user who is treated in one pair and control in another)
    ties those pairs together; resampling components keeps every such dependence inside one draw.
    """
    if len(first) == 0:
        return np.zeros(0, dtype=int)
    codes, index = np.unique(np.concatenate([first, second]), return_inverse=True)
    a, b = index[: len(first)], index[len(first):]
    graph = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(len(codes), len(codes)))
    _, component = connected_components(graph, directed=False)
    return pd_factorize(component[a])


def pd_factorize(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1]


BOOTSTRAP_CHUNK = 100  # draws per piece of work; a piece's random stream depends only on (seed, its index)


def cluster_bootstrap(values: np.ndarray, clusters: np.ndarray, weight: np.ndarray | None, draws: int, seed: int) -> np.ndarray:
    """Bootstrap distribution of a (weighted) mean, resampling whole clusters with replacement.

    The draws come in chunks of `BOOTSTRAP_CHUNK`, chunk j from its own stream (seed, j): the same
    draws whether the chunks run here or as Ray tasks (`_backend`), in any order.
    """
    w = np.ones_like(values) if weight is None else weight
    index = np.unique(clusters, return_inverse=True)[1]
    cluster_sum = np.bincount(index, weights=w * values)
    cluster_weight = np.bincount(index, weights=w)
    chunks = [(j, min(BOOTSTRAP_CHUNK, draws - start)) for j, start in enumerate(range(0, draws, BOOTSTRAP_CHUNK))]
    parts = _backend.run(_bootstrap_chunk, chunks, cluster_sum=cluster_sum, cluster_weight=cluster_weight, seed=seed)
    return np.concatenate(parts) if parts else np.zeros(0)


def _bootstrap_chunk(chunk: tuple[int, int], cluster_sum: np.ndarray, cluster_weight: np.ndarray,
                     seed: int) -> np.ndarray:
    """`size` bootstrap means of chunk `j`: clusters drawn with replacement, counted per draw."""
    j, size = chunk
    groups = len(cluster_sum)
    picks = np.random.default_rng([seed, j]).integers(0, groups, size=(size, groups))
    counts = np.bincount((picks + groups * np.arange(size)[:, None]).ravel(),
                         minlength=size * groups).reshape(size, groups)
    return (counts @ cluster_sum) / (counts @ cluster_weight)
