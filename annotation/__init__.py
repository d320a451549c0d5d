"""Annotation stage: human ground truth in Label Studio, and agreement between humans, judges and the panel."""

from .agreement import VALUE_DOMAIN, AgreementError, agreement, alpha, pair_agreement, verdict

__all__ = ["AgreementError", "VALUE_DOMAIN", "agreement", "alpha", "pair_agreement", "verdict"]
