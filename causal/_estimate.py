"""The estimation run: the registered estimators over one scored-pairs table and one set of
cross-fitted nuisances, with balance, overlap, heterogeneity and the warnings a reader must see.

Estimators register by name (`_registry.estimator`) and receive a `Fit` (`_fit.py`) — the prepared
data, the confounders and lazily computed shared pieces (nuisances, matchings, judge-error fits). A
new estimator is a new registered function in `_estimators.py` or `_learners.py`; nothing here changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np
import pandas as pd

from . import _backend, _estimators, _learners  # noqa: F401  (importing them registers their estimators)
from ._audit_need import arm_weight
from ._balance import pooled_sd, smd
from ._config import PRIMARY, CausalConfig
from ._data import Audit, StudyArrays, TreatmentRule, prepare
from ._embeddings import Embedder
from ._errors import CausalError
from ._features import Confounders, build_confounders
from ._fit import Fit
from ._gold import GoldFit
from ._hte import forest_cate, subgroup_table
from ._inference import interval, uniform_equivalent, uniform_equivalent_interval, weighted_mean_with_se
from ._negative_control import COLUMN as NEGATIVE_CONTROL
from ._negative_control import NAME as NEGATIVE_CONTROL_REFUTER
from ._negative_control import has_negative_control
from ._nuisance import fold_ids
from ._refute import Alteration, Estimate, Problem, dr_problem, refute
from ._registry import ESTIMATORS
from ._results import SCALE_LIMIT, EffectRow, EstimateResult
from ._selection import Terminal, selection_block
from ._sensitivity import audited_ovb_params, e_value, ovb, ovb_bounds, rosenbaum
from ._validation import heterogeneity_evidence, refuter_evidence, row_status

# progress(step, done, total): called as each step advances (embedding reports per batch).
Progress = Callable[[str, int, int], None]


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
    sides = {side: [g["group"] for g in forest.gates if (g["ci_simultaneous"][0] > 0 if side == "above" else
                                                          g["ci_simultaneous"][1] < 0)]
             for side in ("above", "below")}
    return {
        "population": f"{int(kept.sum())} pairs with propensity in [{fit.config.trim}, {1 - fit.config.trim}]",
        "forest_fitted_on": forest.fitted_on,
        "forest_sample": (f"all {forest.fitted_on} pairs" if forest.fitted_on == int(kept.sum()) else
                          f"{forest.fitted_on} of the {int(kept.sum())} pairs (whole users drawn at random, "
                          f"hte_max_pairs = {fit.config.hte_max_pairs}); calibration test and GATES on those, "
                          "CATEs predicted for all"),
        "honest_by": d.cluster_column,
        "cate_how": forest.how["cate"],
        "cate_quantiles": np.quantile(forest.cate, [0, .05, .25, .5, .75, .95, 1]).tolist(),
        "share_point_estimate_below_zero": float(np.mean(forest.cate < 0)),
        "beyond_scale": int(np.sum(np.abs(forest.cate) > SCALE_LIMIT)),
        "calibration_test": asdict(forest.calibration),
        "calibration_how": forest.how["calibration_test"],
        "calibration_repeats": forest.repeats,
        "heterogeneity_detected": bool(forest.calibration.p_value < 0.05),
        "validation": heterogeneity_evidence(),
        "heterogeneity_detected_by": ("the calibration test: β_het > 0 at one-sided p < 0.05 (after the median-over-"
                                      "splits adjustment), on CATEs from forests that never saw the pair's user"),
        "gates": forest.gates,
        "gates_how": forest.how["gates"],
        "gates_above_zero": sides["above"],
        "gates_below_zero": sides["below"],
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
        "asked": audit.asked,  # pairs drawn where gold_drawn records them, else expected_audited
        "response_rate": audit.response_rate,
        "audit_incomplete": audit.incomplete,
        "missing_labels": audit.missing,
        "gold_rule": "treatment rule applied to the gold empathy (mean over the audit's annotators); pairs whose gold "
                     "empathy falls in the excluded band are audited but outside the estimand's population",
        "judge_missing": "pairs without a complete panel score stay in dr_gold_corrected (their prediction uses the "
                         "scores of the judges that did score them, where the table has each judge's own, and the "
                         "covariates) and leave the judge-label rows",
        "prediction_judges": list(fit.all.panel.judges) if fit.all.panel is not None else [],
        "prediction": ("the panel aggregate and each judge's own scores (<construct>__<judge>), as separate "
                       "predictors of the gold labels in the models of dr_gold_corrected's prediction: a judge that "
                       "predicts the human labels badly gets little weight (a missing score: 0 and an indicator)"
                       if fit.all.panel is not None else
                       "the panel aggregate only: the table has no per-judge score columns (<construct>__<judge>)"),
    }
    if block["available"] and "dr_gold_corrected" in fit.config.estimators:
        estimate, se, audit_variance = fit.gold_corrected.estimate(fit.all.clusters)
        block.update(explained=fit.gold_corrected.explained,
                     plan={"variance": se**2, "audit_variance": audit_variance, "audited": int(audit.audited.sum()),
                           "pairs": int(len(audit.audited))},
                     design=_design_saving(fit.gold_corrected, audit, estimate, fit.all.clusters, fit.config.seed))
    return block


def _audit_residual(gold: GoldFit, audit: Audit, estimate: float) -> np.ndarray:
    """Each audited pair's residual r in the correction (its gold moment minus the prediction that enters,
    at the estimate: the audit's share of the variance is Σ (1 − π)/π · r²); NaN on the pairs not audited."""
    r = audit.probability * (gold.audit_numerator - estimate * gold.audit_denominator)
    return np.where(audit.audited, r, np.nan)


def _audit_need(fit: Fit) -> pd.DataFrame | None:
    """pair_id → weight: the inverse-propensity weight (gold propensity, the judges' arm) a label error on
    the pair carries into the correction (`arm_weight`), for the next batch of an active audit; and the
    audited pairs' residuals, from which `annotate plan` forecasts what such a batch would buy."""
    gold = fit.gold_corrected.nuisances
    if gold is None:
        return None
    clip = fit.config.propensity_clip
    weight = arm_weight(np.clip(gold.propensity, clip, 1 - clip), fit.all.treatment)
    estimate = fit.gold_corrected.estimate(fit.all.clusters)[0]
    return pd.DataFrame({"pair_id": fit.all.frame["pair_id"].to_numpy(), "weight": weight,
                         "residual": _audit_residual(fit.gold_corrected, fit.all.audit, estimate)})


def _design_saving(gold: GoldFit, audit: Audit, estimate: float, clusters: np.ndarray, seed: int) -> dict:
    """What the audit's design bought: the labels it used against those a uniform audit would have needed
    for the same audit variance (`uniform_equivalent`, with a bootstrap interval over the labelled pairs'
    users). Said only where the design's probabilities (gold_prob) vary: a uniform design equals itself
    by construction."""
    labelled = audit.audited
    p = audit.probability[labelled]
    residual = _audit_residual(gold, audit, estimate)[labelled]
    varies = audit.design_varies
    equivalent = uniform_equivalent(residual, p, len(labelled))
    low, high = uniform_equivalent_interval(residual, p, len(labelled), clusters[labelled], seed=seed)
    finite = np.isfinite(equivalent)
    out = {"probabilities_vary": varies, "labels_used": int(labelled.sum()),
           "uniform_equivalent": round(equivalent, 1) if finite else None,
           "uniform_equivalent_interval": [round(low, 1), round(high, 1)] if finite and np.isfinite(low) else None,
           "sentence": None}
    if varies and out["uniform_equivalent"] is not None:
        saved = 1 - out["labels_used"] / equivalent
        verdict = f"{saved:.0%} fewer labels" if saved >= 0 else f"{-saved:.0%} more labels than uniform"
        spread = (f", 95 % bootstrap interval {low:,.0f}–{high:,.0f}"
                  if out["uniform_equivalent_interval"] is not None else "")
        out["sentence"] = (f"The audit's design used {out['labels_used']:,} human-labelled pairs; a uniform audit would "
                           f"have needed about {equivalent:,.0f}{spread} for the same audit variance ({verdict}; "
                           "estimated from the labelled pairs' residuals).")
    return out


def _sensitivity(fit: Fit, rows: list[EffectRow], primary_ready: bool) -> dict:
    """E-values of the primary and DR ATEs, Rosenbaum Γ of optimal matching (bias-corrected pair
    differences), omitted-variable bounds of the primary and the DR ATE — all from the nuisances those
    rows use (the primary's: its gold-label nuisances, on the audited pairs)."""
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
    out["omitted_variable"] = {}
    if primary_ready:
        gold, a = fit.gold_corrected, fit.all
        theta, influence = gold.influence(a.clusters)
        g = gold.nuisances
        weight = np.where(a.audit.in_arm == 1, 1 / a.audit.probability, 0.0)
        params = audited_ovb_params(theta, influence, np.nan_to_num(a.audit.outcome), np.nan_to_num(a.audit.treatment),
                                    g.mu0, g.mu1, g.clipped(c.propensity_clip), weight, a.clusters)
        out["omitted_variable"][PRIMARY] = {
            **ovb_bounds(*params),
            "how": "Chernozhukov et al. (2022) bounds via econml's sensitivity_interval / RV: θ and its influence from "
                   "the reported row (the correction mixed with gold-only); σ² from the correction's own gold-label "
                   "nuisances (not gold-only's) as a 1/π-weighted mean over the audited "
                   "pairs, ν² as the mean of 1/e + 1/(1 − e) over every pair; covariance clustered on the user; ρ = 1"}
    if "dr" in c.estimators:
        out["omitted_variable"]["dr"] = {
            **ovb(d.outcome, d.treatment, n.mu0, n.mu1, n.clipped(c.propensity_clip), d.clusters),
            "how": "Chernozhukov et al. (2022) bounds via econml's sensitivity_interval / RV on our cross-fitted "
                   "nuisances of the judges' labels; covariance clustered on the user; ρ = 1"}
    return out


def _negative_control(frame: pd.DataFrame) -> np.ndarray | None:
    return (pd.to_numeric(frame[NEGATIVE_CONTROL], errors="coerce").to_numpy(dtype=float)
            if has_negative_control(frame) else None)


def refute_problem(fit: Fit) -> Problem:
    """The dr estimate's inputs, for refuters to alter and refit: the judge-label rows, the confounders
    the nuisances see, the same folds."""
    d, c = fit.data, fit.config
    return dr_problem(fit.features.for_sample, d.treatment.astype(int), d.outcome, d.clusters,
                      d.frame["model"].astype(str).to_numpy(), fit.folds_all[fit.arm_mask], fit.models,
                      c.propensity_clip, c.seed, negative_control=_negative_control(d.frame))


def primary_problem(fit: Fit) -> Problem:
    """The primary estimate (`dr_gold_corrected`) as a refuter problem: every row of the study, its audit,
    and the whole corrected estimator refitted on the altered rows. Placebo permutations stay within the
    audit's strata (not audited; audited in an arm; audited in the excluded band), so every audited pair
    keeps the human labels it has."""
    a = fit.all
    audit = a.audit
    strata = np.where(~audit.audited, 0, np.where(audit.in_arm == 1, 1, 2))
    control = _negative_control(a.frame)

    def refit(change: Alteration) -> Estimate:
        data, features = _altered_study(fit, change)
        altered = Fit(data, features, fit.config, lambda step: None, choice=fit.choice)
        problem = altered.gold_problem()
        if problem is not None:
            raise CausalError(problem)
        row = ESTIMATORS[PRIMARY](altered)[0]  # the unweighted ATE comes first
        return Estimate(row.estimate, row.se, row.ci_low, row.ci_high, row.n_used)

    return Problem(f"{PRIMARY} · ATE", refit, a.clusters, a.frame["model"].astype(str).to_numpy(), strata,
                   fit.config.seed, negative_control=control)


def _altered_study(fit: Fit, change: Alteration):
    """The study's arrays (and confounders) with a refuter's alteration applied to judge and gold labels alike."""
    a, audit = fit.all, fit.all.audit
    treatment, empathy, outcome = a.treatment.copy(), a.empathy.copy(), a.outcome.copy()
    gold_t, gold_y = audit.treatment.copy(), audit.outcome.copy()
    panel = a.panel
    keep = np.ones(len(treatment), bool) if change.keep is None else change.keep.copy()
    if change.permutation is not None:
        p = change.permutation
        treatment, empathy, gold_t = treatment[p], empathy[p], gold_t[p]
        if panel is not None:  # each judge's empathy moves with the panel's
            panel = panel.permuted(p)
    if change.outcome is not None:
        y = change.outcome
        outcome = np.where(np.isnan(outcome), np.nan, y)
        gold_y = np.where(audit.in_arm == 1, y, np.nan)
        if panel is not None:  # the new outcome has no per-judge scores: each judge reads it as the panel does
            panel = replace(panel, attachment=np.where(np.isnan(panel.attachment), np.nan, y[:, None]),
                            **({} if panel.expected_attachment is None else {"expected_attachment": np.where(
                                np.isnan(panel.expected_attachment), np.nan, y[:, None])}))
        keep &= ~((audit.in_arm == 1) & np.isnan(y))  # an audited pair without the new outcome leaves the audit
    data = replace(a, treatment=treatment, empathy=empathy, outcome=outcome, panel=panel,
                   audit=replace(audit, treatment=gold_t, outcome=gold_y))
    if keep.all():  # a permutation keeps every row: no copy of the confounders and the prompt embeddings
        return data, fit.features_all
    return data.subset(keep), fit.features_all.subset(keep)


def _refuters(fit: Fit, primary_ready: bool) -> dict:
    """The configured refuters (and the negative control where its column exists) on the primary estimate
    and on the judge-label dr, primary first: {target: {refuter: result}}."""
    names = list(fit.config.refuters)
    if has_negative_control(fit.all.frame) and NEGATIVE_CONTROL_REFUTER not in names:
        names.append(NEGATIVE_CONTROL_REFUTER)  # the study judged the prompt's attachment: always checked
    out = {}
    if primary_ready:
        row = ESTIMATORS[PRIMARY](fit)[0]
        original = Estimate(row.estimate, row.se, row.ci_low, row.ci_high, row.n_used)
        out[f"{PRIMARY} · ATE"] = refute(primary_problem(fit), names, original, fit.say)
    if "dr" in fit.config.estimators:
        estimate, se = weighted_mean_with_se(fit.scores, fit.data.clusters)
        original = Estimate(estimate, se, *interval(estimate, se, fit.shape.df), len(fit.scores))
        out["dr · ATE"] = refute(refute_problem(fit), names, original, fit.say)
    for checks in out.values():
        for name, result in checks.items():
            result["power"] = refuter_evidence(name)
    return out


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


def once_each(lines: list[str]) -> list[str]:
    """Each warning once, in the order first seen, with how many times it was raised."""
    counts = Counter(lines)
    return [line if counts[line] == 1 else f"{line} (×{counts[line]})" for line in dict.fromkeys(lines)]


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
                   f"{audit.asked:.0f}): missing labels are {audit.missing.split(':')[0]} — finish them or "
                   "re-queue skipped tasks (`empathy annotate requeue`)")
    if audit is not None and audit.incomplete:
        out.append(f"{audit.incomplete} audited pairs have a human empathy label but no attachment label: "
                   "counted as missing audit labels")
    return out


def estimate_effects(
    pairs: pd.DataFrame, config: CausalConfig, embedder: Embedder, progress: Progress | None = None, *,
    terminal: Terminal | None = None, provenance: dict | None = None, judge_columns: dict | None = None,
) -> EstimateResult:
    """Every configured estimator, diagnostic and refuter on one scored-pairs table, with the parallel
    pieces on `config.backend` (`_backend`), and the selection-on-replying analysis of `terminal` (the
    scored terminal pairs, if any): the whole result, in one place. `provenance` is what the caller knows
    of how the inputs were made (files, hashes, upstream records); the embeddings used are added here.
    `judge_columns`: the file's `panel_columns` record (construct → judge → column of that judge's own
    score), where it has one; without it such columns are found by their documented names (`prepare`)."""
    with _backend.using(_backend.make(config.backend, config.ray_address, config.workers)):
        result = _estimate_effects(pairs, config, embedder, progress, judge_columns)
        report = progress or (lambda step, done, total: None)
        result.selection = selection_block(pairs, terminal, config, embedder,
                                           progress=lambda step: report(step, 0, 1))
    result.provenance = {**(provenance or {}),
                         "embeddings": {"embedding": embedder.embedding, "model": embedder.model_name,
                                        "embedded_now": embedder.embedded}}
    return result


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
                      progress: Progress | None, judge_columns: dict | None) -> EstimateResult:
    report = progress or (lambda step, done, total: None)

    def say(step: str) -> None:
        report(step, 0, 1)
    rule = TreatmentRule(high=config.treat_high, low=config.treat_low)
    data = prepare(pairs, rule, judge_columns)
    fold_ids(data.clusters[data.in_arm], config.folds, config.seed)
    fit = Fit(data, confounders(data, config, embedder, report), config, say)

    rows: list[EffectRow] = []
    for name in config.estimators:
        rows.extend(ESTIMATORS[name](fit))
    settings = config.model_dump()
    for r in rows:
        if np.isfinite(r.estimate):
            r.validation, r.validation_note = row_status(f"{r.method} · {r.estimand}", r.weighted, settings)
        else:
            r.validation, r.validation_note = "exploratory", "not estimated"

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
                   "clusters": "users: each pair's contribution summed by the user on each side"}
            for name, m in matchings.items()
        }
        ids = fit.data.frame["pair_id"].to_numpy()
        matched_pairs = pd.concat([
            pd.DataFrame({"method": f"matching_{name}", "treated_pair_id": ids[m.treated],
                          "control_pair_id": ids[m.control], "distance": m.distance})
            for name, m in matchings.items()
        ], ignore_index=True)

    gold_ready = data.audit is not None and fit.gold_problem() is None and PRIMARY in config.estimators
    sensitivity = {}
    if config.sensitivity:
        say("sensitivity to unmeasured confounding")
        sensitivity = _sensitivity(fit, rows, gold_ready)

    refuted = _refuters(fit, gold_ready) if config.refuters or has_negative_control(data.frame) else {}

    e, t = fit.nuisances.propensity, fit.data.treatment
    clip = config.propensity_clip
    primary_method = PRIMARY if gold_ready else "dr"
    primary_weighted = data.design_weight is not None
    missing = None if gold_ready else (fit.gold_problem() if PRIMARY in config.estimators
                                       else f"{PRIMARY} is not among the configured estimators")
    warnings = once_each(_warnings(fit, rows))
    if missing:  # first and loud: a judge-only estimate must never pass for the corrected one
        warnings.insert(0, f"NO PRIMARY ESTIMATE: {PRIMARY}, the estimate checked against human labels, could not "
                           f"be made ({missing}); dr on the judges' labels alone stands in its place, and no "
                           "person has checked those labels")
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
        warnings=warnings,
        primary=f"{primary_method} · ATE{' · weighted' if primary_weighted else ''}",
        primary_missing=missing,
        matched_pairs=matched_pairs,
        audit_need=_audit_need(fit) if gold_ready else None,
        arrays={"propensity": e, "treated": t, "cate": cate, **fit.arrays},
        sensitivity=sensitivity,
        refuters=refuted,
        nuisance_models=fit.choice.to_json() if config.nuisance == "auto" else
        {"propensity": config.nuisance, "control_outcome": config.nuisance, "treated_outcome": config.nuisance,
         "how": "one class for every nuisance, as [causal] nuisance sets"},
    )
