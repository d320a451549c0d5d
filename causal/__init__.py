"""Causal stage: scored pairs → matching and doubly robust estimates with intervals, balance, heterogeneity,
and the judge-error correction from the blind audit sample."""

from . import _learners  # noqa: F401  (registers x_learner and causal_forest_dml)
from ._data import Audit, TreatmentRule, prepare
from ._embeddings import Embedder, EmbeddingCache, default_cache_dir
from ._errors import CausalError
from ._estimate import DEFAULT_ESTIMATORS, ESTIMATORS, PRIMARY, CausalConfig, Fit, estimate_effects, estimator
from ._gold import AuditPlan, corrected_mean, corrected_regression, plan_audit, pseudo_outcome
from ._report import render_report
from ._results import EffectRow, EstimateResult
from ._selection import CONDITIONAL_ON_REPLY, LeeBounds, lee_bounds, selection_analysis
from ._semisynthetic import (
    JudgeNoise,
    PlantedEffect,
    judge_labels,
    personal_score,
    semisynthetic_study,
    simulate,
    target_pairs,
    true_effects,
)

__all__ = [
    "CONDITIONAL_ON_REPLY", "LeeBounds", "lee_bounds", "selection_analysis",
    "DEFAULT_ESTIMATORS", "ESTIMATORS", "PRIMARY", "Audit", "AuditPlan", "CausalConfig", "CausalError", "EffectRow",
    "Embedder", "EmbeddingCache", "EstimateResult", "Fit", "JudgeNoise", "PlantedEffect", "TreatmentRule",
    "corrected_mean", "corrected_regression", "default_cache_dir", "estimate_effects", "estimator", "judge_labels",
    "personal_score", "plan_audit", "prepare", "pseudo_outcome", "render_report", "semisynthetic_study", "simulate",
    "target_pairs", "true_effects",
]
