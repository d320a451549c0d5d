from pydantic import BaseModel, ConfigDict, Field


class AnnotationConfig(BaseModel):
    """The `[annotation]` table of `study.toml`. The API key is never here: LABEL_STUDIO_API_KEY."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field("http://127.0.0.1:8080", description="the study's main Label Studio server (review projects); "
                                                            "LABEL_STUDIO_URL overrides it")
    audit_rate: float = Field(0.25, gt=0, le=1, description="P(a sampled pair enters the blind audit sample) = gold_prob")
    audit_seed: int = Field(0, description="seed of the audit draw")
    calibration_pairs: int = Field(0, ge=0, description="extra blind pairs outside the audit (never gold)")
    overlap: int = Field(2, ge=1, description="annotators per pair (human–human agreement needs ≥ 2)")
    overlap_share: int = Field(100, ge=0, le=100, description="percent of the pairs that get `overlap` annotators")
    allow_foreign_accounts: bool = Field(False, description="use labels from an annotator's server that also holds "
                                                            "someone else's account (who can open them); off: pull, "
                                                            "agree and export refuse them")
