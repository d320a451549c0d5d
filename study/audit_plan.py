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
from empathy_study.study.audit_design import AUDIT_NEED, AuditDesign, batch_need, current_design, judge_features
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
    design: str = "uniform"  # active: `rate` is the mean probability of ever being drawn

    @property
    def short(self) -> bool:
        """The drawn audit cannot reach min_arm in some arm (without scores: it holds fewer than two arms' worth)."""
        if self.arms is None:
            return self.drawn < 2 * self.min_arm
        return min(self.arms.values()) < self.min_arm

    def describe(self) -> str:
        how = f"audit_rate {self.rate:g}" if self.design == "uniform" else \
            f"active design, mean probability {self.rate:.3g}"
        drew = f"the blind audit drew {self.drawn:,} of the {self.sampled:,} sampled pairs ({how})"
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
        if self.design == "active":
            labels = f"about {int(np.ceil(self.rate_needed * self.sampled)):,}" if self.rate_needed else "more"
            return (f"raise [annotation] audit_labels in {study_dir}/study.toml ({labels} pairs drawn in all reach "
                    f"{self.min_arm} in each arm with {SURE:.0%} probability under a uniform draw; the next push draws "
                    f"a batch for the rest), or {more}")
        if self.rate_needed is not None and self.rate_needed <= self.rate:
            return (f"this draw fell short by chance (audit_rate {self.rate:g} reaches {self.min_arm} in each arm "
                    f"with {SURE:.0%} probability): raise audit_rate a little — every pair drawn so far stays drawn — "
                    f"or {more}")
        if self.rate_needed is not None:
            return (f"set audit_rate = {self.rate_needed:g} in [annotation] of {study_dir}/study.toml (it reaches "
                    f"{self.min_arm} in each arm with {SURE:.0%} probability), or {more}")
        if self.in_sample is not None:
            rarest = min(ARMS, key=lambda a: self.in_sample[a])
            return (f"the sample holds only {self.in_sample[rarest]:,} {rarest} pairs by the judges' scores, so no "
                    f"audit_rate can; {more}")
        return f"no audit_rate can in a sample of {self.sampled:,} pairs; {more}"


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


def audit_reach(study: Workspace, config: StudyConfig | None = None, design: AuditDesign | None = None) -> AuditReach:
    """What the audit drew (`design`: as drawn so far, or with the batches a push is about to draw) buys."""
    config = config or study.config()
    sample = load_sample(study)
    c = config.causal
    design = design or current_design(study, config.annotation, sample["pair_id"])
    drawn = sample["pair_id"].map(design.drawn).fillna(False).to_numpy(dtype=bool)
    rate = design.rate if design.design == "uniform" else float(design.probability.fillna(0.0).mean())
    rule = causal.TreatmentRule(c.treat_high, c.treat_low)
    reach = AuditReach(len(sample), int(drawn.sum()), rate, c.min_arm, rule.describe(), design=design.design)
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


Z = 1.959963984540054  # 95 % intervals
ASSUMED_SD = 1.5  # outcome SD on the 1-7 scale, assumed where no human label says: a Likert rating's common spread
ASSUMED_SD_RANGE = (1.0, 3.0)  # 3: the most a 1-7 scale allows (half the pairs at 1, half at 7)
MIN_LABELLED = 5  # labelled audit pairs before their spread or their arms stand for the study's


def audited_needed(sd: float, width: float, shares: tuple[float, float], min_arm: int, z: float = Z) -> float:
    """Audited pairs for a 95 % interval of `width` on the difference in mean outcome between the arms, at
    outcome SD `sd`, when a share `shares[0]` of audited pairs is treated and `shares[1]` control:
    width = 2·z·sd·√(1/n_treated + 1/n_control), and at least `min_arm` in the rarer arm. inf when an arm
    is empty. Pure."""
    if min(shares) <= 0:
        return float("inf")
    n = (2 * z * sd / width) ** 2 * (1 / shares[0] + 1 / shares[1])
    return max(n, min_arm / min(shares))


def per_arm_needed(sd: float, width: float, min_arm: int, z: float = Z) -> float:
    """Audited pairs in each of two equal arms for that width (the design alone: no arm shares known)."""
    return max(2 * (2 * z * sd / width) ** 2, min_arm)


def sd_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(SD, low, high): the sample SD and its χ² interval (normal outcomes) on n − 1 degrees of freedom."""
    from scipy import stats

    n = len(values)
    sd = float(np.std(values, ddof=1))
    tail = (1 - level) / 2
    return (sd, sd * np.sqrt((n - 1) / stats.chi2.ppf(1 - tail, n - 1)),
            sd * np.sqrt((n - 1) / stats.chi2.ppf(tail, n - 1)))


def share_interval(k: int, n: int) -> tuple[float, float]:
    """Wilson 95 % interval of a share k of n."""
    from scipy import stats

    ci = stats.binomtest(k, n).proportion_ci(method="wilson")
    return float(ci.low), float(ci.high)


@dataclass
class DesignPlan:
    """A plan before any corrected estimate exists: the audited pairs a gold-only difference in means needs
    for the target width, from the outcome SD and the arm shares that exist (else assumed), with the
    range those leave open. The corrected estimate also uses the judges and is usually narrower."""

    target_width: float
    min_arm: int
    pairs: int  # sampled pairs
    drawn: int  # audit pairs drawn at the current audit_rate
    rate: float
    sd: float
    sd_range: tuple[float, float]
    sd_from: str
    per_arm: int  # audited pairs per arm with equal arms
    per_arm_range: tuple[int, int]
    shares: tuple[float, float] | None = None  # treated, control shares of the audited pairs
    shares_range: tuple[tuple[float, float], tuple[float, float]] | None = None  # each share's interval
    shares_from: str | None = None
    needed: float | None = None  # audited pairs in all (inf: an arm is empty)
    needed_range: tuple[float, float] | None = None

    @property
    def reachable(self) -> bool:
        return self.needed is not None and self.needed <= self.pairs

    @property
    def rate_needed(self) -> float | None:
        return None if not self.reachable else min(1.0, float(np.ceil(self.needed / self.pairs * 100) / 100))


def _ceil(x: float) -> float:
    return float(np.ceil(x)) if np.isfinite(x) else x


def design_plan(study: Workspace, ci_width: float, config: StudyConfig | None = None) -> DesignPlan:
    """Plan from what exists: the outcome SD of the blind attachment labels (else assumed), the arm shares of
    the blind empathy labels (else of the judges' current empathy, else unknown: per arm)."""
    config = config or study.config()
    reach = audit_reach(study, config)
    rule = causal.TreatmentRule(config.causal.treat_high, config.causal.treat_low)
    gold = labels_of.under(labels_of.blind(labels_of.read_labels(study), load_sample(study)["pair_id"]),
                           config.prompt_versions())
    per_pair = gold.groupby(["construct", "pair_id"])["score"].mean()
    outcome = per_pair.get("attachment", pd.Series(dtype=float)).dropna().to_numpy(dtype=float)
    if len(outcome) >= MIN_LABELLED and np.std(outcome) > 0:
        sd, low, high = sd_interval(outcome)
        sd_from = f"from the attachment labels of {len(outcome)} audited pairs (χ² 95 % interval)"
    else:
        sd, (low, high) = ASSUMED_SD, ASSUMED_SD_RANGE
        sd_from = (f"assumed: {len(outcome)} audited pairs have attachment labels (a spread needs {MIN_LABELLED}); "
                   f"{ASSUMED_SD:g} is a common spread of a 1-7 rating, {ASSUMED_SD_RANGE[1]:g} the most the scale "
                   "allows")
    m = config.causal.min_arm
    plan = DesignPlan(ci_width, m, reach.sampled, reach.drawn, reach.rate, sd, (low, high), sd_from,
                      int(_ceil(per_arm_needed(sd, ci_width, m))),
                      (int(_ceil(per_arm_needed(low, ci_width, m))), int(_ceil(per_arm_needed(high, ci_width, m)))))
    empathy = per_pair.get("empathy", pd.Series(dtype=float)).dropna()
    if len(empathy) >= MIN_LABELLED:
        arm = rule.assign(empathy)
        counts = (int((arm == 1).sum()), int((arm == 0).sum()))
        plan.shares = (counts[0] / len(arm), counts[1] / len(arm))
        plan.shares_range = (share_interval(counts[0], len(arm)), share_interval(counts[1], len(arm)))
        plan.shares_from = f"the empathy labels of {len(arm)} audited pairs (Wilson 95 % intervals)"
    elif reach.in_sample is not None and reach.sampled:
        plan.shares = tuple(reach.in_sample[a] / reach.sampled for a in ARMS)
        plan.shares_from = (f"the judges' current empathy ({reach.scores_from}), taken as known: the annotators' "
                            "arms may differ")
    if plan.shares is not None:
        plan.needed = _ceil(audited_needed(sd, ci_width, plan.shares, m))
        best = tuple(r[1] for r in plan.shares_range) if plan.shares_range else plan.shares
        worst = tuple(r[0] for r in plan.shares_range) if plan.shares_range else plan.shares
        plan.needed_range = (_ceil(audited_needed(low, ci_width, best, m)),
                             _ceil(audited_needed(high, ci_width, worst, m)))
    return plan


@dataclass
class AuditPlanResult:
    plan: causal.AuditPlan | None  # from the last estimate's measured variance (None: no corrected estimate yet)
    estimate: float | None  # the corrected estimate the plan starts from
    labels_per_pair: float | None  # blind labels per audited pair so far (constructs × annotators)
    labels_per_day: float | None  # blind labels per day between the first and the last label
    days: float | None  # at that rate, for the labels the plan asks for
    cost_usd: float | None
    stale: bool  # scored_pairs.parquet changed after the estimate was made
    more_range: tuple[float, float] | None = None  # `plan.more` at the ends of the audit variance's interval
    design: DesignPlan | None = None  # the plan from the design, where no corrected estimate exists
    why_design: str | None = None  # why there is no corrected estimate to plan from
    uniform_factor: float | None = None  # an unequal-probability audit: uniform labels one of its labels is worth
    active_more: float | None = None  # a uniform audit: the active batch's pairs forecast to buy what `plan.more` buys
    active_how: str | None = None  # how that forecast was made, or why there is none


def _more_range(gold_plan: dict, ci_width: float) -> tuple[float, float] | None:
    """The plan's `more` at the ends of a χ² 95 % interval of the audit part of the variance (on audited − 1
    degrees of freedom; the rest, measured on every pair, taken as known). inf: out of reach at that end."""
    from scipy import stats

    df = gold_plan["audited"] - 1
    if df < 1:
        return None
    fixed = max(gold_plan["variance"] - gold_plan["audit_variance"], 0.0)
    ends = []
    for q in (0.975, 0.025):
        audit_variance = gold_plan["audit_variance"] * df / stats.chi2.ppf(q, df)
        plan = causal.plan_audit(variance=fixed + audit_variance, audit_variance=audit_variance,
                                 audited=gold_plan["audited"], pairs=gold_plan["pairs"], target_width=ci_width)
        ends.append(float(plan.more) if plan.reachable else float("inf"))
    return ends[0], ends[1]


def plan_audit(study: Workspace, ci_width: float, cost_per_label: float | None = None) -> AuditPlanResult:
    if ci_width <= 0:
        raise StudyError(f"--ci-width must be positive (got {ci_width:g})")
    if cost_per_label is not None and cost_per_label < 0:
        raise StudyError(f"--cost-per-label must not be negative (got {cost_per_label:g})")
    config = study.config()
    path = study.estimates / "estimates.json"
    payload = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    gold_block = payload.get("gold") or {}
    per_pair = per_day = days = cost = None
    # The audit's labels as gold counts them: blind, under the current rubric (labels under an older
    # text would count a relabelled pair twice).
    gold = labels_of.under(labels_of.blind(labels_of.read_labels(study)), config.prompt_versions())
    if len(gold):
        per_pair = len(gold) / gold["pair_id"].nunique()
        times = pd.to_datetime(gold["updated_at"], utc=True, errors="coerce").dropna()
        span = (times.max() - times.min()).total_seconds() / 86_400 if len(times) > 1 else 0.0
        per_day = len(times) / span if span > 0 else None
    if not gold_block.get("plan"):
        why = (gold_block.get("reason") or "the last estimate has no dr_gold_corrected row") if payload else \
            f"no {path.relative_to(study.root)} yet"
        return AuditPlanResult(None, None, per_pair, per_day, None, None, False,
                               design=design_plan(study, ci_width, config), why_design=why)
    plan = causal.plan_audit(target_width=ci_width, **gold_block["plan"])
    corrected = next(e for e in payload["estimates"]
                     if e["method"] == "dr_gold_corrected" and e["estimand"] == "ATE" and not e["weighted"])
    if plan.more and per_pair:
        labels_needed = plan.more * per_pair
        days = labels_needed / per_day if per_day else None
        cost = labels_needed * cost_per_label if cost_per_label is not None else None
    stale = study.scored_pairs.exists() and study.scored_pairs.stat().st_mtime > path.stat().st_mtime
    design = gold_block.get("design") or {}
    factor = (design["uniform_equivalent"] / design["labels_used"]
              if design.get("probabilities_vary") and design.get("uniform_equivalent") and design.get("labels_used")
              else None)
    active_more, active_how = (_active_forecast(study, config, plan.more)
                               if plan.more and not design.get("probabilities_vary") else (None, None))
    return AuditPlanResult(plan, corrected["estimate"], per_pair, per_day, days, cost, stale,
                           _more_range(gold_block["plan"], ci_width) if plan.more else None, uniform_factor=factor,
                           active_more=active_more, active_how=active_how)


def _active_forecast(study: Workspace, config: StudyConfig, uniform_more: int) -> tuple[float | None, str]:
    """(audited pairs an active batch needs for what `uniform_more` uniform ones buy, how it was forecast) —
    or (None, why not). The batch is the one `annotate push` would draw once [annotation] audit = "active"
    (`batch_need`: the labelled pairs' errors times the last estimate's weights); its audit variance is
    forecast from the labelled pairs' residuals in the correction (`annotation.active_labels_for`)."""
    need_file = study.estimates / AUDIT_NEED
    if not need_file.exists():
        return None, f"no estimates/{AUDIT_NEED} (made by a corrected estimate)"
    table = pd.read_parquet(need_file).set_index("pair_id")
    if "residual" not in table.columns:
        return None, f"estimates/{AUDIT_NEED} predates the residuals a forecast needs: run `empathy estimate` again"
    try:
        sample = load_sample(study)
    except StudyError as error:
        return None, str(error)
    ids = pd.Index(sample["pair_id"], name="pair_id")
    design = current_design(study, config.annotation, sample["pair_id"])
    features = judge_features(study, config, sample["pair_id"])
    if features[["empathy", "attachment"]].isna().all().all():
        return None, "no judge scores of the sampled pairs to set an active batch's need from"
    gold = labels_of.current_scores(study, config)
    current = design.probability.reindex(ids)
    need, how = batch_need(features, gold, 1 / current, table["weight"])
    residual = table["residual"].reindex(ids).to_numpy(dtype=float)
    drawn = design.drawn.reindex(ids).to_numpy(dtype=bool)
    labelled = int((drawn & np.isfinite(residual)).sum())
    active = annotation.active_labels_for(residual, current.to_numpy(dtype=float), drawn, need.to_numpy(dtype=float),
                                          uniform_more, config.annotation.min_audit_prob or None)
    if active is None:
        return None, "an active batch would not reach it before every undrawn pair is labelled"
    return active, (f"forecast from the {labelled:,} labelled pairs' residuals in the correction, for a batch whose "
                    f"need is {how}; a forecast, not a measurement")
