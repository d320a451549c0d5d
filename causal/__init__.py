"""Causal stage: scored pairs → matching and doubly robust estimates with intervals, balance, heterogeneity."""

from ._data import TreatmentRule, prepare
from ._embeddings import Embedder, EmbeddingCache, default_cache_dir
from ._errors import CausalError
from ._estimate import CausalConfig, EffectRow, EstimateResult, estimate_effects
from ._report import render_report
from ._semisynthetic import PlantedEffect, personal_score, semisynthetic_study, simulate, target_pairs, true_effects

__all__ = [
    "CausalConfig", "CausalError", "EffectRow", "Embedder", "EmbeddingCache", "EstimateResult",
    "PlantedEffect", "TreatmentRule", "default_cache_dir", "estimate_effects", "personal_score", "prepare", "render_report",
    "semisynthetic_study", "simulate", "target_pairs", "true_effects",
]
