"""The blind audit as drawn: its design, its batches and each sampled pair's known probability.

`uniform` is one Poisson draw at `[annotation] audit_rate`. `active` is drawn in batches by
`empathy annotate push`: each push that finds fewer pairs drawn than `audit_labels` draws a batch for
the rest, every sampled pair's probability set from what predicts the judges' error on it
(`annotation.error_need`: their disagreement, their own uncertainty (score against logprob-expected
score) and closeness to a threshold, then a model of the errors
of the pairs labelled so far). Each batch's probabilities are written to `audit_batches.parquet`
before anyone labels its pairs, and a pair's `gold_prob` is its probability of ever being drawn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from empathy_study import annotation, judge
from empathy_study.study.judging import read_judgments
from empathy_study.study.workspace import StudyConfig, StudyError, Workspace

BATCH_COLUMNS = ("batch", "pair_id", "probability", "drawn")
AUDIT_NEED = "audit_need.parquet"  # in the estimates folder: pair_id, weight (what a label error costs the correction)


@dataclass
class AuditDesign:
    """The audit over a set of sampled pairs: `probability` (pair_id → P(ever drawn), the gold_prob; NaN
    for a pair no batch covered) and `drawn`; `batches` are the active design's batch records."""

    design: str
    seed: int
    probability: pd.Series
    drawn: pd.Series
    rate: float | None = None  # uniform
    batches: list[dict] = field(default_factory=list)

    @property
    def uncovered(self) -> pd.Index:
        """Sampled pairs no batch gave a probability (they joined the sample after the last batch)."""
        return self.probability.index[self.probability.isna()]

    def describe(self) -> str:
        if self.design == "uniform":
            return f"uniform at audit_rate {self.rate:g} (seed {self.seed})"
        return (f"active, {len(self.batches)} batch(es), {int(self.drawn.sum()):,} pairs drawn; P(ever drawn) "
                f"{_spread(self.probability.dropna())}")


def _spread(values: pd.Series) -> str:
    if values.empty:
        return "–"
    return f"{values.min():.3g} to {values.max():.3g} (median {values.median():.3g})"


def _recorded(study: Workspace) -> dict:
    state = study.annotation_state
    return json.loads(state.read_text()).get("audit", {}) if state.exists() else {}


def audit_batches_path(study: Workspace):
    return study.root / "audit_batches.parquet"


def read_batches(study: Workspace) -> pd.DataFrame:
    path = audit_batches_path(study)
    if not path.exists():
        return pd.DataFrame(columns=list(BATCH_COLUMNS))
    return pd.read_parquet(path)


def current_design(study: Workspace, config: annotation.AnnotationConfig, pair_ids: pd.Series,
                   pushing: bool = False) -> AuditDesign:
    """The design as drawn so far: the active batches if any were drawn, else the uniform draw at the
    rate and seed the last push recorded (else the configured ones, `config`). `pushing`: the uniform
    draw a push is about to make, at the configured rate and seed (raising the rate keeps every pair
    drawn before: the draw is monotone in it)."""
    recorded = _recorded(study)
    batches = read_batches(study)
    ids = pd.Index(pair_ids, name="pair_id")
    numbers = sorted(int(b) for b in batches["batch"].unique())
    records = [int(b["batch"]) for b in recorded.get("batches", [])] if recorded.get("design") == "active" else []
    if numbers != records:  # the probabilities and their records must be one design, or the weights are wrong
        raise StudyError(f"{audit_batches_path(study).name} holds audit batches {numbers or 'none'} but annotation.json "
                         f"records {records or 'none'}: the two were written apart (an interrupted push, an older "
                         "toolkit, a restored file); restore both from the same moment before pushing or exporting")
    if batches.duplicated(["batch", "pair_id"]).any():
        raise StudyError(f"{audit_batches_path(study).name} holds a pair twice in one batch: it was appended to twice")
    if batches.empty:
        rate = config.audit_rate if pushing else recorded.get("rate") or config.audit_rate
        seed = config.audit_seed if pushing else recorded.get("seed", config.audit_seed)
        drawn = annotation.audit_draw(pair_ids, rate, seed)
        return AuditDesign("uniform", seed, pd.Series(float(rate), index=ids), pd.Series(drawn, index=ids), rate=rate)
    wide = batches.pivot_table(index="pair_id", columns="batch", values="probability", aggfunc="first")
    covered = wide.reindex(ids)
    probability = pd.Series(annotation.ever_drawn(covered.fillna(0.0).to_numpy().T), index=ids)
    probability[covered.isna().all(axis=1).to_numpy()] = np.nan
    drawn = batches[batches["drawn"]].pair_id.unique()
    return AuditDesign("active", int(recorded.get("seed", config.audit_seed)), probability,
                       pd.Series(ids.isin(drawn), index=ids), batches=list(recorded.get("batches", [])))


def judge_features(study: Workspace, config: StudyConfig, pair_ids: pd.Series) -> pd.DataFrame:
    """`annotation.audit_features` from the current panel's scores (all NaN before any judgment)."""
    ids = pd.Index(pair_ids, name="pair_id")
    if not study.judgments.exists():
        return pd.DataFrame(np.nan, index=ids, columns=list(annotation.FEATURES))
    scores = judge.judge_scores(read_judgments(study), config.judges, config.judged_versions())
    wide = scores.pivot_table(index=["pair_id", "judge"], columns="construct", values="score").reset_index()
    expected = scores.pivot_table(index=["pair_id", "judge"], columns="construct", values="expected_score")
    for construct in ("empathy", "attachment"):
        if construct not in wide.columns:
            wide[construct] = np.nan
        if construct in expected.columns:  # the judges that recorded logprobs: their own uncertainty
            wide[f"{construct}_expected"] = expected[construct].reindex(
                pd.MultiIndex.from_frame(wide[["pair_id", "judge"]])).to_numpy()
    features = annotation.audit_features(wide, config.causal.treat_high, config.causal.treat_low)
    return features.reindex(ids)


@dataclass
class Batch:
    rows: pd.DataFrame  # BATCH_COLUMNS, one row per sampled pair
    record: dict


def batch_need(features: pd.DataFrame, gold: pd.DataFrame | None, label_weight: pd.Series | None,
               arm_weight: pd.Series | None) -> tuple[pd.Series, str]:
    """(pair_id → need, how it was set) of the next active batch over the pairs of `features`: the judges'
    expected error (`annotation.error_need`, from the squared errors of the labels in `gold`, weighted by
    `label_weight` = 1/π), times the inverse-propensity weight a label error carries into the correction
    (`arm_weight`, the last estimate's; a pair it did not cover takes its largest). Pure."""
    ids = features.index
    squared = None
    if gold is not None and len(gold):
        g = gold.set_index("pair_id").reindex(ids)
        squared = (g["empathy_gold"] - features["empathy"]) ** 2 + (g["attachment_gold"] - features["attachment"]) ** 2
    need, how = annotation.error_need(features, squared, label_weight)
    if arm_weight is not None:
        cost = arm_weight.reindex(ids)
        uncovered = int(cost.isna().sum())
        need = need * cost.fillna(float(cost.max()) if cost.notna().any() else 1.0)
        how += (", times the inverse-propensity weight a label error carries into the correction (the last "
                f"estimate's estimates/{AUDIT_NEED}" + (f"; {uncovered:,} pairs it did not cover take its largest)"
                                                        if uncovered else ")"))
    return need, how


def next_batch(design: AuditDesign, config: StudyConfig, features: pd.DataFrame,
               gold: pd.DataFrame | None, pushed_uniform: bool, arm_weight: pd.Series | None = None) -> list[Batch]:
    """The batches the next push draws for an active design (empty: the audit holds audit_labels pairs
    and covers every sampled pair). A uniform audit pushed before the design became active enters as
    batch 1, at its rate. `gold` (pair_id, empathy_gold, attachment_gold) are the labels so far: their
    squared errors against the panel's scores fit the need of the new batch; `arm_weight` (pair_id → the
    inverse-propensity weight the last estimate's correction gives a label error on the pair) multiplies
    it: the batch's variance is made of error × weight. A batch is drawn while the batches' planned labels fall short of
    audit_labels, for the rest. Pure."""
    a = config.annotation
    ids = design.probability.index
    batches = []
    if design.design == "uniform" and pushed_uniform:
        rows = pd.DataFrame({"batch": 1, "pair_id": ids, "probability": float(design.rate),
                             "drawn": design.drawn.to_numpy()})
        batches.append(Batch(rows, {"batch": 1, "design": "uniform", "rate": design.rate,
                                    "labels": float(design.rate * len(ids)),
                                    "need_from": "the uniform audit pushed before the design became active",
                                    "drawn": int(rows["drawn"].sum())}))
        drawn_now = design.drawn.to_numpy()
        weight = pd.Series(1 / design.rate, index=ids)
    elif design.design == "uniform":
        drawn_now, weight = np.zeros(len(ids), dtype=bool), None
    else:
        drawn_now = design.drawn.to_numpy()
        weight = 1 / design.probability
    # The budget counts the labels each batch planned (its expected new pairs), not the realised draws:
    # a batch that drew a few pairs fewer than planned by chance does not set off another push's batch.
    planned = sum(record["labels"] for record in design.batches + [b.record for b in batches])
    budget = a.audit_labels - planned
    uncovered = design.design == "active" and len(design.uncovered) > 0
    if budget < 1:
        if uncovered:
            raise StudyError(f"{len(design.uncovered):,} sampled pairs joined after the last audit batch and could "
                             f"never be drawn, and the batches already planned {planned:g} of audit_labels "
                             f"{a.audit_labels:,}: raise [annotation] audit_labels so the next push draws a batch over "
                             "every pair")
        return batches
    need, how = batch_need(features, gold, weight, arm_weight)
    floor = a.min_audit_prob or min(1.0, budget / max(int((~drawn_now).sum()), 1) / 2)
    try:
        probability = annotation.budget_probabilities(need.to_numpy(), budget, floor, counted=~drawn_now)
    except ValueError as error:
        raise StudyError(f"the next audit batch: {error}") from None
    number = len(design.batches) + len(batches) + 1
    drawn = annotation.audit_draw(pd.Series(ids), probability, a.audit_seed, batch=number)
    rows = pd.DataFrame({"batch": number, "pair_id": ids, "probability": probability, "drawn": drawn})
    batches.append(Batch(rows, {
        "batch": number, "design": "active", "drawn_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": budget, "floor": floor, "need_from": how, "pairs": len(ids),
        "drawn": int(drawn.sum()), "new": int((drawn & ~drawn_now).sum()),
        "probability": {"min": float(probability.min()), "median": float(np.median(probability)),
                        "max": float(probability.max())}}))
    return batches


def with_batches(design: AuditDesign, batches: list[Batch]) -> AuditDesign:
    """The design once `batches` are drawn (to check what they buy before anything is written). Pure."""
    if not batches:
        return design
    ids = design.probability.index
    active = design.design == "active"
    never = 1 - design.probability.fillna(0.0).to_numpy() if active else np.ones(len(ids))
    drawn = design.drawn.to_numpy() if active else np.zeros(len(ids), dtype=bool)
    for batch in batches:
        rows = batch.rows.set_index("pair_id").reindex(ids)
        never = never * (1 - rows["probability"].fillna(0.0).to_numpy())
        drawn = drawn | rows["drawn"].fillna(False).to_numpy(dtype=bool)
    return AuditDesign("active", design.seed, pd.Series(1 - never, index=ids), pd.Series(drawn, index=ids),
                       batches=design.batches + [b.record for b in batches])


def save_batches(study: Workspace, batches: list[Batch]) -> None:
    """Append the batches' per-pair probabilities (before anyone labels them)."""
    if not batches:
        return
    table = pd.concat([read_batches(study), *(b.rows for b in batches)], ignore_index=True)
    table = table.astype({"batch": "int64", "pair_id": "string", "probability": "float64", "drawn": "bool"})
    path = audit_batches_path(study)
    table.to_parquet(path.with_suffix(".tmp"), index=False)
    path.with_suffix(".tmp").replace(path)
