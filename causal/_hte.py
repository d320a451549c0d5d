"""Heterogeneity: per-pair CATEs from honest forests on the doubly robust scores, a calibration test
and group effects by CATE quantile (GATES) that only use predictions from forests that never saw the
pair's user, and subgroup tables with a multiplicity correction and a joint test of equality.

The forests (econml's generalized random forest, honest) are the final stage of a DR learner: they
regress the DR scores on the effect modifiers, so they see the same cross-fitted nuisances as every
other estimate. They are fitted on the trimmed population (propensity inside [trim, 1 − trim]),
where the scores are not dominated by a few huge weights and the CATEs stay on the scale.

Why cross-fitting over users, not out-of-bag: a forest's out-of-bag prediction for a pair comes from
trees that did not see that pair but did see the same user's other pairs. When a user's prompts are
alike and users' effects differ, those trees have learnt the user's effect, and the calibration test
reads it as heterogeneity in the modifiers (the old forest rejected in 100 % of datasets where only
users differed: docs/hte-level.md). So each split puts whole users into two halves and predicts
each half with the forest fitted on the other — the generic machine-learning inference of
Chernozhukov, Demirer, Duflo & Fernández-Val (BLP and GATES), with its adjustment for taking a
median over repeated splits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from . import _backend
from ._errors import CausalError
from ._inference import clustered_covariance, normal_interval, weighted_mean_with_se

REPEATS = 5  # user splits over which the calibration test and GATES take their medians
FOLDS = 2  # each split: users into two halves, each predicted by the forest fitted on the other
QUANTILE_GROUPS = 5
TREES = 200  # trees per forest (FOLDS forests per split)
ALPHA = 0.05

CALIBRATION_HOW = (f"best linear predictor of the DR scores on the CATEs, ψ = β₁ + β₂ (τ̂ − mean τ̂): every pair's τ̂ "
                   f"from a forest fitted on other users only (users split into {FOLDS} halves, each predicted by the "
                   "forest of the other); one-sided p for H₀: β₂ ≤ 0, cluster-robust by user; over repeated splits "
                   "the median of each figure and p = min(1, 2 × median p) (Chernozhukov, Demirer, Duflo & "
                   "Fernández-Val)")
GATES_HOW = ("mean DR score within each quintile of the user-out-of-fold CATE (quintiles within each half), "
             "cluster-robust by user; over repeated splits the median estimate and the median ends of split-level "
             "97.5 % intervals, which cover with at least 95 % (Chernozhukov et al.); the simultaneous intervals: "
             "the same with Bonferroni over the groups (at least 95 % for every group at once)")



def cate_how(repeats: int) -> str:
    return (f"per pair, the mean over {repeats} user splits of the prediction of the forest fitted on the other half "
            "of the users (a pair outside the fitted sample: the mean of every forest's); no per-pair intervals — "
            "the forest's own treat pairs as independent and each interval alone, ignoring users and multiplicity")


@dataclass
class Calibration:
    """Best linear predictor of ψ on the user-out-of-fold CATE: ψ = β₁ + β₂ (τ̂ − mean τ̂) + e.

    β₂ ≈ 1: the CATEs track real heterogeneity; β₂ ≈ 0: they are noise. One-sided p for H₀: β₂ ≤ 0,
    cluster-robust. Over repeated splits: the median of each figure, and p = min(1, 2 × median p)
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


def gates(scores: np.ndarray, cate: np.ndarray, clusters: np.ndarray, folds: np.ndarray | None = None,
          groups: int = QUANTILE_GROUPS, alpha: float = ALPHA) -> list[dict]:
    """Average DR score within each quantile group of the CATE, with cluster-robust intervals at 1 − alpha
    (`ci`) and Bonferroni-simultaneous over the groups (`ci_simultaneous`). With `folds`, the quantiles are
    taken within each fold (each fold's CATEs come from one forest, whose level is its own)."""
    label = np.zeros(len(cate), dtype=int)
    for fold in np.unique(folds) if folds is not None else [None]:
        mask = np.ones(len(cate), bool) if fold is None else folds == fold
        edges = np.quantile(cate[mask], np.linspace(0, 1, groups + 1))
        label[mask] = np.clip(np.searchsorted(edges, cate[mask], side="right") - 1, 0, groups - 1)
    z, z_all = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(1 - alpha / (2 * groups))
    rows = []
    for g in range(groups):
        mask = label == g
        if mask.sum() < 2:
            continue
        estimate, se = weighted_mean_with_se(scores[mask], np.unique(clusters[mask], return_inverse=True)[1])
        rows.append({"group": f"Q{g + 1}", "n": int(mask.sum()), "cate_mean": float(cate[mask].mean()),
                     "estimate": estimate, "se": se, "ci": [estimate - z * se, estimate + z * se],
                     "ci_simultaneous": [estimate - z_all * se, estimate + z_all * se]})
    return rows


@dataclass
class ForestCate:
    cate: np.ndarray  # per pair: the mean of predictions by forests that never saw its user
    calibration: Calibration
    gates: list[dict]
    repeats: list[dict]
    fitted_on: int  # units the forests were fitted on (all, or a user-grouped subsample: `max_pairs`)
    how: dict  # what the CATEs, the calibration test and GATES are, in words (for estimates.json and the report)


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


def user_folds(clusters: np.ndarray, repeats: int, seed: int) -> np.ndarray:
    """repeats × n fold labels (0 … FOLDS − 1): each split deals the users, shuffled (seeded), into FOLDS
    halves of (nearly) equal user counts, so all of a user's pairs share a fold."""
    codes, index = np.unique(clusters, return_inverse=True)
    if len(codes) < FOLDS:
        raise CausalError(f"the heterogeneity test needs pairs of at least {FOLDS} users (got {len(codes)}): "
                          "set heterogeneity = false")
    return np.stack([(np.random.default_rng([seed, 41, r]).permutation(len(codes)) % FOLDS)[index]
                     for r in range(repeats)])


def forest_cate(modifiers: np.ndarray, scores: np.ndarray, clusters: np.ndarray, seed: int,
                repeats: int = REPEATS, trees: int = TREES, max_pairs: int | None = None,
                alpha: float = ALPHA) -> ForestCate:
    """Honest regression forests of ψ on the effect modifiers, cross-fitted over users; calibration test
    and GATES over `repeats` splits.

    The forests are fitted on `forest_sample` (every unit, or whole users up to `max_pairs` units).
    Each split deals those users into FOLDS halves; a half's CATEs come from the forest fitted on the
    other half, so no prediction the tests use comes from a forest that saw any pair of the same user.
    Each split's BLP and GATES (intervals at 1 − alpha / 2) are combined by medians (p = min(1, 2 ×
    median p); median interval ends). A pair's reported CATE is the mean of its out-of-fold predictions
    over the splits; a pair outside the fitted sample is predicted by every forest (none saw its user).
    Each forest — a split's half — is one piece of work for the backend in effect (`_backend`).
    """
    sample = forest_sample(clusters, max_pairs, seed)
    fit_clusters = np.unique(clusters[sample], return_inverse=True)[1]
    folds = user_folds(fit_clusters, repeats, seed)
    outside = np.setdiff1d(np.arange(len(scores)), sample)
    pieces = [(r, k) for r in range(repeats) for k in range(FOLDS)]
    runs = dict(zip(pieces, _backend.run(_fold_forest, pieces, modifiers=modifiers, sample=sample,
                                         scores=scores[sample], folds=folds, outside=outside, seed=seed,
                                         trees=trees)))
    tests, split_gates, held_out = [], [], np.empty((repeats, len(sample)))
    for r in range(repeats):
        for k in range(FOLDS):
            held_out[r, folds[r] == k] = runs[r, k]["held_out"]
        # centred within each half: a half's CATEs come from one forest, whose overall level is its own
        centred = held_out[r] - np.bincount(folds[r], held_out[r])[folds[r]] / np.bincount(folds[r])[folds[r]]
        tests.append(blp_test(scores[sample], centred, fit_clusters))
        split_gates.append(gates(scores[sample], held_out[r], fit_clusters, folds[r], alpha=alpha / 2))
    cate = np.empty(len(scores))
    cate[sample] = held_out.mean(axis=0)
    if len(outside):
        cate[outside] = np.mean([run["outside"] for run in runs.values()], axis=0)
    median = {f: float(np.median([getattr(t, f) for t in tests]))
              for f in ("beta_mean", "beta_mean_se", "beta_het", "beta_het_se", "p_value")}
    median["p_value"] = min(1.0, 2 * median["p_value"]) if repeats > 1 else median["p_value"]
    return ForestCate(cate, Calibration(**median, repeats=repeats), median_gates(split_gates),
                      [{"split": r, **asdict(t)} for r, t in enumerate(tests)],
                      fitted_on=int(len(sample)), how={"calibration_test": CALIBRATION_HOW, "gates": GATES_HOW,
                                                       "cate": cate_how(repeats)})


def median_gates(splits: list[list[dict]]) -> list[dict]:
    """Per group, the median over splits of the estimate and of each interval end."""
    out = []
    for g in range(max(len(s) for s in splits)):
        cells = [s[g] for s in splits if len(s) > g]
        row = {"group": cells[0]["group"], "n": int(np.median([c["n"] for c in cells])),
               "cate_mean": float(np.median([c["cate_mean"] for c in cells])),
               "estimate": float(np.median([c["estimate"] for c in cells]))}
        for key in ("ci", "ci_simultaneous"):
            row[key] = [float(np.median([c[key][0] for c in cells])), float(np.median([c[key][1] for c in cells]))]
        out.append(row)
    return out


def _fold_forest(piece: tuple[int, int], modifiers: np.ndarray, sample: np.ndarray, scores: np.ndarray,
                 folds: np.ndarray, outside: np.ndarray, seed: int, trees: int) -> dict:
    """Split r, half k: the forest fitted on the other halves' users; its CATEs for half k and for the
    units outside the fitted sample."""
    from econml.grf import RegressionForest

    r, k = piece
    train = folds[r] != k
    forest = RegressionForest(n_estimators=trees, min_samples_leaf=20, max_samples=0.45, honest=True,
                              inference=False, random_state=seed + 7_919 * r + 104_729 * k, n_jobs=1)
    forest.fit(modifiers[sample[train]], scores[train])
    predict = lambda rows: np.asarray(forest.predict(modifiers[rows])).ravel()  # noqa: E731
    return {"held_out": predict(sample[~train]),
            "outside": predict(outside) if len(outside) else np.zeros(0)}


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
