"""What every estimator shares: the prepared data, the confounders, one set of cross-fitted
nuisances and the pieces built from them (matchings, the judge-error fits), computed on first use.

A `Fit` holds only what its constructor sets and what its cached properties compute; estimators
read it and return rows (and may leave per-unit arrays for the report's plots in `arrays`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cached_property

import numpy as np

from ._config import CausalConfig
from ._data import TEXTS, StudyArrays
from ._errors import CausalError
from ._features import Confounders
from ._gold import (
    GoldFit,
    corrected_effect,
    gold_only_effect,
    judge_view,
    mixed_with_gold_only,
    nuisance_summary,
    own_view,
)
from ._inference import ClusterShape, cluster_shape
from ._matching import Edges, Matching, cosine_edges, match, scalar_edges
from ._nuisance import Choice, Models, Nuisances, choose_models, crossfit, dr_scores, fold_ids
from ._results import EffectRow


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def effect_row(method: str, estimand: str, estimate: float, se: float, n_used: int, shape: ClusterShape,
         weighted: bool = False, note: str = "", **extra) -> EffectRow:
    return EffectRow(method, estimand, float(estimate), float(se), int(n_used), weighted, note,
                     reference="t(G-1)" if shape.df else "normal", df=shape.df, clusters=shape.clusters, **extra)


class Fit:
    """What every estimator shares: the data, the confounders and one set of cross-fitted nuisances."""

    def __init__(self, data: StudyArrays, features: Confounders, config: CausalConfig, say: Callable[[str], None],
                 choice: Choice | None = None):
        """`choice`: the nuisance model classes already chosen on this study (a refuter's refit keeps them)."""
        self.all, self.features_all, self.config, self.say = data, features, config, say
        self._choice = choice
        self.arm_mask = data.in_arm
        self.warnings: list[str] = []  # what the estimators found a reader must see
        self.arrays: dict[str, np.ndarray] = {}  # per-unit values estimators leave for the report's plots
        self.folds_all = fold_ids(data.clusters, config.folds, config.seed)
        fold_ids(data.clusters[self.arm_mask], config.folds, config.seed)  # enough users among the judge-label rows

    # The judge-label rows are copied on first use, and without the texts: the primary's refits
    # (placebo) read only the full study, and no estimator reads a text (the confounders carry what
    # the texts say). At 144k pairs (bench/estimate_scale.py) each copy of the in-arm rows' texts was
    # ~0.35 GB (Arrow strings are copied, not shared) and of their confounders 0.35 GB.
    @cached_property
    def data(self) -> StudyArrays:
        """The judge-label analysis rows (their frame without the text columns)."""
        frame = self.all.frame
        return replace(self.all, frame=frame.drop(columns=[c for c in TEXTS if c in frame.columns])).subset(self.arm_mask)

    @cached_property
    def features(self) -> Confounders:
        """The confounders of the judge-label rows."""
        return self.features_all.subset(self.arm_mask)

    @cached_property
    def choice(self) -> Choice:
        """The model class of each nuisance: `[causal] nuisance`, or chosen by out-of-fold loss (auto)."""
        if self._choice is not None:
            return self._choice
        kind = self.config.nuisance
        if kind != "auto":
            return Choice(Models.of(kind), {}, 0)
        self.say("choosing the nuisance models (out-of-fold loss, user folds)")
        t = np.nan_to_num(self.all.treatment).astype(int)
        return choose_models(self.features_all.for_sample(int(self.arm_mask.sum())), t, np.nan_to_num(self.all.outcome),
                             self.arm_mask, self.folds_all, self.all.clusters, self.config.seed)

    @property
    def models(self) -> Models:
        return self.choice.models

    @cached_property
    def nuisances_all(self) -> Nuisances:
        """Propensity and per-arm outcome models of the judge labels: fitted on the judge-label rows
        of the other folds, predicted for every row (the correction needs them everywhere)."""
        self.say("nuisance models (cross-fitted, grouped by user)")
        t = np.nan_to_num(self.all.treatment).astype(int)
        return crossfit(self.features_all.for_sample(int(self.arm_mask.sum())), t, np.nan_to_num(self.all.outcome),
                        self.arm_mask, self.folds_all, self.models, self.config.seed)

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
    def candidate_edges(self) -> tuple[list, float]:
        """The matching graph within each model, and the caliper it was cut at."""
        return _edges_by_model(self.data, self.features, logit(self.nuisances.propensity), self.config)

    @property
    def caliper(self) -> float:
        return self.candidate_edges[1]

    @cached_property
    def matchings(self) -> dict[str, Matching]:
        self.say("matching (greedy and optimal)")
        edges, caliper = self.candidate_edges
        return {name: match(edges, caliper, name) for name in ("greedy", "optimal")}

    @cached_property
    def gold_corrected(self) -> GoldFit:
        self.say("judge-error correction on the audit sample")
        a, c = self.all, self.config
        judged = ~(np.isnan(a.empathy) | np.isnan(a.outcome))
        summary = nuisance_summary(self.nuisances_all, self.features_all.modifier_matrix, c.propensity_clip)
        X = self.features_all.for_sample(len(a.outcome))
        corrected = corrected_effect(X, summary, judge_view(judged, a.treatment, a.empathy, a.outcome), a.audit,
                                     self.folds_all, self.models, c.propensity_clip, c.seed, clusters=a.clusters,
                                     own=own_view(a.panel))
        try:
            gold_only: GoldFit | str = self.gold_only
        except CausalError as exc:  # too few audited pairs for nuisances of their own: the correction alone
            gold_only = str(exc)
        return mixed_with_gold_only(corrected, gold_only, a.clusters)

    @cached_property
    def gold_only(self) -> GoldFit:
        self.say("doubly robust on the audited pairs alone")
        c = self.config
        X = self.features_all.for_sample(int(self.all.audit.in_arm.sum()))
        return gold_only_effect(X, self.all.audit, self.folds_all, self.models, c.propensity_clip, c.seed)

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

