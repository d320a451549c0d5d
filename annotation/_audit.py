"""The blind audit's design, as pure functions: which pairs people label, and with what known probability.

Two designs. `uniform`: one rate for every pair, drawn once. `active` (after Zrnic & Candès 2024,
"Active statistical inference"): a pair's probability grows with how wrong the judges are likely to
be on it, scaled to a label budget, with a floor so every pair can be drawn; the audit is drawn in
batches, each batch's probabilities set from the labels of the batches before it.

Every draw is Poisson sampling on a hash of (seed, batch, pair): a pair's decision never depends on
the other pairs, and the same study draws the same audit on any machine. Across batches a pair's
probability of ever being drawn is 1 − Π_b (1 − p_b), and that is the `gold_prob` the correction
weights by: exact for a design fixed in advance. For batches whose probabilities were set from
earlier labels it is not exact: a pair's later probability depends on its own earlier draw, through
the error model fitted on the labelled pairs (its own label among them, not cross-fitted) and through
the budget's scale and floor (set over the pairs not yet drawn). bench/active_audit.py measures what
that costs as the coverage of sequential studies.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

DESIGNS = ("uniform", "active")
# What the judges' error on a pair is predicted from (`audit_features`), before and after labels.
FEATURES = ("empathy_spread", "attachment_spread", "uncertainty", "near_threshold", "empathy", "attachment")
MIN_LABELLED_FOR_MODEL = 20  # labelled audit pairs before their errors, not the judges' disagreement, set the need


def audit_uniforms(pair_ids, seed: int, batch: int = 1) -> np.ndarray:
    """A uniform in [0, 1) per pair from a hash of (seed, batch, pair id). Batch 1 hashes as the uniform
    design always has, so a uniform audit and an active audit's first batch share their draws' order."""
    key = f"{seed}" if batch == 1 else f"{seed}:batch{batch}"
    return np.array([int(hashlib.sha256(f"{key}:{p}".encode()).hexdigest()[:15], 16) / 16**15 for p in pair_ids])


def audit_draw(pair_ids: pd.Series, rate: "float | np.ndarray", seed: int, batch: int = 1) -> np.ndarray:
    """Poisson sampling: each pair enters the audit sample independently with probability `rate` (one
    rate, or one per pair).

    The draw hashes the pair's id with the seed, so a pair added to the sample later gets the same
    known probability and every earlier decision stays as it was.
    """
    return audit_uniforms(pair_ids, seed, batch) < rate


def ever_drawn(batch_probabilities: np.ndarray) -> np.ndarray:
    """P(a pair was drawn in at least one batch), from the batches × pairs probabilities of each batch."""
    return 1 - np.prod(1 - np.atleast_2d(batch_probabilities), axis=0)


def budget_probabilities(need: np.ndarray, labels: float, floor: float, counted: np.ndarray | None = None) -> np.ndarray:
    """Probabilities proportional to `need`, each in [floor, 1], whose sum over the `counted` pairs (default:
    all) is `labels`: π_i = clip(c·need_i, floor, 1), with c found by bisection (the sum grows with c).
    In a later batch the pairs drawn before cost no new label: they get the same rule but are not counted.

    Proportional to need because a Horvitz-Thompson term's variance is (1 − π)/π · r², least for a
    fixed Σπ at π ∝ |r| (the expected error); the floor keeps every pair drawable, so the correction
    stays unbiased wherever the need model is wrong.
    """
    need = np.asarray(need, dtype=float)
    counted = np.ones(len(need), dtype=bool) if counted is None else np.asarray(counted, dtype=bool)
    n = int(counted.sum())
    if not 0 < floor <= 1:
        raise ValueError(f"the floor must lie in (0, 1] (got {floor:g})")
    if np.any(~np.isfinite(need)) or np.any(need < 0):
        raise ValueError("every pair's need must be finite and ≥ 0")
    if labels <= floor * n:
        raise ValueError(f"a budget of {labels:g} labels is at most the floor's {floor:g} × {n:,} pairs = "
                         f"{floor * n:g}: lower min_audit_prob or raise audit_labels")
    need = np.maximum(need, 1e-9 * max(need.max(), 1e-9))
    if labels >= n:  # every counted pair drawn for sure — and so would any other pair have been, undrawn
        return np.ones(len(need))

    def total(c: float) -> float:
        return float(np.clip(c * need[counted], floor, 1).sum())

    low, high = 0.0, 1.0
    while total(high) < labels:
        high *= 2
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if total(mid) < labels else (low, mid)
    return np.clip(high * need, floor, 1)


def audit_features(scores: pd.DataFrame, high: float, low: float) -> pd.DataFrame:
    """Per pair, what predicts the judges' error on it, from the judges' scores: `scores` has one row per
    (pair_id, judge) with `empathy` and `attachment` (NaN where unscored), and optionally the judge's
    logprob-expected scores `empathy_expected` and `attachment_expected`.

    empathy_spread / attachment_spread: the SD across the judges (0 with one judge); uncertainty: the
    mean gap between a judge's score and its expected score — a judge whose probability is spread over
    several points writes a score far from its probability-weighted mean; 0 on a pair no judge recorded
    logprobs for, which in a panel where some judges did reads as certainty (a known simplification);
    near_threshold: exp(−distance of the panel's empathy from the nearer treatment threshold), 1 on a
    threshold — a small error there moves the pair between arms; empathy / attachment: the panel mean.
    A pair no judge scored gets the largest need of any pair (`error_need`)."""
    by_pair = scores.groupby("pair_id")[["empathy", "attachment"]]
    mean, spread = by_pair.mean(), by_pair.std(ddof=0).fillna(0.0)
    gaps = [(scores[c] - scores[f"{c}_expected"]).abs() for c in ("empathy", "attachment")
            if f"{c}_expected" in scores.columns]
    if gaps:
        uncertainty = pd.concat(gaps, axis=1).mean(axis=1).groupby(scores["pair_id"]).mean()
        uncertainty = uncertainty.reindex(mean.index).fillna(0.0)
    else:
        uncertainty = pd.Series(0.0, index=mean.index)
    gap = np.minimum((mean["empathy"] - high).abs(), (mean["empathy"] - low).abs())
    return pd.DataFrame({"empathy_spread": spread["empathy"], "attachment_spread": spread["attachment"],
                         "uncertainty": uncertainty, "near_threshold": np.exp(-gap), "empathy": mean["empathy"],
                         "attachment": mean["attachment"]})


def error_need(features: pd.DataFrame, squared_error: pd.Series | None = None,
               weight: pd.Series | None = None) -> tuple[pd.Series, str]:
    """(pair_id → need, how it was set): the expected size of the judges' error on each pair.

    Before `MIN_LABELLED_FOR_MODEL` labelled pairs, √(1 + spread_e² + spread_a² + uncertainty²)·(1 +
    near_threshold): a baseline error of one scale point, grown by the judges' disagreement, their own
    uncertainty and closeness to a threshold. After, a design-weighted (`weight` = 1/π) least-squares model of the labelled pairs'
    `squared_error` (the judges' squared errors on both scales) on the features, its prediction floored
    at a twentieth of the mean squared error, square-rooted. Pure.
    """
    scored = features.dropna(subset=["empathy", "attachment"])
    if squared_error is not None:
        squared_error = squared_error.dropna()
        squared_error = squared_error[squared_error.index.isin(scored.index)]
    if squared_error is None or len(squared_error) < MIN_LABELLED_FOR_MODEL:
        need = np.sqrt(1 + scored["empathy_spread"] ** 2 + scored["attachment_spread"] ** 2
                       + scored["uncertainty"] ** 2) * (1 + scored["near_threshold"])
        how = "the judges' disagreement, their uncertainty and closeness to a treatment threshold (no error model yet: " \
              f"{0 if squared_error is None else len(squared_error)} labelled pairs, a model needs {MIN_LABELLED_FOR_MODEL})"
    else:
        from sklearn.linear_model import Ridge

        X = scored.loc[squared_error.index, list(FEATURES)].to_numpy(dtype=float)
        w = np.ones(len(X)) if weight is None else weight.reindex(squared_error.index).to_numpy(dtype=float)
        model = Ridge(alpha=1.0).fit(X, squared_error.to_numpy(dtype=float), sample_weight=w)
        mean = float(np.average(squared_error, weights=w))
        need = pd.Series(np.sqrt(np.maximum(model.predict(scored[list(FEATURES)].to_numpy(dtype=float)), mean / 20)),
                         index=scored.index)
        how = f"a model of the judges' squared errors on {len(squared_error)} labelled pairs (weighted by 1/π)"
    need = need.reindex(features.index)
    return need.fillna(float(need.max()) if need.notna().any() else 1.0), how


def audit_variance(residual: np.ndarray, current: np.ndarray, labelled: np.ndarray, probability: np.ndarray) -> float:
    """The audit part of the correction's variance, Σ_all r²·(1 − π)/π (Poisson sampling), were each pair
    drawn with `probability` π, estimated from the pairs labelled so far (drawn with `current`) by
    weighting each by 1/current. `residual`: the correction's residual r of each pair (read where labelled)."""
    r2 = np.where(labelled, np.nan_to_num(np.asarray(residual, dtype=float)) ** 2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(labelled, r2 / current * (1 - probability) / probability, 0.0)
    return float(np.sum(terms))


def active_labels_for(residual: np.ndarray, current: np.ndarray, drawn: np.ndarray, need: np.ndarray,
                      uniform_more: float, floor: float | None = None) -> float | None:
    """New labels an active batch (π ∝ `need`, `budget_probabilities`) needs for the audit variance that
    `uniform_more` new labels drawn uniformly over the undrawn pairs would give, both added to the audit
    drawn so far (`current` probabilities, `drawn` pairs; a pair's probability then is that of ever being
    drawn). Predicted from the labelled pairs' residuals: a forecast of the next batch, not a measurement.
    `floor`: the batch's min_audit_prob (None: half the batch's uniform rate, the toolkit's default).
    None: the uniform labels cover every undrawn pair, or no labelled pair has a residual. Pure."""
    current, drawn = np.asarray(current, dtype=float), np.asarray(drawn, dtype=bool)
    labelled = drawn & np.isfinite(np.asarray(residual, dtype=float))
    undrawn = int((~drawn).sum())
    if not labelled.any() or uniform_more <= 0 or uniform_more >= undrawn:
        return None

    def variance(batch: np.ndarray) -> float:
        return audit_variance(residual, current, labelled, ever_drawn(np.vstack([current, batch])))

    target = variance(np.full(len(current), uniform_more / undrawn))

    def active(labels: float) -> float:
        lowest = floor if floor is not None else min(1.0, labels / undrawn / 2)
        return variance(budget_probabilities(need, labels, lowest, counted=~drawn))

    low = (floor * undrawn if floor is not None else 0.0) + 1e-6 * undrawn
    high = undrawn * (1 - 1e-9)
    if active(high) > target:  # even labelling every pair the active way does not reach it
        return None
    for _ in range(60):  # the active variance falls as its budget grows
        middle = (low + high) / 2
        low, high = (middle, high) if active(middle) > target else (low, middle)
    return high
