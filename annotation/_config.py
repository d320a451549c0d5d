from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AnnotationConfig(BaseModel):
    """The `[annotation]` table of `study.toml`. The API key is never here: LABEL_STUDIO_API_KEY."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field("http://127.0.0.1:8080", description="the study's main Label Studio server (review projects); "
                                                            "LABEL_STUDIO_URL overrides it")
    audit: Literal["uniform", "active"] = Field("uniform", description=(
        "how the blind audit is drawn: `uniform` (audit_rate for every pair) or `active` (in batches, a pair's "
        "probability growing with the judges' expected error on it, scaled to audit_labels; see docs/methods)"))
    audit_rate: float = Field(0.25, gt=0, le=1, description="uniform audit: P(a sampled pair enters the blind audit "
                                                             "sample) = gold_prob")
    audit_labels: int | None = Field(None, ge=1, description=(
        "active audit: the pairs to draw in all; each `annotate push` whose batches planned fewer draws a "
        "batch for the rest"))
    min_audit_prob: float | None = Field(None, gt=0, le=1, description=(
        "active audit: every pair's least probability per batch, so every pair can be drawn; default half the "
        "batch's uniform rate (planned labels ÷ pairs not yet drawn): within a batch, no pair weighs more than "
        "twice what a uniform batch of that size gives it where the need model is wrong (a small batch that tops "
        "up pairs added to the sample gives them its own, small rate)"))
    audit_seed: int = Field(0, description="seed of the audit draw")
    calibration_pairs: int = Field(0, ge=0, description="extra blind pairs outside the audit (never gold)")
    overlap: int = Field(2, ge=1, description="annotators per pair (human–human agreement needs ≥ 2)")
    overlap_share: int = Field(100, ge=0, le=100, description="percent of the pairs that get `overlap` annotators")
    allow_foreign_accounts: bool = Field(False, description="use labels from an annotator's server that also holds "
                                                            "someone else's account (who can open them); off: pull, "
                                                            "agree and export refuse them")

    @model_validator(mode="after")
    def _active_needs_a_budget(self) -> "AnnotationConfig":
        if self.audit == "active" and self.audit_labels is None:
            raise ValueError("audit = \"active\" needs audit_labels = N (the pairs to draw into the audit in all)")
        return self
