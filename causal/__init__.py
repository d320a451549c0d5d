"""Causal stage: scored pairs → matching and doubly robust estimates with intervals, balance, heterogeneity,
and the judge-error correction from the blind audit sample.

Names load on first use (PEP 562): every `empathy` command imports this package for its
configuration and errors, and only `estimate` needs econml, scikit-learn and scipy.stats.
"""

from importlib import import_module

from ._config import DEFAULT_ESTIMATORS, PRIMARY, CausalConfig
from ._errors import CausalError

_HOMES = {
    "_check": ["fit_world", "run_check"],
    "_data": ["Audit", "TreatmentRule", "prepare"],
    "_embeddings": ["Embedder", "EmbeddingCache", "default_cache_dir"],
    "_estimate": ["ESTIMATORS", "estimate_effects"],
    "_fit": ["Fit"],
    "_gold": ["AuditPlan", "corrected_mean", "corrected_regression", "plan_audit", "pseudo_outcome",
              "tuned_lambda"],
    "_report": ["render_report"],
    "_results": ["EffectRow", "EstimateResult"],
    "_selection": ["CONDITIONAL_ON_REPLY", "LeeBounds", "Terminal", "Terminal", "lee_bounds", "selection_analysis"],
    "_semisynthetic": ["JudgeNoise", "PANEL_JUDGES", "PlantedEffect", "judge_labels", "panel_labels", "personal_score",
                       "semisynthetic_study", "simulate", "target_pairs", "true_effects"],
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [  # the eager four, then every lazily loaded name of _HOMES
    "DEFAULT_ESTIMATORS", "PRIMARY", "CausalConfig", "CausalError",
    "fit_world", "run_check",
    "Audit", "TreatmentRule", "prepare", "Embedder", "EmbeddingCache", "default_cache_dir", "ESTIMATORS", "Fit",
    "estimate_effects", "AuditPlan", "corrected_mean", "corrected_regression", "plan_audit",
    "pseudo_outcome", "tuned_lambda", "render_report", "EffectRow", "EstimateResult", "CONDITIONAL_ON_REPLY", "LeeBounds", "Terminal",
    "lee_bounds", "selection_analysis", "JudgeNoise", "PANEL_JUDGES", "PlantedEffect", "judge_labels", "panel_labels",
    "personal_score", "semisynthetic_study", "simulate", "target_pairs", "true_effects",
]
assert set(__all__[4:]) == set(_HOME_OF)


def __getattr__(name: str):
    if name not in _HOME_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME_OF[name]}"), name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return __all__
