"""Heterogeneity: per-pair CATEs from an honest forest on the doubly robust scores, a calibration
test that uses the same forest's out-of-bag predictions, group effects by CATE quantile (GATES),
and subgroup tables with a multiplicity correction and a joint test of equality.

The forest (econml's generalized random forest, honest, with bootstrap-of-little-bags intervals)
is the final stage of a DR learner: it regresses the DR scores on the effect modifiers, so it sees
the same cross-fitted nuisances as every other estimate. It is fitted on the trimmed population
(propensity inside [trim, 1 − trim]), where the scores are not dominated by a few huge weights and
the CATEs stay on the scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from . import _backend
from ._inference import clustered_covariance, normal_interval, weighted_mean_with_se

REPEATS = 5  # forests (other subsample draws) over which the calibration test takes its median
QUANTILE_GROUPS = 5
TREES = 400  # trees per forest
PREDICT_BLOCK = 20_000  # units per block of the final predictions


@dataclass
class Calibration:
    """Best linear predictor of ψ on the out-of-bag CATE: ψ = β₁ + β₂ (τ̂ − mean τ̂) + e.

    β₂ ≈ 1: the CATEs track real heterogeneity; β₂ ≈ 0: they are noise. One-sided p for H₀: β₂ ≤ 0,
    cluster-robust. Over repeated forests: the median of each figure, and p = min(1, 2 × median p)
    (Chernozhukov, Demirer, Duflo & Fernández-Val's adjustment for taking a median over splits).
    """

    beta_mean: float
    beta_mean_se: float
    beta_het: float
    beta_het_se: float
    p_value: float
    repeats: int = 1


def blp_test(scores: np.ndarray, cate: np.ndarray, clusters: np.ndarray) -> Calibration:
    design = np.column_stack([np.ones(len(scores)), cate - cate.mean()])
    bread = np.linalg.pinv(design.T @ design)
    beta = bread @ design.T @ scores
    residual = scores - design @ beta
    covariance = bread @ clustered_covariance(design * residual[:, None], clusters) @ bread
    se = np.sqrt(np.diag(covariance))
    p = float(stats.norm.sf(beta[1] / se[1])) if se[1] > 0 else float("nan")
    return Calibration(float(beta[0]), float(se[0]), float(beta[1]), float(se[1]), p)


def gates(scores: np.ndarray, cate: np.ndarray, clusters: np.ndarray, groups: int = QUANTILE_GROUPS) -> list[dict]:
    """Average DR score within each quantile group of the (out-of-bag) CATE, with cluster-robust CIs."""
    edges = np.quantile(cate, np.linspace(0, 1, groups + 1))
    label = np.clip(np.searchsorted(edges, cate, side="right") - 1, 0, groups - 1)
    rows = []
    for g in range(groups):
        mask = label == g
        if mask.sum() < 2:
            continue
        estimate, se = weighted_mean_with_se(scores[mask], np.unique(clusters[mask], return_inverse=True)[1])
        rows.append({"group": f"Q{g + 1}", "n": int(mask.sum()), "cate_mean": float(cate[mask].mean()),
                     "estimate": estimate, "se": se, "ci": list(normal_interval(estimate, se))})
    return rows


@dataclass
class ForestCate:
    cate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    calibration: Calibration
    gates: list[dict]
    repeats: list[dict]
    fitted_on: int  # units the forests were fitted on (all, or a user-grouped subsample: `max_pairs`)


def forest_sample(clusters: np.ndarray, max_pairs: int | None, seed: int) -> np.ndarray:
    """Indices of the units the forest is fitted on: all of them, or whole users drawn at random
    (seeded) until the next user would pass `max_pairs` units."""
    n = len(clusters)
    if max_pairs is None or n <= max_pairs:
        return np.arange(n)
    codes, index = np.unique(clusters, return_inverse=True)
    order = np.random.default_rng([seed, 31]).permutation(len(codes))
    sizes = np.bincount(index)[order]
    chosen = order[np.cumsum(sizes) <= max_pairs]
    return np.flatnonzero(np.isin(index, chosen))


def forest_cate(modifiers: np.ndarray, scores: np.ndarray, clusters: np.ndarray, seed: int,
                repeats: int = REPEATS, trees: int = TREES, max_pairs: int | None = None) -> ForestCate:
    """Honest regression forest of ψ on the effect modifiers; calibration test over `repeats` forests.

    The forests are fitted on `forest_sample` (every unit, or whole users up to `max_pairs` units);
    the forest of repetition 0 gives the reported CATEs and their intervals for every unit; every
    repetition's BLP and GATES use that repetition's out-of-bag predictions on the units it was
    fitted on (a unit is predicted only by trees that did not see it). Each repetition, and each
    block of the final predictions, is one piece of work for the backend in effect (`_backend`).
    """
    sample = forest_sample(clusters, max_pairs, seed)
    fit_clusters = np.unique(clusters[sample], return_inverse=True)[1]
    runs = _backend.run(_forest_run, range(repeats), modifiers=modifiers[sample], scores=scores[sample],
                        clusters=fit_clusters, seed=seed, trees=trees)
    blocks = [(start, min(start + PREDICT_BLOCK, len(scores))) for start in range(0, len(scores), PREDICT_BLOCK)]
    predicted = _backend.run(_forest_predict, blocks, forest=runs[0]["forest"], modifiers=modifiers)
    reported = tuple(np.concatenate([block[i] for block in predicted]) for i in range(3))
    tests = [run["calibration"] for run in runs]
    median = {f: float(np.median([getattr(t, f) for t in tests]))
              for f in ("beta_mean", "beta_mean_se", "beta_het", "beta_het_se", "p_value")}
    median["p_value"] = min(1.0, 2 * median["p_value"]) if repeats > 1 else median["p_value"]
    calibration = Calibration(**median, repeats=repeats)
    # GATES: per group, the median over repetitions of estimate and interval ends.
    median_gates = []
    for g in range(len(runs[0]["gates"])):
        cells = [run["gates"][g] for run in runs if len(run["gates"]) > g]
        median_gates.append({
            "group": cells[0]["group"], "n": int(np.median([c["n"] for c in cells])),
            "cate_mean": float(np.median([c["cate_mean"] for c in cells])),
            "estimate": float(np.median([c["estimate"] for c in cells])),
            "ci": [float(np.median([c["ci"][0] for c in cells])), float(np.median([c["ci"][1] for c in cells]))],
        })
    return ForestCate(*reported, calibration, median_gates,
                      [{"seed": seed + 7_919 * r, **asdict(run["calibration"])} for r, run in enumerate(runs)],
                      fitted_on=int(len(sample)))


def _forest_run(r: int, modifiers: np.ndarray, scores: np.ndarray, clusters: np.ndarray, seed: int,
                trees: int) -> dict:
    """Repetition r: its forest, its out-of-bag calibration test and GATES."""
    from econml.grf import RegressionForest

    forest = RegressionForest(n_estimators=trees, min_samples_leaf=20, max_samples=0.45, honest=True,
                              inference=True, random_state=seed + 7_919 * r, n_jobs=1)
    forest.fit(modifiers, scores)
    oob = np.asarray(forest.oob_predict(modifiers)).ravel()
    usable = np.isfinite(oob)
    return {"calibration": blp_test(scores[usable], oob[usable], clusters[usable]),
            "gates": gates(scores[usable], oob[usable], clusters[usable]),
            "forest": forest if r == 0 else None}


def _forest_predict(block: tuple[int, int], forest, modifiers: np.ndarray) -> tuple[np.ndarray, ...]:
    """CATE and 95 % interval for the units block[0]:block[1]."""
    rows = modifiers[block[0]:block[1]]
    low, high = forest.predict_interval(rows, alpha=0.05)
    return np.asarray(forest.predict(rows)).ravel(), np.asarray(low).ravel(), np.asarray(high).ravel()


def subgroup_table(scores: np.ndarray, labels: np.ndarray, clusters: np.ndarray, weight: np.ndarray | None,
                   min_units: int = 20, alpha: float = 0.05) -> dict:
    """Average effect (mean ψ) within each group; Holm-adjusted p-values, Bonferroni-simultaneous
    intervals, and a cluster-robust Wald test that every group's effect is equal."""
    w = np.ones(len(scores)) if weight is None else weight
    names = sorted(set(labels))
    small = [g for g in names if np.sum(labels == g) < min_units]
    kept = [g for g in names if g not in small]
    rows = [{"group": str(g), "n": int(np.sum(labels == g)), "estimate": None, "ci": None,
             "note": f"fewer than {min_units} pairs"} for g in small]
    if not kept:
        return {"groups": rows, "joint_test": None, "correction": "holm"}
    influence = np.zeros((len(scores), len(kept)))
    estimates = []
    for j, g in enumerate(kept):
        mask = labels == g
        total = np.sum(w[mask])
        estimate = float(np.sum(w[mask] * scores[mask]) / total)
        influence[mask, j] = w[mask] * (scores[mask] - estimate) / total
        estimates.append(estimate)
    estimates = np.array(estimates)
    covariance = clustered_covariance(influence, clusters)
    se = np.sqrt(np.diag(covariance))
    p = 2 * stats.norm.sf(np.abs(estimates / se))
    order = np.argsort(p)
    holm = np.empty(len(p))
    running = 0.0
    for rank, j in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[j]))
        holm[j] = running
    z_simultaneous = stats.norm.ppf(1 - alpha / (2 * len(kept)))
    for j, g in enumerate(kept):
        rows.append({"group": str(g), "n": int(np.sum(labels == g)), "estimate": float(estimates[j]),
                     "se": float(se[j]), "ci": list(normal_interval(estimates[j], se[j])),
                     "ci_simultaneous": [float(estimates[j] - z_simultaneous * se[j]),
                                         float(estimates[j] + z_simultaneous * se[j])],
                     "p_value": float(p[j]), "p_holm": float(holm[j])})
    rows.sort(key=lambda r: r["group"])
    joint = None
    if len(kept) > 1:
        contrast = np.column_stack([-np.ones(len(kept) - 1), np.eye(len(kept) - 1)])
        diff = contrast @ estimates
        statistic = float(diff @ np.linalg.pinv(contrast @ covariance @ contrast.T) @ diff)
        joint = {"statistic": statistic, "df": len(kept) - 1, "p_value": float(stats.chi2.sf(statistic, len(kept) - 1)),
                 "test": "Wald χ² that every group's effect is equal (cluster-robust)"}
    return {"groups": rows, "joint_test": joint, "correction": "holm (p-values), bonferroni (simultaneous intervals)"}
