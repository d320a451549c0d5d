"""Refuters: each re-estimates an effect on altered data and gives a verdict — and says what it can
detect, because a check that cannot fail is not a check.

- placebo (a *software check*): the treatment permuted across pairs (within audit strata where human
  labels exist). A treatment that did nothing must show ≈ 0 with an interval covering 0. It catches
  an estimator that finds effects in noise (broken cross-fitting, intervals far too narrow); it fails
  with probability ≈ its level (5 %) on a sound estimator; it has NO power against confounding — a
  permuted treatment is unconfounded by construction. (Not within user: a within-user shuffle keeps
  each user's share of treated pairs, so under a real effect it inherits the between-user part and
  fails on a sound design — tests/causal/test_refute.py shows it.)
- leave_one_model_out (a test of *dependence on one assistant model*): the pairs of each model dropped
  in turn; it fails when dropping one flips the effect (significantly), or leaves an effect whose
  interval covers 0 and which lies significantly below the full one (the drop judged by its own SE,
  √(SE²_rest − SE²_full), as nested estimates allow; √(SE²_rest + SE²_full) where the rest is the more
  precise). Losing significance alone is no failure: a
  third fewer pairs lose it often under an even effect. It
  detects an effect carried by a single model; it says nothing about confounding.
- negative_control_outcome (a test of *confounding*, `_negative_control.py`): the effect on the
  attachment the prompt already expresses, which the response cannot have caused.

Each refuter is a pure function of a `Problem`: the rows of one estimate (the judge-label `dr`, or the
primary `dr_gold_corrected`) and a `refit` that re-estimates it on an `Alteration` of those rows.
Their measured level and power on the bench designs (bench/estimator_coverage.py) are in the
validation record the report shows beside each verdict (`_validation.py`).

Retired (they passed by construction): random_common_cause, subsample (`_registry.RETIRED_REFUTERS`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._errors import CausalError
from ._inference import cluster_shape, interval, weighted_mean_with_se
from ._nuisance import Models, crossfit, dr_scores


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


@dataclass(frozen=True)
class Alteration:
    """How a refuter changes the rows before re-estimating."""

    keep: np.ndarray | None = None  # bool per row: the rows kept (None: all)
    permutation: np.ndarray | None = None  # row i takes the treatment labels of row permutation[i]
    outcome: np.ndarray | None = None  # the outcome replaced (judge and gold alike); NaN rows are left out


@dataclass
class Problem:
    """One estimate's rows, for refuters to alter and re-estimate."""

    target: str  # the row refuted, e.g. "dr · ATE"
    refit: Callable[[Alteration], Estimate]  # the same estimator on altered rows (the estimate's own folds)
    clusters: np.ndarray  # integer user codes per row
    models: np.ndarray  # the assistant's model per row
    strata: np.ndarray  # placebo permutations stay within these (audit status); one value: one stratum
    seed: int
    negative_control: np.ndarray | None = None  # the prompt's attachment (NaN where unscored): _negative_control.py


KINDS = {
    "placebo": ("software check",
                "an estimator that finds an effect in noise (broken cross-fitting, intervals far too narrow); "
                "not confounding: a permuted treatment is unconfounded by construction"),
    "leave_one_model_out": ("dependence on one model",
                            "an effect carried by a single assistant model; not confounding"),
    "negative_control_outcome": ("confounding",
                                 "confounding that also moves the attachment the prompt already expresses "
                                 "(a user trait, prompt meaning the confounders miss); not confounding that "
                                 "leaves the prompt untouched"),
}


def dr_problem(X: Callable[[int], np.ndarray], t: np.ndarray, y: np.ndarray, clusters: np.ndarray,
               models: np.ndarray, folds: np.ndarray, kind: "str | Models", clip: float, seed: int,
               negative_control: np.ndarray | None = None, target: str = "dr · ATE") -> Problem:
    """The judge-label DR ATE of in-arm rows as a refuter problem: `X(n)` is the confounder matrix a
    model fitted on n pairs sees (`Confounders.for_sample`); refits use the estimate's folds."""

    def refit(change: Alteration) -> Estimate:
        keep = np.ones(len(y), bool) if change.keep is None else change.keep.copy()
        outcome = y if change.outcome is None else change.outcome
        keep &= np.isfinite(outcome)
        treatment = t if change.permutation is None else t[change.permutation]
        return dr_estimate(X(int(keep.sum()))[keep], treatment[keep], outcome[keep], clusters[keep], folds[keep],
                           kind, clip, seed)

    return Problem(target, refit, clusters, models, np.zeros(len(y), int), seed, negative_control)


def dr_estimate(X: np.ndarray, t: np.ndarray, y: np.ndarray, clusters: np.ndarray, folds: np.ndarray,
                kind: "str | Models", clip: float, seed: int) -> Estimate:
    """The DR ATE with freshly cross-fitted nuisances (the given folds keep users within one fold)."""
    clusters = np.unique(clusters, return_inverse=True)[1]
    nuisances = crossfit(X, t.astype(int), y, np.ones(len(y), bool), folds, kind, seed)
    estimate, se = weighted_mean_with_se(dr_scores(nuisances, t, y, clip), clusters)
    return Estimate(estimate, se, *interval(estimate, se, cluster_shape(clusters).df), int(len(y)))


def stratified_permutation(strata: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of the rows that maps every row to a row of its own stratum."""
    out = np.arange(len(strata))
    for value in np.unique(strata):
        rows = np.flatnonzero(strata == value)
        out[rows] = rows[rng.permutation(len(rows))]
    return out


def _verdict(name: str, passed: bool, summary: str, **fields) -> dict:
    kind, detects = KINDS[name]
    return {"verdict": "passed" if passed else "failed", "kind": kind, "detects": detects, "summary": summary,
            **fields}


def placebo(problem: Problem, original: Estimate) -> dict:
    permutation = stratified_permutation(problem.strata, np.random.default_rng([problem.seed, 11]))
    result = problem.refit(Alteration(permutation=permutation))
    passed = result.covers_zero
    return _verdict("placebo", passed,
                    f"treatment permuted across pairs: effect {result.estimate:+.3f} [{result.low:.3f}, "
                    f"{result.high:.3f}] — " + ("covers 0, as it should" if passed else
                                                 "does not cover 0: the estimator finds an effect in noise"),
                    **result.to_json())


def leave_one_model_out(problem: Problem, original: Estimate) -> dict:
    models = np.unique(problem.models)
    kind, detects = KINDS["leave_one_model_out"]
    if len(models) < 2:
        return {"verdict": "not run", "kind": kind, "detects": detects,
                "summary": f"only one model ({models[0]}) in the data", "by_model": {}}
    by_model, problems = {}, []
    for model in models:
        try:
            result = problem.refit(Alteration(keep=problem.models != model))
        except CausalError as exc:
            problems.append(f"without {model}: {exc}")
            continue
        by_model[str(model)] = result.to_json()
        flipped = np.sign(result.estimate) != np.sign(original.estimate) and not result.covers_zero
        # nested estimates: Var(full − rest) ≈ Var(rest) − Var(full) (Hausman), so the drop is judged by its own
        # SE. Where the rest is the more precise (the dropped model carried the effect's spread) that
        # difference is no variance at all; the independence bound Var(rest) + Var(full) is used instead.
        nested = result.se**2 - original.se**2
        drop_se = np.sqrt(nested if nested > 0 else result.se**2 + original.se**2)
        smaller = abs(original.estimate - result.estimate) / drop_se > 1.96 and abs(result.estimate) < abs(original.estimate)
        vanished = result.covers_zero and not original.covers_zero and smaller
        by_model[str(model)]["drop_z"] = float((original.estimate - result.estimate) / drop_se)
        if flipped or vanished:
            problems.append(f"without {model}: {result.estimate:+.3f} [{result.low:.3f}, {result.high:.3f}]")
    values = [v["estimate"] for v in by_model.values()]
    span = f"{min(values):+.3f} … {max(values):+.3f}" if values else "none estimable"
    passed = not problems
    return _verdict("leave_one_model_out", passed,
                    f"each of {len(models)} models dropped in turn: {span}"
                    + ("; no model's removal flips the effect, or leaves it null and significantly below the full one"
                       if passed else "; the effect depends on one model — " + "; ".join(problems)),
                    by_model=by_model)


REFUTERS: dict[str, Callable[[Problem, Estimate], dict]] = {
    "placebo": placebo,
    "leave_one_model_out": leave_one_model_out,
}


def refute(problem: Problem, names: list[str], original: Estimate | None = None,
           say: Callable[[str], None] = lambda step: None) -> dict:
    """The named refuters against `problem`'s estimate (re-estimated once here when not given)."""
    original = original or problem.refit(Alteration())
    out = {}
    for name in names:
        say(f"refuter of {problem.target}: {name.replace('_', ' ')}")
        try:
            out[name] = REFUTERS[name](problem, original)
        except CausalError as exc:  # e.g. a fold left with too few pairs of one arm
            kind, detects = KINDS[name]
            out[name] = {"verdict": "not run", "kind": kind, "detects": detects, "summary": f"could not refit: {exc}"}
    return out
