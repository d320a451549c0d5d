"""Selection on replying: turn-pairs exist only where the user replied.

Every estimate of the study is conditional on a reply: a pair enters `turn_pairs.parquet` only when
the user wrote a next message, and empathy may itself change whether users reply. This module
answers the two questions that follow, over the union of the judged turn-pair sample (replied = 1)
and a judged sample of terminal pairs (replied = 0: the conversation ended after the response):

- the effect of empathy on replying — the doubly robust ATE of the treatment rule on the binary
  `replied`, with the confounders of the main estimate;
- Lee (2009) bounds on the attachment effect among the *always-repliers* (users who would reply
  whether the response was empathetic or not): the arm with the higher reply rate is trimmed, at
  the top for the lower bound and at the bottom for the upper bound, by the share of its repliers
  who reply only because of that arm. Lee bounds need monotonicity — empathy moves every user's
  replying in the same direction (or not at all) — and treatment as good as random; here the
  arms are reweighted by the inverse of the cross-fitted propensity, so it is required given the
  confounders. Attachment of users who would never reply is not defined by any data (there is no
  reply to rate), so "had every user replied" is answered for the always-repliers, the largest
  group for which it has a meaning without assumptions about unwritten replies.

The two samples are drawn from different tables at different rates: every row carries a design
weight (1 / inclusion probability within its own table), so weighted sums estimate population
totals of all assistant answers. Nuisance models are fitted with these weights — the union is an
outcome-dependent (case-control-like) sample, and unweighted models would estimate the wrong
reply probabilities.

Pure functions over arrays: the study layer reads the files and the funnel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from ._errors import CausalError
from ._inference import cluster_shape, interval, weighted_mean_with_se
from ._nuisance import MIN_ARM_PER_FOLD, Nuisances, dr_scores, fold_ids, nuisance_models

CONDITIONAL_ON_REPLY = (
    "Every estimate of attachment is conditional on a reply: turn-pairs exist only where the user wrote a next "
    "message, so the ATE is the effect of empathy on the attachment expressed in replies, among assistant answers "
    "that were replied to. Whether empathy changes replying itself, and bounds for the users who reply either way, "
    "are in `selection` when a judged sample of terminal pairs exists."
)
MONOTONICITY = ("Lee bounds assume monotonicity: empathy moves every user's replying in one direction (or not at all) "
                "— no user replies only to a cold answer while another replies only to a warm one — and, here, "
                "treatment as good as random given the confounders (the arms are reweighted by the inverse of the "
                "cross-fitted propensity)")


# ---- Lee bounds ------------------------------------------------------------------------------------------------

def trimmed_mean(y: np.ndarray, weight: np.ndarray, share: float, keep: str) -> float:
    """Weighted mean of y after removing `share` of the weight mass from the top (keep="low") or the
    bottom (keep="high"). A value at the cut enters with the fraction of its weight that is needed, so
    ties (the 1–7 scale has many) are trimmed exactly."""
    if not 0 <= share < 1:
        raise CausalError(f"a trimming share must lie in [0, 1) (got {share})")
    order = np.argsort(y, kind="stable")
    if keep == "high":
        order = order[::-1]
    elif keep != "low":
        raise ValueError("keep must be 'low' or 'high'")
    values, w = y[order], weight[order]
    keep_mass = (1 - share) * w.sum()
    before = np.cumsum(w) - w
    taken = np.clip(keep_mass - before, 0, w)
    return float(np.sum(taken * values) / keep_mass)


@dataclass
class LeeBounds:
    lower: float
    upper: float
    trimmed_arm: str | None  # "treated", "control", or None when the reply rates are equal
    trim_share: float  # share of the trimmed arm's (weighted) repliers removed
    reply_treated: float  # (weighted) reply rate of each arm
    reply_control: float
    repliers_treated: int
    repliers_control: int

    def to_json(self) -> dict:
        return asdict(self)


def lee_bounds(y: np.ndarray, t: np.ndarray, s: np.ndarray, weight: np.ndarray | None = None) -> LeeBounds:
    """Lee (2009) bounds on E[Y(1) − Y(0) | always observed].

    y: outcome (read only where s = 1); t: 1 treated / 0 control; s: 1 where the outcome exists
    (the user replied); weight: per-unit weights (design × inverse propensity), default 1.
    With equal reply rates nothing is trimmed and both bounds are the plain difference of the
    (weighted) means among repliers.
    """
    t, s = np.asarray(t, dtype=int), np.asarray(s, dtype=int)
    w = np.ones(len(t)) if weight is None else np.asarray(weight, dtype=float)
    rates = {}
    for arm in (0, 1):
        in_arm = t == arm
        if w[in_arm].sum() <= 0:
            raise CausalError(f"Lee bounds need units in both arms (the {('control', 'treated')[arm]} arm is empty)")
        rates[arm] = float(np.sum(w[in_arm] * s[in_arm]) / np.sum(w[in_arm]))
        if not np.any(in_arm & (s == 1) & np.isfinite(y)):
            raise CausalError(f"Lee bounds need repliers in both arms (none in the {('control', 'treated')[arm]} arm)")
    observed = {arm: (t == arm) & (s == 1) & np.isfinite(y) for arm in (0, 1)}  # a reply not scored: missing at random
    mean = {arm: float(np.average(y[observed[arm]], weights=w[observed[arm]])) for arm in (0, 1)}
    high = 1 if rates[1] >= rates[0] else 0  # the arm with the higher reply rate is trimmed
    share = (rates[high] - rates[1 - high]) / rates[high]
    y_high, w_high = y[observed[high]], w[observed[high]]
    low_mean, high_mean = trimmed_mean(y_high, w_high, share, "low"), trimmed_mean(y_high, w_high, share, "high")
    if high == 1:
        lower, upper = low_mean - mean[0], high_mean - mean[0]
    else:
        lower, upper = mean[1] - high_mean, mean[1] - low_mean
    arm = None if share == 0 else ("treated" if high == 1 else "control")
    return LeeBounds(lower, upper, arm, float(share), rates[1], rates[0], int(observed[1].sum()),
                     int(observed[0].sum()))


def lee_bootstrap(y: np.ndarray, t: np.ndarray, s: np.ndarray, weight: np.ndarray, clusters: np.ndarray,
                  draws: int, seed: int) -> np.ndarray:
    """(draws × 2) lower and upper bounds over a bootstrap that resamples whole clusters (users);
    the weights (and the propensity inside them) are held fixed."""
    rng = np.random.default_rng(seed)
    codes = np.unique(clusters, return_inverse=True)[1]
    groups = codes.max() + 1
    out = np.full((draws, 2), np.nan)
    for b in range(draws):
        multiplicity = np.bincount(rng.integers(0, groups, groups), minlength=groups)[codes]
        try:
            bounds = lee_bounds(y, t, s, weight * multiplicity)
        except CausalError:
            continue
        out[b] = bounds.lower, bounds.upper
    return out


# ---- the effect of empathy on replying ---------------------------------------------------------------------------

def _fit(model, X: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Fit with sample weights (routed to the last step of a pipeline)."""
    if isinstance(model, Pipeline):
        return model.fit(X, y, **{f"{model.steps[-1][0]}__sample_weight": w})
    return model.fit(X, y, sample_weight=w)


def weighted_crossfit(X: np.ndarray, t: np.ndarray, y: np.ndarray, weight: np.ndarray, folds: np.ndarray,
                      kind: str, seed: int, bounded: bool = False) -> Nuisances:
    """Propensity and per-arm outcome models fitted with design weights on the other folds, predicted
    for every unit. `bounded`: the outcome is a probability (predictions clipped to [0, 1])."""
    propensity_model, outcome_model = nuisance_models(kind, seed)
    n = len(t)
    e, mu0, mu1 = np.empty(n), np.empty(n), np.empty(n)
    for k in np.unique(folds):
        test, train = folds == k, folds != k
        arms = [np.flatnonzero(train & (t == arm)) for arm in (0, 1)]
        if min(len(a) for a in arms) < MIN_ARM_PER_FOLD:
            raise CausalError(f"a cross-fitting fold has {len(arms[1])} treated and {len(arms[0])} control answers: "
                              "too few to fit the nuisance models of replying")
        rows = np.concatenate(arms)
        e[test] = _fit(clone(propensity_model), X[rows], t[rows], weight[rows]).predict_proba(X[test])[:, 1]
        mu0[test] = _fit(clone(outcome_model), X[arms[0]], y[arms[0]], weight[arms[0]]).predict(X[test])
        mu1[test] = _fit(clone(outcome_model), X[arms[1]], y[arms[1]], weight[arms[1]]).predict(X[test])
    if bounded:
        mu0, mu1 = np.clip(mu0, 0, 1), np.clip(mu1, 0, 1)
    return Nuisances(e, mu0, mu1, folds)


@dataclass
class SelectionInputs:
    """The union of replied and terminal answers, in an arm by the treatment rule."""

    X: np.ndarray  # confounders (the matrix a model fitted on this many rows sees)
    t: np.ndarray  # 1/0
    replied: np.ndarray  # 1/0
    attachment: np.ndarray  # the reply's attachment; NaN where replied = 0
    design_weight: np.ndarray  # 1 / inclusion probability within the row's own table
    clusters: np.ndarray  # integer user codes


def selection_effects(data: SelectionInputs, *, folds: int, kind: str, clip: float, bootstrap: int,
                      seed: int) -> dict:
    """The DR effect of empathy on replying and Lee bounds of the attachment effect (see the module)."""
    t, s, d = data.t.astype(int), data.replied.astype(int), data.design_weight
    fold = fold_ids(data.clusters, folds, seed)
    nuisances = weighted_crossfit(data.X, t, s.astype(float), d, fold, kind, seed, bounded=True)
    scores = dr_scores(nuisances, t, s, clip)
    estimate, se = weighted_mean_with_se(scores, data.clusters, d)
    shape = cluster_shape(data.clusters)
    low, high = interval(estimate, se, shape.df)
    e = nuisances.clipped(clip)
    ipw = d * np.where(t == 1, 1 / e, 1 / (1 - e))
    bounds = lee_bounds(data.attachment, t, s, ipw)
    draws = lee_bootstrap(data.attachment, t, s, ipw, data.clusters, bootstrap, seed)
    kept = draws[np.isfinite(draws[:, 0])]
    naive = _replier_difference(data.attachment, t, s, ipw)
    reply = {
        "estimate": estimate, "se": se, "ci_low": low, "ci_high": high,
        "n": int(len(t)), "clusters": shape.clusters, "reference": "t(G-1)" if shape.df else "normal",
        "verdict": ("empathy changes whether users reply" if not low <= 0 <= high
                    else "no effect of empathy on replying detected (the interval covers 0)"),
        "how": "doubly robust ATE of the treatment rule (on the judges' empathy) on replied (1 = the user wrote a "
               "next message), same confounders as the main estimate; nuisances fitted with the design weights (the two samples are "
               "drawn at different rates from different tables); SE clustered on the user",
    }
    lee = {
        **bounds.to_json(),
        "ci_low": float(np.percentile(kept[:, 0], 2.5)) if len(kept) else None,
        "ci_high": float(np.percentile(kept[:, 1], 97.5)) if len(kept) else None,
        "bootstrap": {"draws": int(bootstrap), "usable": int(len(kept))},
        "replier_difference": naive,
        "population": "always-repliers: users who would reply whether the answer was empathetic or not",
        "assumption": MONOTONICITY,
        "how": "Lee (2009), on the judges' labels: the arm with the higher (weighted) reply rate loses the share (q_high − q_low) / q_high "
               "of its repliers from the top (lower bound) or bottom (upper bound) of its attachment distribution; "
               "weights = design weight × inverse cross-fitted propensity; interval: 2.5th percentile of the lower "
               "and 97.5th of the upper bound over a bootstrap of users (propensity held fixed) — it covers the "
               "identified set with at least 95 % probability",
    }
    return {"reply_effect": reply, "lee_bounds": lee,
            "reply_rate": {"treated": bounds.reply_treated, "control": bounds.reply_control,
                           "how": "share of assistant answers replied to, weighted by design weight × inverse "
                                  "propensity (each arm standardised to the whole population)"}}


def _replier_difference(y: np.ndarray, t: np.ndarray, s: np.ndarray, weight: np.ndarray) -> float:
    """The inverse-propensity-weighted difference among repliers: what ignoring selection would report."""
    seen = [(t == arm) & (s == 1) & np.isfinite(y) for arm in (0, 1)]
    means = [np.average(y[rows], weights=weight[rows]) for rows in seen]
    return float(means[1] - means[0])


def reply_rate(replied: np.ndarray, design_weight: np.ndarray) -> float:
    """Horvitz–Thompson share of all assistant answers that were replied to."""
    return float(np.sum(design_weight * replied) / np.sum(design_weight))


# ---- from the two scored tables to the analysis ------------------------------------------------------------------

def design_weights(frame, population: int | None, table: str) -> np.ndarray:
    """1 / inclusion_prob where the sample recorded it, else population size / rows (a simple random
    sample of the table is assumed, from the counts in funnel.json)."""
    import pandas as pd

    if "inclusion_prob" in frame.columns and frame["inclusion_prob"].notna().all():
        probability = pd.to_numeric(frame["inclusion_prob"], errors="coerce").to_numpy(dtype=float)
        if np.any(~np.isfinite(probability)) or np.any((probability <= 0) | (probability > 1)):
            raise CausalError(f"column 'inclusion_prob' of the {table} must lie in (0, 1]")
        return 1 / probability
    if not population:
        raise CausalError(f"the {table} have no inclusion_prob and the population size is unknown "
                          "(funnel.json): the reply rate cannot be weighted")
    if population < len(frame):
        raise CausalError(f"the {table} hold {len(frame)} rows but the population has only {population}")
    return np.full(len(frame), population / len(frame))


def selection_analysis(pairs, terminal, config, embedder, populations: dict | None = None,
                       progress=None) -> dict:
    """The `selection` block of estimates.json from the scored turn-pairs (replied) and the scored
    terminal pairs (not replied); `config` is the CausalConfig of the main estimate; `populations`:
    {"turn_pairs": N, "terminal_pairs": N} for tables without inclusion probabilities."""
    import pandas as pd

    from ._data import TreatmentRule
    from ._features import build_confounders

    say = progress or (lambda step: None)
    populations = populations or {}
    rule = TreatmentRule(config.treat_high, config.treat_low)
    for name, frame, needed in (("scored pairs", pairs, ("pair_id", "prompt", "empathy", "attachment")),
                                ("scored terminal pairs", terminal, ("pair_id", "prompt", "empathy"))):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise CausalError(f"the {name} lack column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    replied_w = design_weights(pairs, populations.get("turn_pairs"), "turn-pair sample")
    terminal_w = design_weights(terminal, populations.get("terminal_pairs"), "terminal-pair sample")
    columns = [c for c in ("pair_id", "user_id", "conversation_id", "prompt", "prev_response", "model", "turn_index",
                           "timestamp") if c in pairs.columns and c in terminal.columns]
    union = pd.concat([pairs[columns].assign(replied=1, attachment=pd.to_numeric(pairs["attachment"]),
                                             empathy=pd.to_numeric(pairs["empathy"]), design_weight=replied_w),
                       terminal[columns].assign(replied=0, attachment=np.nan, empathy=pd.to_numeric(terminal["empathy"]),
                                                design_weight=terminal_w)], ignore_index=True)
    overlap = union["pair_id"].duplicated()
    if overlap.any():
        raise CausalError(f"pair {union.loc[overlap, 'pair_id'].iloc[0]} is both a turn-pair and a terminal pair")
    counts = {"turn_pairs": int(len(pairs)), "terminal_pairs": int(len(terminal)),
              "reply_rate_population": reply_rate(union["replied"].to_numpy(), union["design_weight"].to_numpy())}
    arm = rule.assign(union["empathy"])
    counts["unscored_terminal"] = int(union.loc[union["replied"] == 0, "empathy"].isna().sum())
    counts["unscored_turn_pairs"] = int(union.loc[union["replied"] == 1, "empathy"].isna().sum())
    counts["excluded_by_rule"] = int((arm.isna() & union["empathy"].notna()).sum())
    union = union[arm.notna()].reset_index(drop=True)
    union["treated"] = arm.dropna().to_numpy()
    counts["in_arm"] = {"replied": int(union["replied"].sum()), "terminal": int((union["replied"] == 0).sum())}
    counts["replies_without_attachment"] = int(((union["replied"] == 1) & union["attachment"].isna()).sum())
    if counts["in_arm"]["terminal"] == 0:
        raise CausalError("no scored terminal pair is in an arm by the treatment rule: judge the terminal sample first")
    cluster_column = next((c for c in ("user_id", "conversation_id") if c in union.columns), "pair_id")
    clusters = pd.factorize(union[cluster_column].fillna(union["pair_id"]))[0]
    say("embedding prompts of the terminal sample")
    prompt_embedding = embedder.embed(union["prompt"].astype(str).tolist())
    prev = None
    if "prev_response" in union.columns and union["prev_response"].fillna("").str.strip().ne("").any() \
            and config.prev_embedding_dims > 0:
        prev = embedder.embed(union["prev_response"].fillna("").astype(str).tolist())
    features = build_confounders(union, prompt_embedding, prev, config.embedding_dims, config.prev_embedding_dims,
                                 config.seed)
    data = SelectionInputs(features.for_sample(len(union)), union["treated"].to_numpy(dtype=int),
                           union["replied"].to_numpy(dtype=int), union["attachment"].to_numpy(dtype=float),
                           union["design_weight"].to_numpy(dtype=float), clusters)
    say("selection on replying (reply effect, Lee bounds)")
    # weighted fits of one class: `auto` (chosen by an unweighted loss) stands for linear here
    kind = "linear" if config.nuisance == "auto" else config.nuisance
    effects = selection_effects(data, folds=config.folds, kind=kind, clip=config.propensity_clip,
                                bootstrap=config.bootstrap, seed=config.seed)
    return {"available": True, "estimand": CONDITIONAL_ON_REPLY, "counts": counts, **effects,
            "weights": "each row weighted by 1 / its inclusion probability within its own table (turn-pair sample, "
                       "terminal sample), so weighted sums estimate totals over all assistant answers",
            "cluster_column": cluster_column}


@dataclass
class Terminal:
    """The scored terminal pairs (answers nobody replied to) and what is known of the tables they came from."""

    frame: "object"  # a pandas DataFrame: the scored terminal pairs
    populations: dict  # {"turn_pairs": N, "terminal_pairs": N} for tables without inclusion probabilities
    notes: list[str]  # what the terminal table's writer recorded for a reader (e.g. how its population was built)
    source: str  # where it was read from


NOT_ANALYSED = ("no scored terminal pairs: draw them (`empathy corpus sample-terminal DIR --n N`), judge them "
                "(`empathy judge run DIR`) and export (`empathy export DIR`)")


def selection_block(pairs, terminal: Terminal | None, config, embedder, progress=None) -> dict:
    """estimates.json's `selection`: the reply effect and Lee bounds where scored terminal pairs exist,
    else why not; the statement that the main estimand is conditional on a reply either way."""
    statement = {"estimand": CONDITIONAL_ON_REPLY}
    if terminal is None:
        return {**statement, "available": False, "reason": NOT_ANALYSED}
    try:
        block = selection_analysis(pairs, terminal.frame, config, embedder, terminal.populations, progress=progress)
    except CausalError as exc:
        return {**statement, "available": False, "reason": str(exc)}
    block["warnings"] = list(terminal.notes)
    unscored = block["counts"]["unscored_terminal"]
    if unscored:
        block["warnings"].append(f"{unscored} terminal pairs have no panel empathy yet (some judge has not scored them: "
                                 "`empathy judge run`, then `empathy export`); they are left out, as if missing at "
                                 "random")
    block["input"] = terminal.source
    return block
