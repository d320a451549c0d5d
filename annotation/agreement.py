"""Agreement between raters — humans, judges, the panel — on the 1..7 scales. One implementation for every report.

Krippendorff's α (package `krippendorff`) at ordinal and interval level with the value domain
1..7 given explicitly; quadratic-weighted κ, Spearman ρ, MAE and mean signed bias per pair of
raters; a unit bootstrap for α's interval. Pairwise figures are comparable across kinds:
human–human is the mean of pairwise α over annotator pairs (the ceiling a judge is measured
against), judge–human the mean of pairwise α between the judge and each annotator.

The figures themselves (`alpha`, `quadratic_kappa`, `mae`, `bias`, the unit bootstrap `resamples`
and its `percentile_ci`) are the ones the calibration statistics (`annotation.calibration`), the
judge report and `agreement.json` all use.
"""

from __future__ import annotations

import itertools
import warnings

import krippendorff
import numpy as np
import pandas as pd

VALUE_DOMAIN = list(range(1, 8))
RELIABLE, TENTATIVE = 0.8, 0.667  # Krippendorff's conventional thresholds


class AgreementError(ValueError):
    """The ratings cannot give an agreement figure (one rater, no overlap): say why, do not return NaN."""


def alpha(matrix: np.ndarray, level: str, value_domain=VALUE_DOMAIN) -> float | None:
    """α of a raters × units matrix (NaN = missing). None when undefined (no variation at all)."""
    pairable = np.sum(~np.isnan(matrix), axis=0) >= 2
    if pairable.sum() == 0:
        return None
    values = matrix[:, pairable]
    finite = values[~np.isnan(values)]
    if np.unique(finite).size < 2:
        return None  # every rating identical: expected disagreement is 0, α is undefined
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(krippendorff.alpha(reliability_data=values, level_of_measurement=level,
                                        value_domain=value_domain))


def to_levels(values) -> np.ndarray:
    """Scores on the 1..7 levels (half up): α ordinal and κ need levels; an unrounded panel mean or a
    calibrated score is rounded here."""
    values = np.asarray(values, dtype=float)
    return np.clip(np.floor(values + 0.5), VALUE_DOMAIN[0], VALUE_DOMAIN[-1])


def quadratic_kappa(a, b) -> float | None:
    """Cohen's κ with quadratic weights over the levels 1..7 (as scikit-learn's `cohen_kappa_score(...,
    weights="quadratic", labels=1..7)`, without its per-call argument checks; tested against it).
    None when the two raters use one level between them (no disagreement is possible)."""
    a, b = np.asarray(a, dtype=int) - 1, np.asarray(b, dtype=int) - 1
    k = len(VALUE_DOMAIN)
    observed = np.zeros((k, k))
    np.add.at(observed, (a, b), 1)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    levels = np.arange(k)
    weights = (levels[:, None] - levels[None, :]) ** 2
    disagreement = (weights * expected).sum()
    return None if disagreement == 0 else float(1 - (weights * observed).sum() / disagreement)


def mae(a, b) -> float:
    """Mean absolute difference of two raters over the same units."""
    return float(np.mean(np.abs(np.asarray(b, dtype=float) - np.asarray(a, dtype=float))))


def bias(a, b) -> float:
    """Mean of b − a over the same units: positive when b rates higher than a."""
    return float(np.mean(np.asarray(b, dtype=float) - np.asarray(a, dtype=float)))


def resamples(n: int, boot: int, seed: int) -> list[np.ndarray]:
    """The unit bootstrap: `boot` draws of n unit indices with replacement, from one seeded generator
    (statistics bootstrapped jointly use the same draws)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, n) for _ in range(boot)]


def percentile_ci(draws, boot: int) -> list[float] | None:
    """The 95 % percentile interval of bootstrap draws, or None when fewer than half are defined."""
    defined = np.array([d for d in draws if d is not None and np.isfinite(d)])
    if boot == 0 or len(defined) < boot // 2:
        return None
    return [float(np.percentile(defined, 2.5)), float(np.percentile(defined, 97.5))]


def verdict(value: float | None, ci: list[float] | tuple[float, float] | None = None) -> str:
    """Krippendorff's thresholds applied to the 95 % interval, not to the point estimate.

    reliable: the whole interval at or above 0.8; tentative: at or above 0.667; unreliable: the
    whole interval below 0.667; inconclusive: the interval straddles 0.667 (n = 10 with
    CI [0.56, 0.89] is not "reliable"), or there is no interval to judge by.
    """
    if value is None:
        return "undefined"
    if ci is None:
        return "inconclusive"
    low, high = ci
    if low >= RELIABLE:
        return "reliable"
    if low >= TENTATIVE:
        return "tentative"
    if high < TENTATIVE:
        return "unreliable"
    return "inconclusive"


BIAS_MEANS = "mean of b − a over the units both rated: positive when b rates higher than a"


def pair_agreement(a: pd.Series, b: pd.Series, *, boot: int = 1_000, seed: int = 0) -> dict:
    """Every figure for two raters over the units both rated. `bias` = mean(b − a): positive when b
    rates higher than a. The verdict reads the bootstrap interval of α ordinal (see `verdict`)."""
    from scipy import stats  # loaded here, not at import: every `empathy` command imports this module

    both = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
    n = len(both)
    if n < 2:
        raise AgreementError(f"{a.name} and {b.name} rated {n} common unit{'s' if n != 1 else ''}: need at least 2")
    x, y = both["a"].to_numpy(dtype=float), both["b"].to_numpy(dtype=float)
    matrix = np.vstack([x, y])
    ordinal, interval = alpha(matrix, "ordinal"), alpha(matrix, "interval")
    ci = None
    if ordinal is not None and boot:
        ci = percentile_ci([alpha(matrix[:, pick], "ordinal") for pick in resamples(n, boot, seed)], boot)
    constant = np.unique(x).size < 2 or np.unique(y).size < 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rho = None if constant else float(stats.spearmanr(x, y).statistic)
    return {"a": str(a.name), "b": str(b.name), "alpha_ordinal": ordinal, "alpha_interval": interval, "ci": ci,
            "n": n, "kappa_qw": quadratic_kappa(to_levels(x), to_levels(y)), "spearman": rho, "mae": mae(x, y),
            "bias": bias(x, y), "verdict": verdict(ordinal, ci)}


def agreement(ratings: pd.DataFrame, humans: list[str], judges: list[str], *, panel: str | None = "panel",
              boot: int = 1_000, seed: int = 0) -> dict:
    """All pairwise figures for one construct. `ratings`: units (index) × raters (columns), integer scores.

    Kinds: human–human, judge–human, panel–human (panel = the rounded mean of the judges),
    judge–judge. Summaries: `human_ceiling` (mean human–human α) and `judge_human[judge]`
    (mean α of the judge with each annotator).
    """
    raters = [r for r in humans + judges if r in ratings.columns and ratings[r].notna().any()]
    if len(raters) < 2:
        raise AgreementError(f"agreement needs at least two raters with scores; found {len(raters)} "
                             f"({', '.join(raters) or 'none'})")
    table = ratings[raters].astype(float)
    present_judges = [j for j in judges if j in raters]
    if panel and len(present_judges) > 1:
        table = table.assign(**{panel: to_levels(table[present_judges].mean(axis=1))})
    kinds = []
    present_humans = [h for h in humans if h in raters]
    kinds += [("human-human", a, b) for a, b in itertools.combinations(present_humans, 2)]
    kinds += [("judge-human", j, h) for j in present_judges for h in present_humans]
    if panel in table.columns:
        kinds += [("panel-human", panel, h) for h in present_humans]
    kinds += [("judge-judge", a, b) for a, b in itertools.combinations(present_judges, 2)]
    pairs, skipped = [], []
    for kind, a, b in kinds:
        try:
            pairs.append({"kind": kind, **pair_agreement(table[a], table[b], boot=boot, seed=seed)})
        except AgreementError as exc:
            skipped.append({"kind": kind, "a": a, "b": b, "reason": str(exc)})
    if not pairs:
        raise AgreementError("no two raters share two rated units: " + "; ".join(s["reason"] for s in skipped))

    def mean_alpha(selected: list[dict]) -> float | None:
        values = [p["alpha_ordinal"] for p in selected if p["alpha_ordinal"] is not None]
        return float(np.mean(values)) if values else None

    ceiling = mean_alpha([p for p in pairs if p["kind"] == "human-human"])
    return {
        "raters": raters,
        "pairs": pairs,
        "skipped": skipped,
        "human_ceiling": ceiling,
        "judge_human": {j: mean_alpha([p for p in pairs if p["kind"] == "judge-human" and p["a"] == j])
                        for j in present_judges},
        "thresholds": {"reliable": RELIABLE, "tentative": TENTATIVE, "applied_to": "the 95 % interval of α ordinal"},
        "bias": BIAS_MEANS,
    }
