"""`empathy annotate plan DIR --ci-width W`: how many more audited pairs bring the judge-error-corrected
interval to width W, from the variance measured by the last `empathy estimate`, and what they would
take at the annotation rate seen so far."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from empathy_study import causal
from empathy_study.study import labels as labels_of
from empathy_study.study.workspace import StudyError, Workspace


@dataclass
class AuditPlanResult:
    plan: causal.AuditPlan
    estimate: float  # the corrected estimate the plan starts from
    labels_per_pair: float | None  # blind labels per audited pair so far (constructs × annotators)
    labels_per_day: float | None  # blind labels per day between the first and the last label
    days: float | None  # at that rate, for the labels the plan asks for
    cost_usd: float | None
    stale: bool  # scored_pairs.parquet changed after the estimate was made


def plan_audit(study: Workspace, ci_width: float, cost_per_label: float | None = None) -> AuditPlanResult:
    if ci_width <= 0:
        raise StudyError(f"--ci-width must be positive (got {ci_width:g})")
    if cost_per_label is not None and cost_per_label < 0:
        raise StudyError(f"--cost-per-label must not be negative (got {cost_per_label:g})")
    path = study.require(study.estimates / "estimates.json", f"empathy estimate {study.root}")
    payload = json.loads(path.read_text(encoding="utf-8"))
    gold = payload.get("gold") or {}
    if not gold.get("plan"):
        reason = gold.get("reason") or "the last estimate has no dr_gold_corrected row"
        raise StudyError(f"no corrected estimate to plan from: {reason}")
    plan = causal.plan_audit(target_width=ci_width, **gold["plan"])
    corrected = next(e for e in payload["estimates"]
                     if e["method"] == "dr_gold_corrected" and e["estimand"] == "ATE" and not e["weighted"])
    per_pair = per_day = days = cost = None
    # The audit's labels as gold counts them: blind, under the current rubric (labels under an older
    # text would count a relabelled pair twice).
    gold = labels_of.under(labels_of.blind(labels_of.read_labels(study)), study.config().prompt_versions())
    if len(gold):
        per_pair = len(gold) / gold["pair_id"].nunique()
        times = pd.to_datetime(gold["updated_at"], utc=True, errors="coerce").dropna()
        span = (times.max() - times.min()).total_seconds() / 86_400 if len(times) > 1 else 0.0
        per_day = len(times) / span if span > 0 else None
    if plan.more and per_pair:
        labels_needed = plan.more * per_pair
        days = labels_needed / per_day if per_day else None
        cost = labels_needed * cost_per_label if cost_per_label is not None else None
    stale = study.scored_pairs.exists() and study.scored_pairs.stat().st_mtime > path.stat().st_mtime
    return AuditPlanResult(plan, corrected["estimate"], per_pair, per_day, days, cost, stale)
