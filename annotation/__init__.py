"""Annotation stage: human ground truth in Label Studio, and agreement between humans, judges and the panel."""

from . import calibration
from ._audit import (
    DESIGNS,
    active_labels_for,
    audit_draw,
    audit_features,
    audit_variance,
    budget_probabilities,
    error_need,
    ever_drawn,
)
from ._config import AnnotationConfig
from ._tasks import (
    BLIND_TASK_KEYS,
    LABEL_COLUMNS,
    MODES,
    assign_annotators,
    gold_scores,
    label_config,
    pseudonym,
    task_payload,
)
from .agreement import BIAS_MEANS, VALUE_DOMAIN, AgreementError, agreement, alpha, pair_agreement, verdict
from .labelstudio import AnnotationError, LabelStudioProjects, ProjectRef, PushResult, connect, review_predictions

__all__ = [
    "AgreementError", "AnnotationConfig", "AnnotationError", "BIAS_MEANS", "BLIND_TASK_KEYS", "DESIGNS",
    "LABEL_COLUMNS", "LabelStudioProjects", "MODES", "ProjectRef", "PushResult", "VALUE_DOMAIN", "agreement", "alpha",
    "active_labels_for", "assign_annotators", "audit_draw", "audit_features", "audit_variance", "budget_probabilities",
    "calibration", "connect",
    "error_need", "ever_drawn", "gold_scores", "label_config", "pair_agreement", "pseudonym", "review_predictions",
    "task_payload", "verdict",
]
