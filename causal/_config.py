"""The `[causal]` table of study.toml, on its own: reading a study's configuration (every `empathy`
command does) must not load the estimation stack. Estimator and refuter names are checked against
the names `_registry` declares as data, so no estimator module loads here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ._registry import check_names

DEFAULT_REFUTERS = ["placebo"]  # one refit; the others are opt-in (causal/_refute.py)
DEFAULT_ESTIMATORS = ["naive", "dr", "dr_gold_only", "dr_gold_corrected", "matching"]
PRIMARY = "dr_gold_corrected"  # pre-specified: the judge-error-corrected DR ATE (dr where no audit labels exist)


class CausalConfig(BaseModel):
    """The `[causal]` table of `study.toml` (also the options of `empathy estimate`)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silently unused default

    treat_high: float = Field(5, description="treated if empathy ≥ this")
    treat_low: float = Field(3, description="control if empathy ≤ this; anything between is excluded")
    embedding: Literal["minilm", "minilm-torch", "fast"] = Field(
        "minilm", description="prompt embedding: all-MiniLM-L6-v2 as its int8 ONNX export (the default, ~10x the fp32 "
                              "model on a CPU; on a GPU the fp32 model), minilm-torch: the fp32 PyTorch model (the "
                              "reference), or fast: a static model distilled from it (corpus scale, less faithful)"
    )
    embedding_dims: int = Field(128, ge=1, le=384, description="principal components kept of the prompt embedding")
    prev_embedding_dims: int = Field(16, ge=0, le=384, description="principal components kept of the previous turn's")
    distance: Literal["cosine", "propensity", "combined"] = Field(
        "cosine", description="matching distance: prompt cosine, logit propensity, or cosine within a propensity caliper"
    )
    caliper: float = Field(0.5, gt=0, description="largest cosine distance between matched prompts")
    propensity_caliper: float = Field(0.2, gt=0, description="in SDs of the logit propensity (propensity/combined)")
    neighbours: int = Field(30, ge=1, description="candidate controls per treated unit (sparse kNN graph)")
    nuisance: Literal["auto", "linear", "poly", "spline", "kernel", "boosting"] = Field(
        "linear", description="propensity and outcome model class: linear; poly, spline or kernel (the linear terms plus "
                            "squares and products, B-splines, or RBF random features of the leading prompt "
                            "components); boosting; or auto, which chooses per nuisance among linear, poly, spline "
                            "and kernel under the user folds (outcomes by out-of-fold error, the propensity by the "
                            "imbalance it leaves) and records the choice")
    folds: int = Field(5, ge=2, description="cross-fitting folds (grouped by user)")
    propensity_clip: float = Field(0.01, gt=0, lt=0.5, description="propensities are clipped to [clip, 1 − clip]")
    trim: float = Field(0.1, ge=0, lt=0.5, description="ATE_trimmed keeps units with propensity in [trim, 1 − trim]")
    bootstrap: int = Field(1000, ge=50, description="user-bootstrap draws of the Lee bounds (selection on replying)")
    min_arm: int = Field(20, ge=1, description="an arm (or audited arm) smaller than this is reported as a warning")
    estimators: list[str] = Field(default_factory=lambda: list(DEFAULT_ESTIMATORS),
                                  description="registered estimators to run, in order; also registered: tmle, "
                                              "x_learner (200 bootstrap refits), and with empathy as a continuous "
                                              "dose (effect per point) linear_dml and causal_forest_dml")
    heterogeneity: bool = Field(True, description="fit the CATE forest, calibration test and subgroup tables")
    refuters: list[str] = Field(default_factory=lambda: list(DEFAULT_REFUTERS),
                                description="refuters of the primary and the dr ATE to run (each refits): placebo "
                                            "(a software check), leave_one_model_out; negative_control_outcome runs "
                                            "by itself where the pairs carry prompt_attachment")
    sensitivity: bool = Field(True, description="E-values, Rosenbaum Γ bounds of matching, omitted-variable bounds of the "
                                                  "primary and dr")
    seed: int = Field(0, description="seed of every random step")
    backend: Literal["local", "ray"] = Field(
        "local", description="where cross-fitting folds and forests run: local worker processes (`workers`), or Ray "
                             "tasks (pip install 'empathy-study[ray]'); the estimates are the same numbers")
    workers: int = Field(0, ge=0, description="local worker processes of backend 'local' (1: all in this process; 0: "
                                              "one per CPU core this process may use); the estimates are the same "
                                              "numbers")
    ray_address: str | None = Field(
        None, description="the Ray cluster for backend 'ray' (ray.init(address=…)); none: RAY_ADDRESS, else a Ray "
                          "started on this machine for the run")
    hte_max_pairs: int | None = Field(
        20_000, ge=100, description="the CATE forests are fitted on whole users drawn at random up to this many "
                                      "trimmed pairs (none: all); CATEs are predicted for every pair")

    @field_validator("estimators", "refuters")
    @classmethod
    def _declared(cls, names: list[str], info: ValidationInfo) -> list[str]:
        return check_names(names, "estimator" if info.field_name == "estimators" else "refuter")
