"""Annotation stage: human ground truth in Label Studio, and agreement between humans, judges and the panel."""

from ._config import AnnotationConfig
from ._tasks import (
    BLIND_TASK_KEYS,
    LABEL_COLUMNS,
    MODES,
    audit_draw,
    gold_scores,
    label_config,
    task_payload,
)
from .agreement import BIAS_MEANS, VALUE_DOMAIN, AgreementError, agreement, alpha, pair_agreement, verdict
from .labelstudio import AnnotationError, LabelStudioProjects, connect, project_status, review_predictions

__all__ = [
    "AgreementError", "AnnotationConfig", "BIAS_MEANS", "AnnotationError", "BLIND_TASK_KEYS", "LABEL_COLUMNS",
    "LabelStudioProjects", "MODES", "VALUE_DOMAIN", "agreement", "alpha", "audit_draw", "connect", "gold_scores",
    "label_config", "pair_agreement", "project_status", "review_predictions", "task_payload", "verdict",
]
