"""Stage functions for the judge panel: plan (dry run), run, export scores, report diagnostics."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from empathy_study import annotation, corpus, judge
from empathy_study.shared import CONSTRUCTS, write_json, write_parquet
from empathy_study.study.progress import Progress, Step, quiet
from empathy_study.study.provenance import git_state, versions
from empathy_study.study.workspace import StudyConfig, StudyError, Workspace


def load_sample(study: Workspace) -> pd.DataFrame:
    return corpus.read_table(study.require(study.sample, f"empathy corpus sample {study.root} --n N"))


def read_judgments(study: Workspace) -> pd.DataFrame:
    """The study's judgment log as a frame (`judge.JudgmentLog.frame`), its parsed copy kept in
    DIR/.cache/ so the next reader parses only what was appended."""
    return judge.JudgmentLog(study.judgments).frame(study.judgments_cache)


def load_terminal_sample(study: Workspace) -> pd.DataFrame | None:
    """The judged sample of terminal pairs (selection on replying), where one was drawn."""
    if not study.terminal_sample.exists():
        return None
    return corpus.read_table(study.terminal_sample, required=TERMINAL_COLUMNS)


TERMINAL_COLUMNS = tuple(c for c in corpus.TURN_PAIR_COLUMNS if c != "reply")


def _tasks(config: StudyConfig, sample: pd.DataFrame, pairs: Collection[str] | None,
           terminal: pd.DataFrame | None = None) -> list[judge.Task]:
    """The study's judge tasks: both constructs (and the checks opted in to, e.g. the prompt's
    attachment) on the sample, the response-swap check, and empathy on the terminal sample where one
    was drawn (there is no reply to rate for attachment).

    `pairs` narrows a run to some pairs (the calibration app re-judges the gold set) and then
    leaves the swap check and the terminal sample out.
    """
    if pairs is not None:
        chosen = sample[sample["pair_id"].isin(set(pairs))]
        return judge.main_tasks(chosen, config.rubrics())
    tasks = judge.main_tasks(sample, config.judged_rubrics()) + judge.swap_tasks(
        sample, config.judge.swap_check_pairs, rubrics_dir=config.rubrics_dir)
    if terminal is not None and len(terminal):
        tasks += judge.main_tasks(terminal, {"empathy": config.rubrics()["empathy"]})
    return tasks


def _panel(config: StudyConfig, judges: Collection[str] | None) -> list[judge.JudgeConfig]:
    if judges is None:
        return config.judges
    unknown = sorted(set(judges) - {j.name for j in config.judges})
    if unknown:
        raise judge.JudgeError(f"no judge named {unknown[0]!r} in the panel ({', '.join(j.name for j in config.judges)})")
    return [j for j in config.judges if j.name in set(judges)]


@dataclass
class JudgingPlan:
    plans: list[judge.JudgePlan]
    torn: int  # unreadable log lines (an earlier run killed mid-write); those calls are made again
    history: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # the log so far, for the estimates
    config: StudyConfig | None = field(default=None, repr=False)  # the configuration it was planned from

    @functools.cached_property
    def lines(self) -> list[judge.DryRunLine]:
        """Per judge: calls, cached, given up, tokens, cost and time estimates (counting tokens loads the
        local model's vocabulary: done only when asked for)."""
        return judge.dry_run(self.plans, self.history)

    @property
    def calls(self) -> int:
        return sum(len(p.items) for p in self.plans)

    @property
    def seconds(self) -> float | None:
        """Expected wall time of the run (None while some judge's latency is unknown)."""
        return judge.panel_seconds(self.lines)


def plan_judging(study: Workspace, *, pairs: Collection[str] | None = None, judges: Collection[str] | None = None,
                 config: StudyConfig | None = None, ledger: judge.BatchLedger | None = None) -> JudgingPlan:
    """What a run would call, per judge, and what it would cost — without calling anything. (A run
    passes the configuration and batch ledger it already has.)"""
    config = config or study.config()
    state = judge.JudgmentLog(study.judgments).read()
    panel = _panel(config, judges)
    for batched in (j for j in panel if j.batch):
        judge.batch_target(batched, need_key=False)  # what cannot be batched fails before anything is planned
    plans = judge.plan_panel(_tasks(config, load_sample(study), pairs, load_terminal_sample(study)), panel, state,
                             config.judge)
    judge.hold_in_flight(plans, (ledger or judge.BatchLedger(study.judgments)).in_flight())
    return JudgingPlan(plans, state.torn, judge.records_frame(state.records), config)


@dataclass
class JudgeRunResult:
    plan: JudgingPlan
    summary: judge.RunSummary | None  # None: nothing was left to do
    run_id: str | None
    log: Path
    warnings: list[dict] = field(default_factory=list)  # judges whose scores never vary or whose rationales are not sentences
    batches: judge.BatchReport = field(default_factory=judge.BatchReport)  # batch judges: submitted, pending, collected
    advice: str | None = None  # the panel cannot make a study (a smoke-test judge, flat scores): what to change

    @property
    def left(self) -> int:
        """Planned calls this run did not make (stopped, or capped by --max-cost): a later run makes them."""
        return self.plan.calls - (self.summary.called if self.summary else 0)


def run_spec(config: StudyConfig) -> dict:
    """What a run record says about the run: the toolkit, the libraries that shape answers, the panel."""
    return {
        "versions": versions(),
        "git": git_state(),
        "panel": [j.model_dump() for j in config.judges],  # api_key_env is a variable's name, never a key
        "settings": config.judge.model_dump(),
        "prompt_versions": config.judged_versions(),
    }


def refuse_simulated(study: Workspace, config: StudyConfig) -> None:
    """A simulated study's judges are draws from a planted truth, not models: nothing can call them (LiteLLM
    would fail on every item, and each failure would land in the simulated log)."""
    if study.simulation.exists():
        models = ", ".join(sorted({j.model for j in config.judges}))
        raise StudyError(f"{study.root} is a SIMULATED study (simulated.json): its judges ({models}) were simulated "
                         "from a planted truth and no model answers to them, so nothing can be judged here; run "
                         "judges on a study of your own (e.g. the demo's study, `empathy demo`)")


def run_judges(study: Workspace, *, max_cost: float | None = None, pairs: Collection[str] | None = None,
               judges: Collection[str] | None = None, progress: Progress = quiet,
               stop: Callable[[], bool] | None = None) -> JudgeRunResult:
    """Judge what is not judged yet; every call is appended to the log as it returns.

    Re-running costs nothing for what is done; `stop` (asked before each call) cancels cleanly.
    Batch judges (`batch = true`): outstanding batches are polled first and finished ones collected
    into the log; then their pending items are submitted as new batches, and the run returns
    without waiting for them. The configuration, the log and the batch ledger are each read once.
    """
    config = study.config()
    refuse_simulated(study, config)
    log = judge.JudgmentLog(study.judgments)
    ledger = judge.BatchLedger(study.judgments)

    def tick(name: str, done: int, total: int) -> None:
        progress(Step(name, done, total))

    batches = judge.poll_batches(ledger, log, tick)
    plan = plan_judging(study, pairs=pairs, judges=judges, config=config, ledger=ledger)
    if plan.calls == 0:
        return JudgeRunResult(plan, None, None, study.judgments, batches=batches)
    run_id = log.start_run({**run_spec(config), "max_cost": max_cost, "calls_planned": plan.calls})
    batch_work, live_cap, batches.held_by_budget = judge.split_budget(plan.plans, max_cost)
    if batch_work:
        judge.submit_batches(ledger, batch_work, run_id, batches, tick)
    live = [p for p in plan.plans if not p.judge.batch]
    if not any(p.items for p in live):
        return JudgeRunResult(plan, None, run_id, study.judgments, batches=batches)
    live_calls = sum(len(p.items) for p in live)
    made: list[judge.JudgmentRecord] = []  # what this run appends to the log
    failed, cost = 0, 0.0

    def on_record(record: judge.JudgmentRecord) -> None:
        nonlocal failed, cost
        made.append(record)
        failed += record.score is None
        cost += record.cost_usd or 0.0
        progress(Step("judging", len(made), live_calls, {"failed": failed, "cost_usd": cost}))

    progress(Step("starting the judges", 0, None))
    with judge.open_endpoints([p.judge for p in live]) as endpoints:
        progress(Step("judging", 0, live_calls, {"failed": 0, "cost_usd": 0.0}))
        summary = asyncio.run(judge.run_panel(live, endpoints, log, config.judge, live_cap, on_record,
                                              run_id=run_id, stop=stop))
    # The log as it is now: what the plan read, and what this run appended.
    after = pd.concat([plan.history, judge.records_frame(made)], ignore_index=True) if made else plan.history
    current = judge.current_judgments(after, [p.judge for p in live], config.judged_versions())
    warnings = judge.judge_warnings(current)
    return JudgeRunResult(plan, summary, run_id, study.judgments, warnings, batches,
                          judge.study_judge_note(config.judges, warnings, str(study.root)))


@dataclass
class ScoresResult:
    scores: pd.DataFrame  # pair × construct × judge
    path: Path
    scored: dict[str, dict[str, int]] = field(default_factory=dict)  # construct → judge → pairs scored


def export_scores(study: Workspace) -> ScoresResult:
    """scores.parquet: the current panel's judgments, per pair × construct × judge."""
    config = study.config()
    study.require(study.judgments, f"empathy judge run {study.root}")
    scores = judge.judge_scores(read_judgments(study), config.judges, config.judged_versions())
    write_parquet(study.scores, scores)
    return ScoresResult(scores, study.scores, scored_counts(scores))


def scored_counts(scores: pd.DataFrame) -> dict[str, dict[str, int]]:
    """construct → judge → pairs with a score: which judges' scores are actually in a table."""
    scored = scores.dropna(subset=["score"])
    constructs = [*CONSTRUCTS, *(c for c in judge.CONTROLS if c in set(scored["construct"]))]
    return {c: {str(j): int(n) for j, n in scored[scored["construct"] == c].groupby("judge").size().items()}
            for c in constructs}


def report_judges(study: Workspace, boot: int = 200, seed: int = 0) -> dict:
    """judge_report.json: failures, distributions, length bias, response leakage, usage — and the
    judge–judge and test–retest agreement, computed with annotation's one agreement implementation."""
    config = study.config()
    study.require(study.judgments, f"empathy judge run {study.root}")
    frame = read_judgments(study)
    shown, swapped = judge.swap_check_rubrics(config.rubrics_dir)
    versions_now = config.prompt_versions()
    report = judge.judge_report(frame, load_sample(study), config.judges, versions_now,
                                (shown.version, swapped.version))
    if "note" not in report:
        current = judge.current_judgments(frame, config.judges, versions_now)
        report["judge_judge"] = {}
        for construct in sorted(current["construct"].unique()):
            matrix = judge.judge_matrix(current, construct)
            try:
                report["judge_judge"][construct] = annotation.agreement(matrix, humans=[], judges=list(matrix.columns),
                                                                        panel=None, boot=boot, seed=seed)
            except annotation.AgreementError as exc:
                report["judge_judge"][construct] = {"note": str(exc)}
        report["test_retest"] = []
        for (name, construct), wide in judge.retest_matrices(current).items():
            try:
                figures = annotation.pair_agreement(wide["sample 0"], wide["sample 1"], boot=boot, seed=seed)
                report["test_retest"].append({"judge": name, "construct": construct, **figures})
            except annotation.AgreementError as exc:
                report["test_retest"].append({"judge": name, "construct": construct, "note": str(exc)})
    write_json(study.judge_report, report)
    return report
