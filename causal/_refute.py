"""Refuters of the DR ATE: each refits the cross-fitted nuisances on altered data and gives a verdict.

- placebo: the treatment permuted across all pairs: the effect of a treatment that did nothing must
  be ≈ 0 with an interval covering 0. (Not within user: a within-user shuffle keeps each user's share
  of treated pairs, so under a real effect the placebo inherits the between-user part of it and
  fails on a sound design — tests/causal/test_refute.py shows it.);
- random_common_cause: an independent N(0, 1) column added to the confounders: the estimate must
  move by less than half its SE;
- subsample: five random 80 % subsets of users: every estimate must stay inside the full interval
  (a subset estimate differs from the full one by about half an SE, so leaving it signals instability);
- leave_one_model_out: the pairs of each model dropped in turn: the effect must keep its sign (and
  its significance, where the full estimate has it), i.e. no single model carries it.

Pure functions over arrays; the registry maps each name to its function. Each refit costs one
cross-fitting of the nuisances (subsample: five; leave_one_model_out: one per model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ._errors import CausalError
from ._inference import cluster_shape, weighted_mean_with_se
from ._nuisance import crossfit, dr_scores

SUBSAMPLES = 5
SUBSAMPLE_SHARE = 0.8
STABLE_SHIFT = 0.5  # random common cause: largest move, in SEs of the original estimate


@dataclass
class Problem:
    """What a refuter refits: the in-arm rows, their confounders, user clusters and the nuisance settings."""

    X: Callable[[int], np.ndarray]  # the confounder matrix a model fitted on n pairs sees (Confounders.for_sample)
    t: np.ndarray  # 1/0
    y: np.ndarray
    clusters: np.ndarray  # integer user codes
    models: np.ndarray  # the assistant's model per row
    folds: np.ndarray  # cross-fitting fold per row (grouped by user): the estimate's own folds
    kind: str  # "linear" or "boosting"
    clip: float
    seed: int
    negative_control: np.ndarray | None = None  # the prompt's attachment (NaN where unscored): causal/_negative_control.py


@dataclass
class Estimate:
    estimate: float
    se: float
    low: float
    high: float
    n: int

    def to_json(self) -> dict:
        return {"estimate": self.estimate, "se": self.se, "ci_low": self.low, "ci_high": self.high, "n": self.n}

    @property
    def covers_zero(self) -> bool:
        return self.low <= 0 <= self.high


def dr_estimate(problem: Problem, mask: np.ndarray | None = None, t: np.ndarray | None = None,
                X: np.ndarray | None = None) -> Estimate:
    """The DR ATE with freshly cross-fitted nuisances on the rows of `mask` (the estimate's folds,
    restricted to those rows, so users stay within one fold); unaltered, it reproduces the `dr` row."""
    mask = np.ones(len(problem.y), bool) if mask is None else mask
    t = (problem.t if t is None else t)[mask]
    X = (problem.X(int(mask.sum())) if X is None else X)[mask]
    y = problem.y[mask]
    clusters = np.unique(problem.clusters[mask], return_inverse=True)[1]
    nuisances = crossfit(X, t, y, np.ones(len(y), bool), problem.folds[mask], problem.kind, problem.seed)
    scores = dr_scores(nuisances, t, y, problem.clip)
    estimate, se = weighted_mean_with_se(scores, clusters)
    shape = cluster_shape(clusters)
    quantile = stats.t.ppf(0.975, shape.df) if shape.df else stats.norm.ppf(0.975)
    return Estimate(estimate, se, estimate - quantile * se, estimate + quantile * se, int(len(y)))


def placebo(problem: Problem, original: Estimate) -> dict:
    rng = np.random.default_rng([problem.seed, 11])
    fake = rng.permutation(problem.t)
    result = dr_estimate(problem, t=fake)
    passed = result.covers_zero
    return {"verdict": "passed" if passed else "failed", **result.to_json(),
            "agreement_with_treatment": float(np.mean(fake == problem.t)),
            "summary": (f"treatment permuted across all pairs: effect {result.estimate:+.3f} "
                        f"[{result.low:.3f}, {result.high:.3f}] — "
                        + ("covers 0, as it should" if passed else "does not cover 0: the design finds an effect "
                                                                    "where none can exist"))}


def random_common_cause(problem: Problem, original: Estimate) -> dict:
    rng = np.random.default_rng([problem.seed, 12])
    X = np.column_stack([problem.X(len(problem.y)), rng.normal(size=len(problem.y))])
    result = dr_estimate(problem, X=X)
    shift = result.estimate - original.estimate
    passed = abs(shift) <= STABLE_SHIFT * original.se
    return {"verdict": "passed" if passed else "failed", **result.to_json(), "shift": shift,
            "shift_in_se": shift / original.se, "limit_in_se": STABLE_SHIFT,
            "summary": (f"an independent random confounder added: {original.estimate:+.3f} → {result.estimate:+.3f} "
                        f"({shift / original.se:+.2f} SE; stable within ±{STABLE_SHIFT:g} SE: "
                        f"{'yes' if passed else 'no'})")}


def subsample(problem: Problem, original: Estimate) -> dict:
    rng = np.random.default_rng([problem.seed, 13])
    users = np.unique(problem.clusters)
    runs = []
    for _ in range(SUBSAMPLES):
        keep = rng.choice(users, size=int(round(SUBSAMPLE_SHARE * len(users))), replace=False)
        try:
            runs.append(dr_estimate(problem, mask=np.isin(problem.clusters, keep)))
        except CausalError as exc:
            return {"verdict": "not run", "summary": f"a subset could not be estimated: {exc}", "estimates": []}
    estimates = np.array([r.estimate for r in runs])
    inside = (estimates >= original.low) & (estimates <= original.high)
    passed = bool(inside.all())
    return {"verdict": "passed" if passed else "failed", "estimates": estimates.tolist(),
            "runs": [r.to_json() for r in runs], "share": SUBSAMPLE_SHARE,
            "summary": (f"{SUBSAMPLES} subsets of {SUBSAMPLE_SHARE:.0%} of the users: estimates "
                        f"{estimates.min():+.3f} … {estimates.max():+.3f}; {int(inside.sum())} of {SUBSAMPLES} "
                        f"inside the full interval [{original.low:.3f}, {original.high:.3f}]")}


def leave_one_model_out(problem: Problem, original: Estimate) -> dict:
    models = np.unique(problem.models)
    if len(models) < 2:
        return {"verdict": "not run", "summary": f"only one model ({models[0]}) in the data", "by_model": {}}
    by_model, problems = {}, []
    for model in models:
        try:
            result = dr_estimate(problem, mask=problem.models != model)
        except CausalError as exc:
            problems.append(f"without {model}: {exc}")
            continue
        by_model[str(model)] = result.to_json()
        same_sign = np.sign(result.estimate) == np.sign(original.estimate)
        significant = not original.covers_zero
        if not same_sign or (significant and result.covers_zero):
            problems.append(f"without {model}: {result.estimate:+.3f} [{result.low:.3f}, {result.high:.3f}]")
    passed = not problems
    values = [v["estimate"] for v in by_model.values()]
    span = f"{min(values):+.3f} … {max(values):+.3f}" if values else "none estimable"
    return {"verdict": "passed" if passed else "failed", "by_model": by_model,
            "summary": (f"each of {len(models)} models dropped in turn: {span}"
                        + ("; same sign" + (" and significance" if not original.covers_zero else "") + " throughout"
                           if passed else "; the effect depends on one model — " + "; ".join(problems)))}


REFUTERS: dict[str, Callable[[Problem, Estimate], dict]] = {
    "placebo": placebo,
    "random_common_cause": random_common_cause,
    "subsample": subsample,
    "leave_one_model_out": leave_one_model_out,
}


def refute(problem: Problem, names: list[str], original: Estimate | None = None,
           say: Callable[[str], None] = lambda step: None) -> dict:
    """Run the named refuters against the DR ATE of `problem` (refitted once here when not given)."""
    original = original or dr_estimate(problem)
    out = {}
    for name in names:
        say(f"refuter: {name.replace('_', ' ')}")
        try:
            out[name] = REFUTERS[name](problem, original)
        except CausalError as exc:  # e.g. a fold left with too few pairs of one arm
            out[name] = {"verdict": "not run", "summary": f"could not refit: {exc}"}
    return out
