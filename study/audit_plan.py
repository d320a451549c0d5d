"""The size of the blind audit: what the drawn audit buys the corrected estimate (`audit_reach`, said and
checked by `empathy annotate push`), and `empathy annotate plan DIR --ci-width W`: how many more audited
pairs bring the judge-error-corrected interval to width W, from the variance measured by the last
`empathy estimate`, and what they would take at the annotation rate seen so far."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from empathy_study import annotation, causal, judge
from empathy_study.study import labels as labels_of
from empathy_study.study.judging import load_sample, read_judgments
from empathy_study.study.workspace import StudyConfig, StudyError, Workspace

ARMS = ("treated", "control")
SURE = 0.95  # a suggested audit_rate reaches min_arm in each arm with this probability (over the Poisson draw)


@dataclass
class AuditReach:
    """What the blind audit `[annotation] audit_rate` drew buys the estimate's corrected row, which needs
    `[causal] min_arm` audited pairs in each arm. The arms are the judges' (the gold arms are the
    annotators', known only once labelled): the best guess before any label exists."""

    sampled: int
    drawn: int
    rate: float
    min_arm: int
    rule: str  # the study's treatment rule, in words
    arms: dict[str, int] | None = None  # drawn pairs per arm by the judges' current empathy (None: no scores)
    in_sample: dict[str, int] | None = None  # sampled pairs per arm by the same scores
    scores_from: str | None = None  # where those scores came from
    rate_needed: float | None = None  # an audit_rate that reaches min_arm in each arm with probability SURE

    @property
    def short(self) -> bool:
        """The drawn audit cannot reach min_arm in some arm (without scores: it holds fewer than two arms' worth)."""
        if self.arms is None:
            return self.drawn < 2 * self.min_arm
        return min(self.arms.values()) < self.min_arm

    def describe(self) -> str:
        drew = f"the blind audit drew {self.drawn:,} of the {self.sampled:,} sampled pairs (audit_rate {self.rate:g})"
        if self.arms is None:
            return (f"{drew}; no judge scores yet, so their arms are unknown: the corrected estimate needs "
                    f"{self.min_arm} audited pairs in each arm ([causal] min_arm), at least {2 * self.min_arm} in all")
        arms = " and ".join(f"{self.arms[a]:,} {a}" for a in ARMS)
        return (f"{drew}: {arms} by the judges' current empathy ({self.scores_from}; {self.rule}) — the gold pairs "
                f"to expect per arm if the annotators' arms follow the judges'; the corrected estimate needs "
                f"{self.min_arm} in each arm ([causal] min_arm)")

    def remedy(self, study_dir: str) -> str:
        """What would reach min_arm: a higher audit_rate, or (when none does) a larger sample."""
        more = f"sample more pairs (`empathy corpus sample {study_dir} --n N`) and judge them"
        if self.rate_needed is not None and self.rate_needed <= self.rate:
            return (f"this draw fell short by chance (audit_rate {self.rate:g} reaches {self.min_arm} in each arm "
                    f"with {SURE:.0%} probability): raise audit_rate a little — every pair drawn so far stays drawn — "
                    f"or {more}")
        if self.rate_needed is not None:
            return (f"set audit_rate = {self.rate_needed:g} in [annotation] of {study_dir}/study.toml (it reaches "
                    f"{self.min_arm} in each arm with {SURE:.0%} probability), or {more}")
        if self.in_sample is not None:
            rarest = min(ARMS, key=lambda a: self.in_sample[a])
            return (f"no audit_rate reaches it: the sample holds only {self.in_sample[rarest]:,} {rarest} pairs by the "
                    f"judges' scores; {more}")
        return f"no audit_rate reaches it in a sample of {self.sampled:,} pairs; {more}"


def _rate_reaching(sizes: list[int], need: int) -> float | None:
    """The smallest audit_rate on a 0.01 grid whose Poisson draw holds ≥ `need` pairs of each group of
    `sizes` with probability SURE (None: not even every pair) — chosen from the design, not the draw."""
    from scipy import stats  # here, not at import: every `empathy` command imports the stage functions

    for rate in np.round(np.arange(0.01, 1.001, 0.01), 2):
        if all(stats.binom.sf(need - 1, n, rate) >= SURE for n in sizes):
            return float(rate)
    return None


def panel_empathy(study: Workspace, config: StudyConfig) -> tuple[pd.Series, str] | None:
    """pair_id → the empathy the estimate would see: scored_pairs.parquet's once exported (a lock applied),
    else the current panel's mean from the judgment log; None before any judge has scored."""
    if study.scored_pairs.exists():
        table = pd.read_parquet(study.scored_pairs, columns=["pair_id", "empathy"])
        if table["empathy"].notna().any():
            return table.set_index("pair_id")["empathy"], study.scored_pairs.name
    if not study.judgments.exists():
        return None
    scores = judge.judge_scores(read_judgments(study), config.judges, config.judged_versions())
    panel = judge.panel_scores(scores, [j.name for j in config.judges], ["empathy"])
    if panel.empty or panel["empathy"].notna().sum() == 0:
        return None
    return panel.set_index("pair_id")["empathy"], f"the panel's mean in {study.judgments.name}"


def audit_reach(study: Workspace, config: StudyConfig | None = None) -> AuditReach:
    config = config or study.config()
    sample = load_sample(study)
    a, c = config.annotation, config.causal
    drawn = annotation.audit_draw(sample["pair_id"], a.audit_rate, a.audit_seed)
    rule = causal.TreatmentRule(c.treat_high, c.treat_low)
    reach = AuditReach(len(sample), int(drawn.sum()), a.audit_rate, c.min_arm, rule.describe())
    found = panel_empathy(study, config)
    if found is None:
        reach.rate_needed = _rate_reaching([len(sample)], 2 * c.min_arm)
        return reach
    scores, reach.scores_from = found
    arm = rule.assign(sample["pair_id"].map(scores))
    reach.arms = {"treated": int(((arm == 1) & drawn).sum()), "control": int(((arm == 0) & drawn).sum())}
    reach.in_sample = {"treated": int((arm == 1).sum()), "control": int((arm == 0).sum())}
    reach.rate_needed = _rate_reaching([reach.in_sample[x] for x in ARMS], c.min_arm)
    return reach


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
