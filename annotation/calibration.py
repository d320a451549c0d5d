"""Calibrating judges against human gold labels, as pure functions over arrays.

- A monotone (isotonic) map from a judge's score — the integer score, or the logprob-expected
  score where it was recorded — to the human 1..7 scale (scikit-learn's `IsotonicRegression`),
  stored as its breakpoints so a lock file can hold it and `apply` it later.
- Cross-fitting in folds grouped by user: every pair's calibrated score comes from maps (and
  panel weights) fitted on other users' pairs only, so the before/after figures are held out.
- A panel aggregate: mean, median, or non-negative weights summing to 1 fitted on gold.
- Figures on the scale the estimate uses: the treatment class (treated / excluded / control under
  a rule) of a score against the class of the gold label, as a 3×3 confusion matrix and the share
  of pairs whose arm differs.
- Agreement with the annotators through `annotation.agreement` (the one implementation of α, κ,
  MAE, bias and the unit bootstrap): judge–human α is the mean pairwise α of the judge with each
  annotator, the human ceiling the mean pairwise α between annotators, and the gap between them on
  the *same* units gets a joint unit bootstrap (both figures from each resample).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .agreement import AgreementError, alpha, bias, mae, percentile_ci, quadratic_kappa, resamples, to_levels

SCALE = (1.0, 7.0)  # the human scale a map predicts on
AGGREGATES = ("mean", "median", "weights")
CLASSES = ("treated", "excluded", "control")


@dataclass(frozen=True)
class IsotonicMap:
    """A monotone map by its breakpoints: linear between them, flat beyond the ends (as sklearn predicts)."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def apply(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        return np.interp(values, self.x, self.y)

    def to_json(self) -> dict:
        return {"x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_json(cls, data: dict) -> "IsotonicMap":
        return cls(tuple(float(v) for v in data["x"]), tuple(float(v) for v in data["y"]))


def fit_isotonic(x, y) -> IsotonicMap:
    """The non-decreasing map from judge scores `x` to gold scores `y` (least squares, bounded to 1..7)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        raise AgreementError(f"an isotonic map needs at least 2 gold pairs (got {len(x)})")
    # scikit-learn loads only when a map is fitted: every `empathy` command imports this module
    from sklearn.isotonic import IsotonicRegression

    model = IsotonicRegression(y_min=SCALE[0], y_max=SCALE[1], increasing=True, out_of_bounds="clip").fit(x, y)
    xs, ys = model.X_thresholds_, model.y_thresholds_
    if len(xs) == 1:  # a judge that gave one value: the map is the mean gold score everywhere
        xs, ys = np.array([xs[0], xs[0]]), np.array([ys[0], ys[0]])
    return IsotonicMap(tuple(float(v) for v in xs), tuple(float(v) for v in ys))


def group_folds(groups, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays; a user's pairs all fall in one test fold."""
    groups = np.asarray(groups)
    n_groups = np.unique(groups).size
    if n_groups < 2:
        raise AgreementError(f"cross-validation grouped by user needs at least 2 users (got {n_groups})")
    from sklearn.model_selection import GroupKFold

    splitter = GroupKFold(n_splits=min(folds, n_groups), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(groups)), groups=groups))


def aggregate(matrix, how: str, weights=None) -> np.ndarray:
    """Panel score per row of a pairs × judges matrix."""
    matrix = np.asarray(matrix, dtype=float)
    if how == "mean":
        return matrix.mean(axis=1)
    if how == "median":
        return np.median(matrix, axis=1)
    if how == "weights":
        return matrix @ np.asarray(weights, dtype=float)
    raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)} (got {how!r})")


def fit_weights(matrix, y) -> np.ndarray:
    """Non-negative weights summing to 1 that best predict `y` (least squares); equal when none helps."""
    matrix, y = np.asarray(matrix, dtype=float), np.asarray(y, dtype=float)
    from scipy.optimize import nnls

    weights, _ = nnls(matrix, y)
    total = weights.sum()
    return weights / total if total > 0 else np.full(matrix.shape[1], 1.0 / matrix.shape[1])


@dataclass
class PanelFit:
    maps: list[IsotonicMap]  # one per judge (column), fitted on every row given
    how: str
    weights: np.ndarray | None  # for how == "weights"

    def predict(self, raw) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        calibrated = np.column_stack([m.apply(raw[:, j]) for j, m in enumerate(self.maps)])
        return aggregate(calibrated, self.how, self.weights)


def fit_panel(raw, y, how: str) -> PanelFit:
    """Each judge's isotonic map, then the aggregate of the calibrated scores (weights fitted on the same rows)."""
    raw, y = np.asarray(raw, dtype=float), np.asarray(y, dtype=float)
    if how not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)} (got {how!r})")
    maps = [fit_isotonic(raw[:, j], y) for j in range(raw.shape[1])]
    weights = None
    if how == "weights":
        calibrated = np.column_stack([m.apply(raw[:, j]) for j, m in enumerate(maps)])
        weights = fit_weights(calibrated, y)
    return PanelFit(maps, how, weights)


@dataclass
class CrossFit:
    held_out: np.ndarray  # each row's panel score from a fit that never saw its user
    held_out_judges: np.ndarray  # rows × judges: each judge's held-out calibrated score
    fold: np.ndarray  # the test fold of each row
    final: PanelFit  # fitted on every row: what a lock stores


def cross_fit(raw, y, groups, how: str, folds: int = 5, seed: int = 0) -> CrossFit:
    """Held-out calibrated scores by folds grouped by user, and the fit on all rows."""
    raw, y = np.asarray(raw, dtype=float), np.asarray(y, dtype=float)
    if raw.ndim == 1:
        raw = raw[:, None]
    held_out = np.full(len(y), np.nan)
    held_judges = np.full(raw.shape, np.nan)
    fold_of = np.full(len(y), -1)
    for k, (train, test) in enumerate(group_folds(groups, folds, seed)):
        fit = fit_panel(raw[train], y[train], how)
        held_judges[test] = np.column_stack([m.apply(raw[test, j]) for j, m in enumerate(fit.maps)])
        held_out[test] = fit.predict(raw[test])
        fold_of[test] = k
    return CrossFit(held_out, held_judges, fold_of, fit_panel(raw, y, how))


def treatment_class(values, high: float, low: float) -> np.ndarray:
    """'treated' (≥ high), 'control' (≤ low), 'excluded' (strictly between); '' where there is no value."""
    values = np.asarray(values, dtype=float)
    return np.select([np.isnan(values), values >= high, values <= low], ["", "treated", "control"], "excluded")


def class_confusion(scores, gold, high: float, low: float) -> np.ndarray:
    """3×3 counts: rows = the class of the score, columns = the class of the gold label (order `CLASSES`)."""
    a, b = treatment_class(scores, high, low), treatment_class(gold, high, low)
    both = (a != "") & (b != "")
    table = np.zeros((3, 3), dtype=int)
    for i, row in enumerate(CLASSES):
        for j, column in enumerate(CLASSES):
            table[i, j] = int(np.sum(both & (a == row) & (b == column)))
    return table


def flip_share(scores, other, high: float, low: float) -> float | None:
    """The share of pairs (with both values) whose treatment class differs between two scorings."""
    a, b = treatment_class(scores, high, low), treatment_class(other, high, low)
    both = (a != "") & (b != "")
    return float(np.mean(a[both] != b[both])) if both.any() else None


def _pair_alpha(a: np.ndarray, b: np.ndarray) -> float | None:
    both = ~np.isnan(a) & ~np.isnan(b)
    if both.sum() < 2:
        return None
    return alpha(np.vstack([a[both], b[both]]), "ordinal")


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def judge_alpha(judge, humans) -> float | None:
    """Mean pairwise α ordinal of a judge (units) with each annotator (rows of annotators × units, NaN = unlabelled)."""
    judge = to_levels(judge)
    return _mean([_pair_alpha(judge, row) for row in np.asarray(humans, dtype=float)])


def human_alpha(humans) -> float | None:
    """Mean pairwise α ordinal between annotators: the ceiling a judge is measured against."""
    humans = np.asarray(humans, dtype=float)
    return _mean([_pair_alpha(humans[i], humans[j]) for i, j in itertools.combinations(range(len(humans)), 2)])


def judge_kappa(judge, humans) -> float | None:
    """Mean quadratic-weighted κ of a judge with each annotator."""
    judge = to_levels(judge)
    found = []
    for row in np.asarray(humans, dtype=float):
        both = ~np.isnan(judge) & ~np.isnan(row)
        if both.sum() < 2 or np.unique(np.concatenate([judge[both], row[both]])).size < 2:
            continue
        found.append(quadratic_kappa(judge[both], row[both]))
    return _mean(found)


def gold_mean(humans) -> np.ndarray:
    """The gold score of each unit: the mean over its annotators (NaN where nobody labelled it)."""
    humans = np.asarray(humans, dtype=float)
    labelled = ~np.isnan(humans)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(labelled.any(axis=0), np.nansum(humans, axis=0) / labelled.sum(axis=0), np.nan)


def rater_figures(judge, humans, high: float, low: float, *, boot: int = 0, seed: int = 0) -> dict:
    """A (possibly unrounded) judge or panel score against the annotators, on the units it scored.

    α ordinal and κ on levels; MAE and bias (mean of judge − gold) unrounded against the gold mean;
    the treatment-class confusion and the share of pairs in another arm than their gold label.
    """
    judge, humans = np.asarray(judge, dtype=float), np.asarray(humans, dtype=float)
    gold = gold_mean(humans)
    units = ~np.isnan(judge) & ~np.isnan(gold)
    judge, humans, gold = judge[units], humans[:, units], gold[units]
    n = int(units.sum())
    figures = {"n": n, "alpha": judge_alpha(judge, humans) if n >= 2 else None,
               "kappa": judge_kappa(judge, humans) if n >= 2 else None,
               "mae": mae(gold, judge) if n else None,
               "bias": bias(gold, judge) if n else None,
               "confusion": class_confusion(judge, gold, high, low).tolist(),
               "flip": flip_share(judge, gold, high, low), "ci": None}
    if boot and figures["alpha"] is not None:
        figures["ci"] = percentile_ci([judge_alpha(judge[pick], humans[:, pick]) for pick in resamples(n, boot, seed)],
                                      boot)
    return figures


def ceiling_gap(judge, humans, *, boot: int = 0, seed: int = 0, cache: dict | None = None) -> dict:
    """Human–human α (the ceiling) and the judge's α on the same units — those with ≥ 2 annotators
    and a judge score — and the gap ceiling − judge, each with a joint unit-bootstrap interval.

    `cache` (a dict the caller keeps) reuses the ceiling's bootstrap draws between judges that
    scored the same units: the resamples depend only on the units, `boot` and `seed`.
    """
    judge, humans = np.asarray(judge, dtype=float), np.asarray(humans, dtype=float)
    units = (np.sum(~np.isnan(humans), axis=0) >= 2) & ~np.isnan(judge)
    judge, humans = to_levels(judge[units]), humans[:, units]
    n = int(units.sum())
    ceiling = human_alpha(humans) if n >= 2 else None
    own = judge_alpha(judge, humans) if n >= 2 else None
    gap = ceiling - own if ceiling is not None and own is not None else None
    result = {"n": n, "ceiling": ceiling, "judge": own, "gap": gap, "ceiling_ci": None, "gap_ci": None}
    if boot and gap is not None:
        picks = resamples(n, boot, seed)
        key = (units.tobytes(), boot, seed)
        if cache is not None and key in cache:
            ceilings = cache[key]
        else:
            ceilings = [human_alpha(humans[:, pick]) for pick in picks]
            if cache is not None:
                cache[key] = ceilings
        gaps = []
        for c, pick in zip(ceilings, picks):
            j = judge_alpha(judge[pick], humans[:, pick])
            gaps.append(c - j if c is not None and j is not None else None)
        result["ceiling_ci"], result["gap_ci"] = percentile_ci(ceilings, boot), percentile_ci(gaps, boot)
    return result


def human_ceiling(humans, *, boot: int = 0, seed: int = 0) -> dict:
    """Mean pairwise human–human α on the units with ≥ 2 annotators, with a unit-bootstrap interval."""
    humans = np.asarray(humans, dtype=float)
    humans = humans[:, np.sum(~np.isnan(humans), axis=0) >= 2] if humans.size else humans.reshape(0, 0)
    n = humans.shape[1] if humans.ndim == 2 else 0
    value = human_alpha(humans) if n >= 2 else None
    ci = None
    if boot and value is not None:
        ci = percentile_ci([human_alpha(humans[:, pick]) for pick in resamples(n, boot, seed)], boot)
    return {"n": int(n), "alpha": value, "ci": ci}
