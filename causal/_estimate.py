"""The estimation run: registered estimators over one scored-pairs table and one set of
cross-fitted nuisances, with balance, overlap, heterogeneity and the warnings a reader must see.

Estimators register by name (`@estimator("dr")`) and receive a `Fit` — the prepared data, the
confounders and lazily computed shared pieces (nuisances, matchings, judge-error fits). A new
estimator (an X-learner, TMLE) is a new registered function; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from . import _backend
from ._balance import pooled_sd, smd
from ._config import PRIMARY, CausalConfig
from ._data import StudyArrays, TreatmentRule, prepare
from ._embeddings import Embedder
from ._errors import CausalError
from ._features import Confounders, build_confounders
from ._gold import GoldFit, corrected_effect, gold_only_effect, judge_view, nuisance_summary
from ._hte import forest_cate, subgroup_table
from ._inference import (
    ClusterShape,
    cluster_bootstrap,
    cluster_shape,
    clustered_se,
    difference_in_means,
    pair_components,
    weighted_mean_with_se,
)
from ._matching import Edges, Matching, cosine_edges, match, scalar_edges
from ._negative_control import COLUMN as NEGATIVE_CONTROL
from ._negative_control import NAME as NEGATIVE_CONTROL_REFUTER
from ._negative_control import has_negative_control
from ._nuisance import Nuisances, crossfit, dr_scores, fold_ids
from ._refute import Estimate, Problem, refute
from ._results import SCALE_LIMIT, EffectRow, EstimateResult, empty_row
from ._sensitivity import e_value, ovb, rosenbaum

# progress(step, done, total): called as each step advances (embedding reports per batch).
Progress = Callable[[str, int, int], None]

ESTIMATORS: dict[str, Callable[["Fit"], list[EffectRow]]] = {}


def estimator(name: str):
    """Register an estimator under `name`: a function Fit → rows of estimates.json."""
    def register(function):
        ESTIMATORS[name] = function
        return function
    return register


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _row(method: str, estimand: str, estimate: float, se: float, n_used: int, shape: ClusterShape,
         weighted: bool = False, note: str = "", **extra) -> EffectRow:
    return EffectRow(method, estimand, float(estimate), float(se), int(n_used), weighted, note,
                     reference="t(G-1)" if shape.df else "normal", df=shape.df, clusters=shape.clusters, **extra)


class Fit:
    """What every estimator shares: the data, the confounders and one set of cross-fitted nuisances."""

    def __init__(self, data: StudyArrays, features: Confounders, config: CausalConfig, say: Callable[[str], None]):
        self.all, self.features_all, self.config, self.say = data, features, config, say
        self.arm_mask = data.in_arm
        self.data = data.subset(self.arm_mask)  # the judge-label analysis rows
        self.features = features.subset(self.arm_mask)
        self.warnings: list[str] = []
        self.folds_all = fold_ids(data.clusters, config.folds, config.seed)
        fold_ids(self.data.clusters, config.folds, config.seed)  # enough users among the judge-label rows

    @cached_property
    def nuisances_all(self) -> Nuisances:
        """Propensity and per-arm outcome models of the judge labels: fitted on the judge-label rows
        of the other folds, predicted for every row (the correction needs them everywhere)."""
        self.say("nuisance models (cross-fitted, grouped by user)")
        t = np.nan_to_num(self.all.treatment).astype(int)
        return crossfit(self.features_all.for_sample(int(self.arm_mask.sum())), t, np.nan_to_num(self.all.outcome),
                        self.arm_mask, self.folds_all, self.config.nuisance, self.config.seed)

    @cached_property
    def nuisances(self) -> Nuisances:
        n, m = self.nuisances_all, self.arm_mask
        return Nuisances(n.propensity[m], n.mu0[m], n.mu1[m], n.folds[m])

    @cached_property
    def scores(self) -> np.ndarray:
        return dr_scores(self.nuisances, self.data.treatment, self.data.outcome, self.config.propensity_clip)

    @cached_property
    def shape(self) -> ClusterShape:
        return cluster_shape(self.data.clusters)

    @cached_property
    def kept(self) -> np.ndarray:
        e, trim = self.nuisances.propensity, self.config.trim
        return (e >= trim) & (e <= 1 - trim)

    @cached_property
    def matchings(self) -> dict[str, Matching]:
        self.say("matching (greedy and optimal)")
        edges, caliper = _edges_by_model(self.data, self.features, _logit(self.nuisances.propensity), self.config)
        self.caliper = caliper
        return {name: match(edges, caliper, name) for name in ("greedy", "optimal")}

    @cached_property
    def gold_corrected(self) -> GoldFit:
        self.say("judge-error correction on the audit sample")
        a, c = self.all, self.config
        judged = ~(np.isnan(a.empathy) | np.isnan(a.outcome))
        summary = nuisance_summary(self.nuisances_all, self.features_all.modifier_matrix, c.propensity_clip)
        X = self.features_all.for_sample(len(a.outcome))
        return corrected_effect(X, summary, judge_view(judged, a.treatment, a.empathy, a.outcome), a.audit,
                                self.folds_all, c.nuisance, c.propensity_clip, c.seed)

    @cached_property
    def gold_only(self) -> GoldFit:
        self.say("doubly robust on the audited pairs alone")
        c = self.config
        X = self.features_all.for_sample(int(self.all.audit.in_arm.sum()))
        return gold_only_effect(X, self.all.audit, self.folds_all, c.nuisance, c.propensity_clip, c.seed)

    def gold_problem(self) -> str | None:
        """Why the gold rows cannot be estimated, or None."""
        audit = self.all.audit
        if audit is None:
            return "no audit labels (empathy_gold, attachment_gold, gold_prob): `empathy annotate pull` then `empathy export`"
        arms = np.nan_to_num(audit.treatment)[audit.in_arm == 1]
        treated, control = int(arms.sum()), int(len(arms) - arms.sum())
        if min(treated, control) < self.config.min_arm:
            return (f"the audit sample has {treated} treated and {control} control pairs by their human labels; "
                    f"each arm needs at least {self.config.min_arm}")
        return None


def _edges_by_model(data: StudyArrays, features: Confounders, logit_e: np.ndarray, config: CausalConfig):
    """Candidate edges within each model (matching is exact on model)."""
    groups = []
    ps_caliper = config.propensity_caliper * logit_e.std()
    models = data.frame["model"].astype(str).to_numpy()
    for model in np.unique(models):
        t_ids = np.flatnonzero((models == model) & (data.treatment == 1))
        c_ids = np.flatnonzero((models == model) & (data.treatment == 0))
        if len(t_ids) == 0:
            continue
        if len(c_ids) == 0:
            groups.append((t_ids, c_ids, Edges(np.array([], int), np.array([], int), np.array([]), len(t_ids), 0)))
            continue
        if config.distance == "propensity":
            edges = scalar_edges(logit_e[t_ids], logit_e[c_ids], ps_caliper, config.neighbours)
        else:
            embedding = features.prompt_embedding
            edges = cosine_edges(embedding[t_ids], embedding[c_ids], config.caliper, config.neighbours)
            if config.distance == "combined":
                close = np.abs(logit_e[t_ids][edges.rows] - logit_e[c_ids][edges.cols]) <= ps_caliper
                edges = Edges(edges.rows[close], edges.cols[close], edges.dist[close], edges.n_treated, edges.n_control)
        groups.append((t_ids, c_ids, edges))
    caliper = ps_caliper if config.distance == "propensity" else config.caliper
    return groups, caliper


# ---- estimators -------------------------------------------------------------------------------------------------

@estimator("naive")
def _naive(fit: Fit) -> list[EffectRow]:
    d = fit.data
    rows = []
    for weighted, weight in d.weightings():
        estimate, se = difference_in_means(d.outcome, d.treatment, d.clusters, weight)
        rows.append(_row("naive", "ATE", estimate, se, len(d.outcome), fit.shape, weighted,
                         note="difference in means: confounded"))
    return rows


@estimator("dr")
def _dr(fit: Fit) -> list[EffectRow]:
    d, c, e = fit.data, fit.config, fit.nuisances.propensity
    clipped = int(np.sum((e < c.propensity_clip) | (e > 1 - c.propensity_clip)))
    rows = []
    for weighted, weight in d.weightings():
        estimate, se = weighted_mean_with_se(fit.scores, d.clusters, weight)
        rows.append(_row("dr", "ATE", estimate, se, len(d.outcome), fit.shape, weighted,
                         note=f"judge labels taken as truth; {clipped} propensities clipped to "
                              f"[{c.propensity_clip}, {1 - c.propensity_clip}]"))
    kept = fit.kept
    if kept.sum() >= 2 and 0 < d.treatment[kept].sum() < kept.sum():
        clusters = np.unique(d.clusters[kept], return_inverse=True)[1]
        estimate, se = weighted_mean_with_se(fit.scores[kept], clusters)
        rows.append(_row("dr", "ATE_trimmed", estimate, se, int(kept.sum()), cluster_shape(clusters),
                         note=f"propensity in [{c.trim}, {1 - c.trim}]: {int((~kept).sum())} units trimmed"))
    else:
        rows.append(empty_row("dr", "ATE_trimmed", f"no units with both arms inside propensity [{c.trim}, {1 - c.trim}]"))
    return rows


def _gold_rows(fit: Fit, method: str) -> list[EffectRow]:
    problem = fit.gold_problem()
    if problem is not None:
        if fit.all.audit is None:
            return []  # nothing to correct with: said once in the gold block, not as a missing estimate
        return [empty_row(method, "ATE", problem)]
    gold: GoldFit = fit.gold_only if method == "dr_gold_only" else fit.gold_corrected
    a = fit.all
    rows = []
    for weighted, weight in a.weightings():
        estimate, se, _ = gold.estimate(a.clusters, weight)
        shape = cluster_shape(a.clusters[a.audit.audited]) if method == "dr_gold_only" else cluster_shape(a.clusters)
        note = ("the DR estimator on the audited pairs alone, with their human labels"
                if method == "dr_gold_only" else
                "judge-label DR moment corrected by the audited pairs' gold-minus-prediction gap (weighted by 1/π); "
                f"the prediction explains {gold.explained:.0%} of the gold moment's variance")
        rows.append(_row(method, "ATE", estimate, se, gold.n_used, shape, weighted, note=note, gold_n=gold.gold_n))
    return rows


@estimator("dr_gold_only")
def _dr_gold_only(fit: Fit) -> list[EffectRow]:
    return _gold_rows(fit, "dr_gold_only")


@estimator("dr_gold_corrected")
def _dr_gold_corrected(fit: Fit) -> list[EffectRow]:
    rows = _gold_rows(fit, "dr_gold_corrected")
    if rows and fit.gold_problem() is None and "dr_gold_only" in fit.config.estimators:
        only = {r.weighted: r for r in _gold_rows(fit, "dr_gold_only")}
        for r in rows:
            if r.weighted in only and r.se > 0:
                r.effective_gold_n = float(r.gold_n * (only[r.weighted].se / r.se) ** 2)
    return rows


@estimator("matching")
def _matching(fit: Fit) -> list[EffectRow]:
    rows = []
    for matching in fit.matchings.values():
        rows.extend(_matching_rows(fit, matching))
    return rows


def _matching_rows(fit: Fit, matching: Matching) -> list[EffectRow]:
    """ATT over the treated units the caliper kept; SE from a bootstrap of matched pairs that resamples
    connected components of the treated-user/control-user graph (both users of a pair cluster).

    Each matching also gets a bias-corrected row (Abadie & Imbens 2011): every pair's difference
    minus the difference the cross-fitted control-outcome model predicts from the pair's covariates.
    """
    d, c = fit.data, fit.config
    plain, corrected = f"matching_{matching.method}", f"matching_{matching.method}_bc"
    if len(matching.treated) == 0:
        why = f"no pairs: no treated unit has a control within the caliper ({fit.caliper:g})"
        return [empty_row(name, "ATT_matched", why, weighted) for name in (plain, corrected)
                for weighted, _ in d.weightings()]
    mu0 = fit.nuisances.mu0
    difference = d.outcome[matching.treated] - d.outcome[matching.control]
    adjusted = difference - (mu0[matching.treated] - mu0[matching.control])
    components = pair_components(d.clusters[matching.treated], d.clusters[matching.control])
    shape = cluster_shape(components)
    unmatched = f"{len(matching.unmatched)} treated units unmatched within the caliper"
    variants = [(plain, difference, False,
                 f"interval ignores the imbalance a prompt caliper leaves (it does not cover: see the _bc row); {unmatched}"),
                (corrected, adjusted, True, f"bias-corrected by the cross-fitted control-outcome model; {unmatched}")]
    rows = []
    for method, values, valid, note in variants:
        for weighted, weight in d.weightings(matching.treated):
            estimate = float(np.average(values, weights=weight))
            draws = cluster_bootstrap(values, components, weight, c.bootstrap, c.seed)
            rows.append(EffectRow(method, "ATT_matched", estimate, float(np.std(draws, ddof=1)), 2 * len(values),
                                  weighted, note, reference="bootstrap percentile", clusters=shape.clusters,
                                  interval_valid=valid, draws=draws))
    return rows


# ---- diagnostics ------------------------------------------------------------------------------------------------

def _balance(fit: Fit) -> dict:
    """SMD of every covariate: before adjustment, after each matching, after inverse-propensity weighting."""
    X, t = fit.features.matrix, fit.data.treatment
    scale = pooled_sd(X, t)
    table = {"covariates": fit.features.names, "before": smd(X, t, scale=scale).tolist()}
    if "matching" in fit.config.estimators:
        for name, matching in fit.matchings.items():
            if len(matching.treated):
                rows = np.concatenate([matching.treated, matching.control])
                table[f"after_{name}"] = smd(X[rows], t[rows], scale=scale).tolist()
    e = fit.nuisances.clipped(fit.config.propensity_clip)
    ipw = np.where(t == 1, 1 / e, 1 / (1 - e))
    table["after_weighting"] = smd(X, t, weight=ipw, scale=scale).tolist()
    table["max_abs_smd"] = {k: float(np.max(np.abs(v))) for k, v in table.items() if k != "covariates"}
    table["blocks"] = fit.features.blocks
    return table


def _heterogeneity(fit: Fit) -> tuple[dict, np.ndarray]:
    d, kept = fit.data, fit.kept
    clusters = np.unique(d.clusters[kept], return_inverse=True)[1]
    forest = forest_cate(fit.features.modifier_matrix[kept], fit.scores[kept], clusters, fit.config.seed,
                         max_pairs=fit.config.hte_max_pairs)
    by = {"model": subgroup_table(fit.scores, d.frame["model"].astype(str).to_numpy(), d.clusters, d.design_weight)}
    if "topic" in d.frame.columns:
        by["topic"] = subgroup_table(fit.scores, d.frame["topic"].astype(str).to_numpy(), d.clusters, d.design_weight)
    return {
        "population": f"{int(kept.sum())} pairs with propensity in [{fit.config.trim}, {1 - fit.config.trim}]",
        "forest_fitted_on": forest.fitted_on,
        "forest_sample": (f"all {forest.fitted_on} pairs" if forest.fitted_on == int(kept.sum()) else
                          f"{forest.fitted_on} of the {int(kept.sum())} pairs (whole users drawn at random, "
                          f"hte_max_pairs = {fit.config.hte_max_pairs}); calibration test and GATES on those, "
                          "CATEs predicted for all"),
        "cate_quantiles": np.quantile(forest.cate, [0, .05, .25, .5, .75, .95, 1]).tolist(),
        "share_interval_below_zero": float(np.mean(forest.high < 0)),
        "share_interval_above_zero": float(np.mean(forest.low > 0)),
        "share_point_estimate_below_zero": float(np.mean(forest.cate < 0)),
        "beyond_scale": int(np.sum(np.abs(forest.cate) > SCALE_LIMIT)),
        "calibration_test": asdict(forest.calibration),
        "calibration_repeats": forest.repeats,
        "heterogeneity_detected": bool(forest.calibration.p_value < 0.05),
        "gates": forest.gates,
        "by": by,
    }, forest.cate


def _gold_block(fit: Fit) -> dict:
    audit = fit.all.audit
    if audit is None:
        return {"available": False, "reason": fit.gold_problem()}
    block = {
        "available": fit.gold_problem() is None,
        "reason": fit.gold_problem(),
        "pairs": int(len(audit.audited)),
        "audited": int(audit.audited.sum()),
        "audited_in_arm": int(audit.in_arm.sum()),
        "expected_audited": audit.expected,
        "response_rate": audit.response_rate,
        "audit_incomplete": audit.incomplete,
        "gold_rule": "treatment rule applied to the gold empathy (mean over the audit's annotators); pairs whose gold "
                     "empathy falls in the excluded band are audited but outside the estimand's population",
        "judge_missing": "pairs without a complete panel score stay in dr_gold_corrected (their prediction uses the "
                         "covariates only) and leave the judge-label rows",
    }
    if block["available"] and "dr_gold_corrected" in fit.config.estimators:
        estimate, se, audit_variance = fit.gold_corrected.estimate(fit.all.clusters)
        block.update(explained=fit.gold_corrected.explained,
                     plan={"variance": se**2, "audit_variance": audit_variance, "audited": int(audit.audited.sum()),
                           "pairs": int(len(audit.audited))})
    return block


def _sensitivity(fit: Fit, rows: list[EffectRow]) -> dict:
    """E-values of the DR and primary ATEs, Rosenbaum Γ of optimal matching (bias-corrected pair
    differences), omitted-variable bounds of the DR ATE — all from the nuisances every row uses."""
    d, c, n = fit.data, fit.config, fit.nuisances
    sd = float(np.std(d.outcome, ddof=1))
    out: dict = {"e_value": {}}
    for r in rows:
        if r.estimand == "ATE" and not r.weighted and r.method in ("dr", PRIMARY) and np.isfinite(r.estimate):
            out["e_value"][r.method] = e_value(r.estimate, (r.ci_low, r.ci_high), sd)
    out["e_value"]["how"] = ("effect ÷ SD of the judge-label attachment in the arms; RR ≈ exp(0.91·d) "
                             "(VanderWeele & Ding 2017); e_value_ci is for the confidence limit nearer 0")
    if "matching" in c.estimators and len(fit.matchings["optimal"].treated):
        m = fit.matchings["optimal"]
        differences = (d.outcome[m.treated] - d.outcome[m.control]) - (n.mu0[m.treated] - n.mu0[m.control])
        out["rosenbaum"] = {"method": "matching_optimal_bc", **rosenbaum(differences),
                            "how": "Wilcoxon signed-rank on the bias-corrected matched-pair differences, worst-case "
                                   "p-value when hidden bias multiplies a pair's odds of treatment by up to Γ; "
                                   "pairs treated as independent (users ignored)"}
    if "dr" not in c.estimators:
        return out
    out["omitted_variable"] = {"method": "dr", **ovb(d.outcome, d.treatment, n.mu0, n.mu1,
                                                     n.clipped(c.propensity_clip), d.clusters),
                               "how": "Chernozhukov et al. (2022) bounds via econml's sensitivity_interval / RV on "
                                      "our cross-fitted nuisances; covariance clustered on the user; ρ = 1"}
    return out


def refute_problem(fit: Fit) -> Problem:
    """The dr estimate's inputs, for refuters to alter and refit: the judge-label rows, the confounders
    the nuisances see, the same folds."""
    d, c = fit.data, fit.config
    control = (pd.to_numeric(d.frame[NEGATIVE_CONTROL], errors="coerce").to_numpy(dtype=float)
               if has_negative_control(d.frame) else None)
    return Problem(fit.features.for_sample, d.treatment.astype(int), d.outcome, d.clusters, d.frame["model"].astype(str).to_numpy(),
                   fit.folds_all[fit.arm_mask], c.nuisance, c.propensity_clip, c.seed, negative_control=control)


def _refuters(fit: Fit) -> dict:
    estimate, se = weighted_mean_with_se(fit.scores, fit.data.clusters)
    quantile = stats.t.ppf(0.975, fit.shape.df) if fit.shape.df else stats.norm.ppf(0.975)
    original = Estimate(estimate, se, estimate - quantile * se, estimate + quantile * se, len(fit.scores))
    names = list(fit.config.refuters)
    if has_negative_control(fit.data.frame) and NEGATIVE_CONTROL_REFUTER not in names:
        names.append(NEGATIVE_CONTROL_REFUTER)  # the study judged the prompt's attachment: always checked
    out = refute(refute_problem(fit), names, original, fit.say)
    return {"of": "dr · ATE", **out}


def row_warnings(rows: list[EffectRow]) -> list[str]:
    """One line per row past what the 1–7 scale allows, and per row that could not be estimated."""
    out = []
    for r in rows:
        if not np.isfinite(r.estimate):
            out.append(f"{r.label}: not estimated — {r.note}")
        elif abs(r.estimate) > SCALE_LIMIT:
            out.append(f"{r.label}: {r.estimate:+.2f} lies outside ±{SCALE_LIMIT:g}, the widest effect a 1–7 scale "
                       "allows — the model is extrapolating (check overlap)")
    return out


def correction_summary(rows: list[EffectRow]) -> str | None:
    """One sentence on what the judge-error correction did (unweighted rows)."""
    found = {r.method: r for r in rows if r.estimand == "ATE" and not r.weighted}
    if not {"dr", "dr_gold_corrected", "dr_gold_only"} <= set(found):
        return None
    plain, corrected, only = found["dr"], found["dr_gold_corrected"], found["dr_gold_only"]
    if not all(np.isfinite(r.estimate) for r in (plain, corrected, only)):
        return None
    width = lambda r: r.ci_high - r.ci_low  # noqa: E731
    return (f"Correcting the judges' labels with {corrected.gold_n} human-labelled audit pairs moved the estimate by "
            f"{corrected.estimate - plain.estimate:+.3f} (from {plain.estimate:.3f} to {corrected.estimate:.3f}); its "
            f"interval is {width(corrected) / width(only):.2f} × as wide as the human labels alone give "
            f"(worth {corrected.effective_gold_n:.0f} human-labelled pairs).")


def _warnings(fit: Fit, rows: list[EffectRow]) -> list[str]:
    c, counts, out = fit.config, fit.all.counts, list(fit.warnings)
    for arm in ("treated", "control"):
        if counts[arm] < c.min_arm:
            out.append(f"only {counts[arm]} {arm} pairs by the judges' labels (minimum {c.min_arm}): estimates are fragile")
    out += row_warnings(rows)
    if fit.shape.few:
        out.append(f"few or very unequal clusters: {fit.shape.describe()}; intervals use a t(G−1) reference")
    partial = sum(v for k, v in counts.items() if k.endswith("_partial_panel"))
    if partial:
        out.append(f"{partial} construct scores are missing because some judge of the panel failed on the pair: "
                   "those pairs leave the judge-label rows" + (" (dr_gold_corrected keeps them)" if fit.all.audit else ""))
    audit = fit.all.audit
    if audit is not None and audit.response_rate < 0.9:
        out.append(f"only {audit.response_rate:.0%} of the expected audit labels exist ({int(audit.audited.sum())} of "
                   f"{audit.expected:.0f}): the correction assumes the missing ones are missing at random — finish "
                   "them or re-queue skipped tasks (`empathy annotate requeue`)")
    if audit is not None and audit.incomplete:
        out.append(f"{audit.incomplete} audited pairs have a human empathy label but no attachment label: "
                   "counted as missing audit labels")
    return out


def estimate_effects(
    pairs: pd.DataFrame, config: CausalConfig, embedder: Embedder, progress: Progress | None = None
) -> EstimateResult:
    """Every configured estimator, diagnostic and refuter on one scored-pairs table, with the parallel
    pieces on `config.backend` (`_backend`)."""
    with _backend.using(_backend.make(config.backend, config.ray_address)):
        return _estimate_effects(pairs, config, embedder, progress)


def confounders(data: StudyArrays, config: CausalConfig, embedder: Embedder,
                progress: Progress | None = None) -> Confounders:
    """The confounder matrix every estimator adjusts for, for the rows of `prepare`'s table (the
    estimate's own, and the check's simulated studies on the same texts)."""
    report = progress or (lambda step, done, total: None)
    prompt_embedding = embedder.embed(data.frame["prompt"].astype(str).tolist(),
                                      on_progress=lambda done, total: report("embedding prompts", done, total))
    prev_embedding = None
    has_prev = "prev_response" in data.frame.columns and data.frame["prev_response"].fillna("").str.strip().ne("").any()
    if has_prev and config.prev_embedding_dims > 0:
        prev_embedding = embedder.embed(data.frame["prev_response"].fillna("").astype(str).tolist(),
                                        on_progress=lambda done, total: report("embedding previous turns", done, total))
    if not np.isfinite(prompt_embedding).all():
        raise CausalError("some prompt embeddings are not finite numbers: check the prompt texts")
    return build_confounders(data.frame, prompt_embedding, prev_embedding, config.embedding_dims,
                             config.prev_embedding_dims, config.seed)


def _estimate_effects(pairs: pd.DataFrame, config: CausalConfig, embedder: Embedder,
                      progress: Progress | None) -> EstimateResult:
    report = progress or (lambda step, done, total: None)

    def say(step: str) -> None:
        report(step, 0, 1)
    rule = TreatmentRule(high=config.treat_high, low=config.treat_low)
    data = prepare(pairs, rule)
    fold_ids(data.clusters[data.in_arm], config.folds, config.seed)
    fit = Fit(data, confounders(data, config, embedder, report), config, say)

    rows: list[EffectRow] = []
    for name in config.estimators:
        rows.extend(ESTIMATORS[name](fit))

    hte, cate = {}, np.zeros(0)
    if config.heterogeneity:
        say("heterogeneity (forest CATEs, calibration test)")
        hte, cate = _heterogeneity(fit)

    matching_summary, matched_pairs = {}, pd.DataFrame(columns=["method", "treated_pair_id", "control_pair_id",
                                                                 "distance"])
    if "matching" in config.estimators:
        matchings = fit.matchings
        matching_summary = {
            name: {"distance": config.distance, "caliper": fit.caliper, "pairs": int(len(m.treated)),
                   "unmatched_treated": int(len(m.unmatched)), "objective": m.objective,
                   "mean_distance": float(m.distance.mean()) if len(m.distance) else None,
                   "clusters": "connected components of the treated-user/control-user graph"}
            for name, m in matchings.items()
        }
        ids = fit.data.frame["pair_id"].to_numpy()
        matched_pairs = pd.concat([
            pd.DataFrame({"method": f"matching_{name}", "treated_pair_id": ids[m.treated],
                          "control_pair_id": ids[m.control], "distance": m.distance})
            for name, m in matchings.items()
        ], ignore_index=True)

    sensitivity = {}
    if config.sensitivity:
        say("sensitivity to unmeasured confounding")
        sensitivity = _sensitivity(fit, rows)

    refuted = (_refuters(fit) if (config.refuters or has_negative_control(data.frame)) and "dr" in config.estimators
               else {})

    e, t = fit.nuisances.propensity, fit.data.treatment
    clip = config.propensity_clip
    gold_ready = data.audit is not None and fit.gold_problem() is None and PRIMARY in config.estimators
    primary_method = PRIMARY if gold_ready else "dr"
    primary_weighted = data.design_weight is not None
    return EstimateResult(
        rows=rows,
        counts={**data.counts, "clusters": fit.shape.clusters, "cluster_column": data.cluster_column,
                "effective_clusters": fit.shape.effective},
        rule=rule.describe(),
        balance=_balance(fit),
        overlap={"clipped": int(np.sum((e < clip) | (e > 1 - clip))), "trimmed": int((~fit.kept).sum()),
                 "treated_quantiles": np.quantile(e[t == 1], [0, .05, .5, .95, 1]).tolist(),
                 "control_quantiles": np.quantile(e[t == 0], [0, .05, .5, .95, 1]).tolist(),
                 "source": "the cross-fitted propensity every estimate uses"},
        matching=matching_summary,
        hte=hte,
        gold={**_gold_block(fit), "summary": correction_summary(rows)},
        warnings=_warnings(fit, rows),
        primary=f"{primary_method} · ATE{' · weighted' if primary_weighted else ''}",
        matched_pairs=matched_pairs,
        arrays={"propensity": e, "treated": t, "cate": cate, **getattr(fit, "extra_arrays", {})},
        sensitivity=sensitivity,
        refuters=refuted,
    )


@estimator("tmle")
def _tmle(fit: Fit) -> list[EffectRow]:
    """TMLE from the same cross-fitted nuisances as `dr` (causal/_tmle.py)."""
    from ._tmle import tmle_ate

    d, c = fit.data, fit.config
    e = fit.nuisances.clipped(c.propensity_clip)
    rows = []
    for weighted, weight in d.weightings():
        estimate, se, epsilon = tmle_ate(d.outcome, d.treatment, fit.nuisances.mu0, fit.nuisances.mu1, e, d.clusters,
                                         weight)
        rows.append(_row("tmle", "ATE", estimate, se, len(d.outcome), fit.shape, weighted,
                         note=f"targeted (logistic fluctuation ε = {epsilon:+.4f}) from dr's nuisances; a plug-in, "
                              "so it stays on the 1–7 scale; judge labels taken as truth"))
    return rows


@estimator("linear_dml")
def _linear_dml(fit: Fit) -> list[EffectRow]:
    """Empathy as a continuous treatment: econml's LinearDML on every scored pair (the band the rule
    excludes included), the effect of one point of empathy on attachment. Same confounders and folds
    as the binary nuisances; the SE is recomputed from econml's residuals summed by user."""
    from econml.dml import LinearDML
    from sklearn.base import clone

    from ._nuisance import nuisance_models

    a, c = fit.all, fit.config
    scored = ~(np.isnan(a.empathy) | np.isnan(a.outcome))
    X = fit.features_all.for_sample(int(scored.sum()))[scored]
    folds = fit.folds_all[scored]
    _, regressor = nuisance_models(c.nuisance, c.seed)
    splits = [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in np.unique(folds)]
    model = LinearDML(model_y=clone(regressor), model_t=clone(regressor), discrete_treatment=False, cv=splits,
                      random_state=c.seed, use_ray=c.backend == "ray")  # econml's folds as Ray tasks
    y, t = a.outcome[scored], a.empathy[scored]
    model.fit(y, t, X=None, W=X, cache_values=True)
    y_res, t_res = (np.ravel(v) for v in model.residuals_[:2])
    theta = float(model.intercept_)  # no effect modifiers: one constant effect per point
    clusters = np.unique(a.clusters[scored], return_inverse=True)[1]
    se = clustered_se(t_res * (y_res - theta * t_res) / np.sum(t_res**2), clusters)
    fit.extra_arrays = {**getattr(fit, "extra_arrays", {}), "dose_empathy": t, "dose_t_res": t_res, "dose_y_res": y_res,
                        "dose_theta": np.array([theta])}
    return [_row("linear_dml", "per_point", theta, se, int(scored.sum()), cluster_shape(clusters),
                 note="effect of one point of empathy (1–7, continuous) on attachment; econml LinearDML, "
                      "partialling out the confounders; all scored pairs, the excluded band included")]


from . import _learners  # noqa: E402,F401  (registers x_learner and causal_forest_dml: they build on Fit)
