"""The estimation run: every estimator on one scored-pairs table, with balance, overlap and heterogeneity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from ._balance import pooled_sd, smd
from ._data import StudyArrays, TreatmentRule, prepare
from ._dr import (
    blp_test,
    crossfit_control_outcome,
    doubly_robust_scores,
    folds_for,
    forest_cate,
    group_effects,
    out_of_fold_cate,
)
from ._embeddings import Embedder
from ._features import Confounders, build_confounders
from ._inference import cluster_bootstrap, difference_in_means, normal_interval, weighted_mean_with_se
from ._matching import Edges, Matching, cosine_edges, match, scalar_edges

# progress(step, done, total): called as each step advances (embedding reports per batch).
Progress = Callable[[str, int, int], None]


class CausalConfig(BaseModel):
    """The `[causal]` table of `study.toml` (also the options of `empathy estimate`)."""

    treat_high: float = Field(5, description="treated if empathy ≥ this")
    treat_low: float = Field(3, description="control if empathy ≤ this; anything between is excluded")
    embedding_dims: int = Field(128, ge=1, le=384, description="principal components kept of the prompt embedding")
    prev_embedding_dims: int = Field(16, ge=0, le=384, description="principal components kept of the previous turn's")
    distance: Literal["cosine", "propensity", "combined"] = Field(
        "cosine", description="matching distance: prompt cosine, logit propensity, or cosine within a propensity caliper"
    )
    caliper: float = Field(0.5, gt=0, description="largest cosine distance between matched prompts")
    propensity_caliper: float = Field(0.2, gt=0, description="in SDs of the logit propensity (propensity/combined)")
    neighbours: int = Field(30, ge=1, description="candidate controls per treated unit (sparse kNN graph)")
    nuisance: Literal["linear", "boosting"] = Field("linear", description="propensity and outcome models")
    folds: int = Field(5, ge=2, description="cross-fitting folds (grouped by user)")
    propensity_clip: float = Field(0.01, gt=0, lt=0.5, description="propensities are clipped to [clip, 1 − clip]")
    trim: float = Field(0.1, ge=0, lt=0.5, description="ATE_trimmed keeps units with propensity in [trim, 1 − trim]")
    bootstrap: int = Field(1000, ge=50, description="cluster-bootstrap draws for matching SEs")
    seed: int = Field(0, description="seed of every random step")


@dataclass
class EffectRow:
    method: str
    estimand: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n_used: int
    weighted: bool = False
    note: str = ""


@dataclass
class EstimateResult:
    rows: list[EffectRow]
    counts: dict
    rule: str
    balance: dict
    overlap: dict
    matching: dict
    hte: dict
    matched_pairs: pd.DataFrame  # method, treated_pair_id, control_pair_id, distance
    arrays: dict[str, np.ndarray]  # per-unit values for the report's plots (not written to JSON)
    provenance: dict = field(default_factory=dict)

    def matched_treated(self, method: str) -> pd.Series:
        """pair_ids of the treated units a matching row averages over (its bias-corrected row's too)."""
        return self.matched_pairs.loc[self.matched_pairs["method"] == method.removesuffix("_bc"), "treated_pair_id"]

    def summary_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rows])

    def to_json(self) -> dict:
        return {
            "n": self.counts["treated"] + self.counts["control"],
            "n_treated": self.counts["treated"],
            "n_control": self.counts["control"],
            "treatment_rule": self.rule,
            "counts": self.counts,
            "estimates": [asdict(r) for r in self.rows],
            "balance": self.balance,
            "overlap": self.overlap,
            "matching": self.matching,
            "hte": self.hte,
            "provenance": self.provenance,
        }


def _row(method: str, estimand: str, estimate: float, se: float, n_used: int, weighted=False, note="") -> EffectRow:
    low, high = normal_interval(estimate, se)
    return EffectRow(method, estimand, float(estimate), float(se), float(low), float(high), int(n_used), weighted, note)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


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
            # Distances are on the logit scale: the unmatched price is the propensity caliper.
        else:
            embedding = features.prompt_embedding
            edges = cosine_edges(embedding[t_ids], embedding[c_ids], config.caliper, config.neighbours)
            if config.distance == "combined":
                close = np.abs(logit_e[t_ids][edges.rows] - logit_e[c_ids][edges.cols]) <= ps_caliper
                edges = Edges(edges.rows[close], edges.cols[close], edges.dist[close], edges.n_treated, edges.n_control)
        groups.append((t_ids, c_ids, edges))
    caliper = ps_caliper if config.distance == "propensity" else config.caliper
    return groups, caliper


def _matching_rows(data: StudyArrays, matching: Matching, control_outcome: np.ndarray,
                   config: CausalConfig) -> list[EffectRow]:
    """ATT over the treated units the caliper kept; SE from a cluster bootstrap of matched pairs.

    Each matching also gets a bias-corrected row (Abadie & Imbens 2011): every pair's difference
    minus the difference the control-outcome regression predicts from the pair's own covariate gap.
    A caliper on prompt meaning leaves imbalance in the other confounders (and in embedding
    directions the cosine barely weighs); the correction removes what the regression sees of it.
    """
    if len(matching.treated) == 0:
        return []
    difference = data.outcome[matching.treated] - data.outcome[matching.control]
    corrected = difference - (control_outcome[matching.treated] - control_outcome[matching.control])
    clusters = data.clusters[matching.treated]  # pairs cluster on the treated unit's user
    unmatched = f"{len(matching.unmatched)} treated units unmatched within the caliper"
    variants = [(f"matching_{matching.method}", difference, unmatched),
                (f"matching_{matching.method}_bc", corrected,
                 f"bias-corrected by a cross-fitted control-outcome regression; {unmatched}")]
    rows = []
    for method, values, note in variants:
        for weighted, weight in data.weightings(matching.treated):
            estimate = float(np.average(values, weights=weight))
            draws = cluster_bootstrap(values, clusters, weight, config.bootstrap, config.seed)
            row = _row(method, "ATT_matched", estimate, float(np.std(draws, ddof=1)), 2 * len(values), weighted,
                       note=note)
            row.ci_low, row.ci_high = (float(v) for v in np.percentile(draws, [2.5, 97.5]))
            rows.append(row)
    return rows


def _balance(data: StudyArrays, features: Confounders, matchings: dict[str, Matching], propensity: np.ndarray,
             clip: float) -> dict:
    """SMD of every covariate: before adjustment, after each matching, after inverse-propensity weighting."""
    X, t = features.matrix, data.treatment
    scale = pooled_sd(X, t)
    table = {"covariates": features.names, "before": smd(X, t, scale=scale).tolist()}
    for name, matching in matchings.items():
        if len(matching.treated):
            rows = np.concatenate([matching.treated, matching.control])
            table[f"after_{name}"] = smd(X[rows], t[rows], scale=scale).tolist()
    e = np.clip(propensity, clip, 1 - clip)
    ipw = np.where(t == 1, 1 / e, 1 / (1 - e))
    table["after_weighting"] = smd(X, t, weight=ipw, scale=scale).tolist()
    summary = {k: float(np.max(np.abs(v))) for k, v in table.items() if k != "covariates"}
    table["max_abs_smd"] = summary
    table["blocks"] = features.blocks
    return table


def estimate_effects(
    pairs: pd.DataFrame, config: CausalConfig, embedder: Embedder, progress: Progress | None = None
) -> EstimateResult:
    report = progress or (lambda step, done, total: None)

    def say(step: str) -> None:
        report(step, 0, 1)
    rule = TreatmentRule(high=config.treat_high, low=config.treat_low)
    data = prepare(pairs, rule)
    folds_for(data.clusters, config.folds)

    prompt_embedding = embedder.embed(data.frame["prompt"].astype(str).tolist(),
                                      on_progress=lambda done, total: report("embedding prompts", done, total))
    prev_embedding = None
    has_prev = "prev_response" in data.frame.columns and data.frame["prev_response"].fillna("").str.strip().ne("").any()
    if has_prev and config.prev_embedding_dims > 0:
        prev_embedding = embedder.embed(data.frame["prev_response"].fillna("").astype(str).tolist(),
                                        on_progress=lambda done, total: report("embedding previous turns", done, total))
    if not np.isfinite(prompt_embedding).all():
        from ._errors import CausalError

        raise CausalError("some prompt embeddings are not finite numbers: check the prompt texts")
    features = build_confounders(data.frame, prompt_embedding, prev_embedding, config.embedding_dims,
                                 config.prev_embedding_dims, config.seed)

    rows: list[EffectRow] = []
    n = len(data.outcome)
    for weighted, weight in data.weightings():
        estimate, se = difference_in_means(data.outcome, data.treatment, data.clusters, weight)
        rows.append(_row("naive", "ATE", estimate, se, n, weighted, note="difference in means: confounded"))

    say("doubly robust learner (cross-fitted)")
    dr = doubly_robust_scores(features.matrix, data.treatment, data.outcome, data.clusters,
                              kind=config.nuisance, folds=config.folds, clip=config.propensity_clip, seed=config.seed)
    for weighted, weight in data.weightings():
        estimate, se = weighted_mean_with_se(dr.scores, data.clusters, weight)
        rows.append(_row("dr", "ATE", estimate, se, n, weighted,
                         note=f"{dr.clipped} propensities clipped to [{dr.clip}, {1 - dr.clip}]"))
    kept = (dr.propensity >= config.trim) & (dr.propensity <= 1 - config.trim)
    if kept.sum() >= 2 and 0 < data.treatment[kept].sum() < kept.sum():
        estimate, se = weighted_mean_with_se(dr.scores[kept], data.clusters[kept])
        rows.append(_row("dr", "ATE_trimmed", estimate, se, int(kept.sum()),
                         note=f"propensity in [{config.trim}, {1 - config.trim}]: {int((~kept).sum())} units trimmed"))

    say("matching (greedy and optimal)")
    logit_e = _logit(dr.propensity)
    edges, caliper = _edges_by_model(data, features, logit_e, config)
    matchings = {name: match(edges, caliper, name) for name in ("greedy", "optimal")}
    control_outcome = crossfit_control_outcome(features.matrix, data.treatment, data.outcome, data.clusters,
                                               config.nuisance, config.folds, config.seed)
    for matching in matchings.values():
        rows.extend(_matching_rows(data, matching, control_outcome, config))

    say("heterogeneity (forest CATEs, calibration test)")
    hte = _heterogeneity(data, features, dr.scores, config)

    matching_summary = {
        name: {"distance": config.distance, "caliper": caliper, "pairs": int(len(m.treated)),
               "unmatched_treated": int(len(m.unmatched)), "objective": m.objective,
               "mean_distance": float(m.distance.mean()) if len(m.distance) else None}
        for name, m in matchings.items()
    }
    ids = data.frame["pair_id"].to_numpy()
    matched_pairs = pd.concat([
        pd.DataFrame({"method": f"matching_{name}", "treated_pair_id": ids[m.treated],
                      "control_pair_id": ids[m.control], "distance": m.distance})
        for name, m in matchings.items()
    ], ignore_index=True)
    return EstimateResult(
        rows=rows,
        counts={**data.counts, "clusters": int(len(np.unique(data.clusters))), "cluster_column": data.cluster_column},
        rule=rule.describe(),
        balance=_balance(data, features, matchings, dr.propensity, config.propensity_clip),
        overlap={"clipped": dr.clipped, "trimmed": int((~kept).sum()),
                 "treated_quantiles": np.quantile(dr.propensity[data.treatment == 1], [0, .05, .5, .95, 1]).tolist(),
                 "control_quantiles": np.quantile(dr.propensity[data.treatment == 0], [0, .05, .5, .95, 1]).tolist()},
        matching=matching_summary,
        hte=hte,
        matched_pairs=matched_pairs,
        arrays={"propensity": dr.propensity, "treated": data.treatment, "cate": np.asarray(hte.pop("cate"))},
    )


def _heterogeneity(data: StudyArrays, features: Confounders, scores: np.ndarray, config: CausalConfig) -> dict:
    forest = forest_cate(features.modifier_matrix, features.matrix, data.treatment, data.outcome, data.clusters,
                         kind=config.nuisance, folds=config.folds, clip=config.propensity_clip, seed=config.seed)
    cate_oof = out_of_fold_cate(features.modifier_matrix, scores, data.clusters, config.folds, config.seed)
    test = blp_test(scores, cate_oof, data.clusters)
    by = {"model": group_effects(scores, data.frame["model"].astype(str).to_numpy(), data.clusters, data.design_weight)}
    if "topic" in data.frame.columns:
        by["topic"] = group_effects(scores, data.frame["topic"].astype(str).to_numpy(), data.clusters, data.design_weight)
    beyond = int(np.sum(np.abs(forest.cate) > 6))
    return {
        "cate": forest.cate.tolist(),
        "cate_quantiles": np.quantile(forest.cate, [0, .05, .25, .5, .75, .95, 1]).tolist(),
        "share_interval_below_zero": float(np.mean(forest.high < 0)),
        "share_interval_above_zero": float(np.mean(forest.low > 0)),
        "share_point_estimate_below_zero": float(np.mean(forest.cate < 0)),
        "beyond_scale": beyond,
        "calibration_test": asdict(test),
        "heterogeneity_detected": bool(test.p_value < 0.05),
        "by": by,
    }
