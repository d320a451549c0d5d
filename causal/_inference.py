"""Standard errors that respect clustering: pairs from one user are not independent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

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


def uniform_equivalent(residual: np.ndarray, probability: np.ndarray, pairs: int) -> float:
    """The labels a uniform audit (one rate for every pair) needs for the audit part of the variance that
    an audit drawn with `probability` has, from the audited pairs' residuals (gold moment minus the
    prediction that enters the correction) and their probabilities.

    With each audited pair's correction r/π, the audit part of the variance is ∝ Σ_all r²/π, estimated
    from the audited pairs as Σ r²/π²; a uniform draw of n labels gives Σ_all r²·N/n, with Σ_all r²
    estimated as Σ r²/π. Equal at n = N·Σ(r²/π) / Σ(r²/π²): for a uniform audit that is N·π, the labels it
    drew in expectation. Pure; units, not clusters.
    """
    r2 = np.asarray(residual, dtype=float) ** 2
    p = np.asarray(probability, dtype=float)
    spread = float(np.sum(r2 / p**2))
    return float(pairs * np.sum(r2 / p) / spread) if spread > 0 else float("nan")


def uniform_equivalent_interval(residual: np.ndarray, probability: np.ndarray, pairs: int, clusters: np.ndarray,
                                level: float = 0.95, draws: int = 1_000, seed: int = 0) -> tuple[float, float]:
    """A percentile interval for `uniform_equivalent`, resampling the audited pairs' clusters (users) with
    replacement: the figure rests on a few hundred residuals, a handful of which can carry most of Σ r²/π²."""
    r2 = np.asarray(residual, dtype=float) ** 2
    p = np.asarray(probability, dtype=float)
    groups, index = np.unique(clusters, return_inverse=True)
    top, bottom = np.bincount(index, weights=r2 / p, minlength=len(groups)), \
        np.bincount(index, weights=r2 / p**2, minlength=len(groups))
    picks = np.random.default_rng(seed).integers(0, len(groups), size=(draws, len(groups)))
    with np.errstate(divide="ignore", invalid="ignore"):
        resampled = pairs * top[picks].sum(axis=1) / bottom[picks].sum(axis=1)
    resampled = resampled[np.isfinite(resampled)]
    if not len(resampled):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(low), float(high)


def difference_in_means(y: np.ndarray, t: np.ndarray, clusters: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float]:
    """Treated minus control mean, with a cluster-robust SE (linearised ratio estimator)."""
    w = np.ones_like(y) if weight is None else weight
    w1, w0 = w * (t == 1), w * (t == 0)
    m1, m0 = np.sum(w1 * y) / np.sum(w1), np.sum(w0 * y) / np.sum(w0)
    influence = w1 * (y - m1) / np.sum(w1) - w0 * (y - m0) / np.sum(w0)
    return float(m1 - m0), clustered_se(influence, clusters)


def normal_interval(estimate: float, se: float) -> tuple[float, float]:
    return estimate - Z95 * se, estimate + Z95 * se


def reference_quantile(df: int | None, alpha: float = 0.05) -> float:
    """The two-sided (1 − alpha) quantile every interval of the estimate uses: t(df) where clusters are
    few (`ClusterShape.df`), the normal otherwise."""
    return float(stats.t.ppf(1 - alpha / 2, df) if df else stats.norm.ppf(1 - alpha / 2))


def interval(estimate: float, se: float, df: int | None, alpha: float = 0.05) -> tuple[float, float]:
    """estimate ± quantile · SE on the reference `reference_quantile` names."""
    quantile = reference_quantile(df, alpha)
    return estimate - quantile * se, estimate + quantile * se


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


def matched_difference(treated_side: np.ndarray, control_side: np.ndarray, treated_users: np.ndarray,
                       control_users: np.ndarray, weight: np.ndarray | None = None
                       ) -> tuple[float, float, ClusterShape]:
    """Weighted mean of matched-pair differences a − b, with an SE that sums each pair's contribution by
    the user on each side: the treated unit's part goes to its user, the control unit's part to its.

    Σw(a − b)/Σw = ā − b̄ is linear in every unit's value, so its influence splits into w(a − ā)/Σw for
    the treated unit and −w(b − b̄)/Σw for the control unit; summing those by user (Σ over users of the
    squared sums, × G/(G − 1)) lets a user's pairs — on either side, in any number — be dependent, and
    needs no connected components: at corpus scale one component of the treated-user/control-user graph
    holds nearly every pair, and a bootstrap of components has nothing left to resample. It ignores the
    covariance of the two units of one pair, so it is conservative where matching makes them alike
    (plain differences) and about right once a model removes what the covariates predict (`_bc` rows).
    Returns (estimate, SE, the shape of the user clusters).
    """
    w = np.ones(len(treated_side)) if weight is None else np.asarray(weight, dtype=float)
    total = w.sum()
    a_mean, b_mean = np.sum(w * treated_side) / total, np.sum(w * control_side) / total
    influence = np.concatenate([w * (treated_side - a_mean), -w * (control_side - b_mean)]) / total
    users = np.unique(np.concatenate([treated_users, control_users]), return_inverse=True)[1]
    return float(a_mean - b_mean), clustered_se(influence, users), cluster_shape(users)
