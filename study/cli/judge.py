"""`empathy judge run | export | report`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from empathy_study import judge, study
from empathy_study.study.cli._common import (
    AGREEMENT_CAPTION,
    INTERRUPTED,
    StudyDir,
    console,
    err_console,
    error_line,
    progress_display,
    stop_on_interrupt,
    user_errors,
    workspace,
)

app = typer.Typer(help="Score sampled pairs with a panel of LLM judges; export scores; diagnose the judges.",
                  no_args_is_help=True)


@app.command()
@user_errors
def run(
    study_dir: StudyDir,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print calls, tokens and cost per judge; call nothing.")] = False,
    max_cost: Annotated[float | None, typer.Option(help="Stop cleanly before the spend of this run would pass USD.", min=0)] = None,
) -> None:
    """Judge DIR/sample.parquet with the [[judges]] panel of DIR/study.toml.

    Every call is appended to DIR/judgments.jsonl. Finished items are never requested again; a
    killed run resumes where it stopped; failed items are retried up to [judge] max_attempts.

    Judges with batch = true: their pending items are submitted as provider batches (recorded in
    DIR/judge_batches.jsonl) and the command returns; run it again to collect finished batches.
    """
    ws = workspace(study_dir)
    if dry_run:
        plan = study.plan_judging(ws)
        console.print(dry_run_table(plan.lines))
        for note in latency_notes(plan.lines) + batch_notes(plan.lines):
            console.print(note, markup=False, highlight=False)
        seconds = plan.seconds
        if not any(line.calls for line in plan.lines if not line.batch):
            return  # only batch judges have work: the note above says when it is done
        console.print(f"wall time (est.): {_duration(seconds)}" if seconds is not None else
                      "wall time: unknown until every judge has a measured or configured latency", highlight=False)
        return
    seen = {"done": 0, "total": None}

    def counting(step: study.Step) -> None:
        if step.name == "judging":
            seen.update(done=step.done, total=step.total)
        progress(step)

    resume = f"run `empathy judge run {study_dir}` again to resume: finished items are never called again"
    with progress_display() as progress, stop_on_interrupt() as stop:
        try:
            result = study.run_judges(ws, max_cost=max_cost, progress=counting, stop=stop)
        except KeyboardInterrupt:
            error_line(f"interrupted after {seen['done']:,} of {seen['total'] or 0:,} calls, each logged in "
                       f"{ws.judgments.name} as it returned (calls in flight were lost); {resume}")
            raise typer.Exit(code=INTERRUPTED) from None
    if result.plan.torn:
        err_console.print(f"note: {result.plan.torn} torn line(s) in {ws.judgments.name} (an earlier run was killed "
                          "mid-write); those calls were made again")
    if result.batches.submitted or result.batches.recovered or result.batches.pending or result.batches.collected:
        console.print(batch_table(result.batches))
        if result.batches.collected:
            console.print(f"collected {len(result.batches.collected)} batch(es): {result.batches.records:,} judgments "
                          f"appended to {ws.judgments.name} ({result.batches.failed:,} failed, with their reasons)")
        if result.batches.pending:
            console.print(f"{len(result.batches.pending)} batch(es) still running; run `empathy judge run {study_dir}` "
                          "again to collect them (nothing is submitted twice)")
    if result.batches.held_by_budget:
        console.print(f"{result.batches.held_by_budget:,} batch item(s) not submitted: at their most they would pass "
                      f"--max-cost {max_cost:g} USD; run again with a higher cap to submit them")
    if result.summary is None:
        if result.run_id is not None or result.batches.collected or result.batches.pending:
            return  # only batches moved: the table above says what
        cached = sum(p.cached for p in result.plan.plans)
        gave_up = sum(p.gave_up for p in result.plan.plans)
        console.print(f"nothing to do: every item is judged ({cached:,} cached, {gave_up:,} given up after "
                      f"{result.plan.config.judge.max_attempts} failures)")
        return
    summary = result.summary
    console.print(run_table(summary, result.plan.plans))
    for warning in result.warnings:
        console.print(f"warning: {warning['message']}", markup=False, highlight=False)
    if result.advice:
        console.print(result.advice, markup=False, highlight=False)
    if summary.stopped_by_budget:
        console.print(f"stopped before exceeding --max-cost {max_cost:g} USD; run again with a higher cap to continue")
    if summary.cancelled and summary.called < result.plan.calls:
        error_line(f"interrupted after {summary.called:,} of {result.plan.calls:,} calls, each logged in "
                   f"{ws.judgments.name}; {resume}")
        raise typer.Exit(code=INTERRUPTED)
    if summary.every_call_failed:
        error_line(f"every one of the {summary.called:,} calls failed, e.g. {summary.commonest_error()} "
                   f"(each failure is logged in {ws.judgments.name}; a later run retries them)")
        raise typer.Exit(code=1)
    console.print(f"log: {result.log}  ·  next: empathy judge export {study_dir}")


def dry_run_table(lines: list[judge.DryRunLine]) -> Table:
    table = Table(title="Dry run — nothing was called", title_justify="left",
                  caption="tokens in: counted on the messages as sent; tokens out: the judge's mean in the log, "
                          f"else {judge.EXPECTED_TOKENS_OUT} a call; time: calls × latency ÷ concurrency",
                  caption_justify="left")
    for column in ("judge", "calls", "cached", "given up", "tokens in", "tokens out", "cost USD (max)", "time"):
        table.add_column(column, justify="left" if column == "judge" else "right")
    for line in lines:
        cost = "unknown price" if line.cost_usd is None else f"{line.cost_usd:.4f} ({line.cost_usd_max:.4f})"
        table.add_row(escape(line.judge) + (" (batch)" if line.batch else ""), f"{line.calls:,}", f"{line.cached:,}",
                      f"{line.gave_up:,}", f"{line.tokens_in:,}", f"{line.tokens_out:,}", cost,
                      "≤ 24 h" if line.batch else _duration(line.seconds))
    return table


def batch_notes(lines: list[judge.DryRunLine]) -> list[str]:
    return [f"{line.judge}: batch judge — {line.calls:,} calls in {line.batches} batch(es), priced at batch prices, "
            f"done within the provider's window; {line.in_batch:,} calls already in uncollected batches"
            for line in lines if line.batch]


def batch_table(report: judge.BatchReport) -> Table:
    table = Table(title="Batches", title_justify="left")
    for column in ("judge", "batch", "requests", "status", "done", "failed"):
        table.add_column(column, justify="left" if column in ("judge", "batch", "status") else "right")
    seen = set()
    for what, batches in (("submitted now", report.submitted), ("found at the provider (not resubmitted)",
                                                                  report.recovered),
                          ("collected", report.collected), ("running", report.pending)):
        for batch in batches:
            if batch.key in seen:
                continue
            seen.add(batch.key)
            done = batch.collected["ok"] if batch.collected else batch.counts.get("completed")
            failed = batch.collected["failed"] if batch.collected else batch.counts.get("failed")
            status = batch.status if what == "running" and batch.status else what
            table.add_row(escape(batch.judge.name), batch.batch_id or "–", f"{batch.requests:,}", escape(status),
                          "–" if done is None else f"{done:,}", "–" if failed is None else f"{failed:,}")
    return table


def latency_notes(lines: list[judge.DryRunLine]) -> list[str]:
    return [f"{line.judge}: latency from the {line.latency_from}" if line.seconds is not None else
            f"{line.judge}: no call measured yet — set latency = <seconds a call> in its [[judges]] table "
            "for a time estimate" for line in lines if line.calls and not line.batch]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def run_table(summary: judge.RunSummary, plans) -> Table:
    table = Table(title=f"Judge run ({summary.seconds:.0f} s)", title_justify="left")
    for column in ("judge", "calls", "ok", "failed", "cached", "tokens in", "tokens out", "cost USD"):
        table.add_column(column, justify="left" if column == "judge" else "right")
    cached = {p.judge.name: p.cached for p in plans}
    for name, tally in summary.tallies.items():
        table.add_row(name, f"{tally.called:,}", f"{tally.ok:,}", f"{tally.failed:,}", f"{cached[name]:,}",
                      f"{tally.tokens_in:,}", f"{tally.tokens_out:,}", f"{tally.cost_usd:.4f}")
    return table


@app.command()
@user_errors
def export(study_dir: StudyDir) -> None:
    """Write DIR/scores.parquet: pair × construct × judge → mean score over samples, n_ok, n_failed.

    Only judgments of the current panel count: a judge of DIR/study.toml with the same name,
    model and temperature, under the study's current rubric versions.
    """
    result = study.export_scores(workspace(study_dir))
    console.print(f"wrote {result.path}: {len(result.scores):,} rows; pairs scored per construct and judge: "
                  f"{result.scored}")


@app.command()
@user_errors
def report(study_dir: StudyDir) -> None:
    """Judge diagnostics: failures, score distributions, test–retest, judge–judge agreement, length bias,
    how much the response leaks into attachment (response-swap check), tokens and cost → DIR/judge_report.json."""
    ws = workspace(study_dir)
    result = study.report_judges(ws)
    for table in report_tables(result):
        console.print(table)
    console.print(f"wrote {ws.judge_report}")


def report_tables(result: dict) -> list[Table]:
    if "note" in result:
        return [Table(title=result["note"])]
    tables = []
    failures = Table(title="Failures and score distributions", title_justify="left")
    for column in ("judge", "construct", "items", "failed", "mean", *map(str, range(1, 8))):
        failures.add_column(column, justify="left" if column in ("judge", "construct") else "right")
    dist = {(d["judge"], d["construct"]): d for d in result["distributions"]}
    for f in result["failures"]:
        d = dist.get((f["judge"], f["construct"]), {"counts": {}, "mean": float("nan")})
        failures.add_row(f["judge"], f["construct"], str(f["items"]), f"{f['failure_rate']:.1%}", f"{d['mean']:.2f}",
                         *[str(d["counts"].get(s, 0)) for s in range(1, 8)])
    tables.append(failures)
    agreement = Table(title="Judge–judge and test–retest agreement (α ordinal)", title_justify="left",
                      caption=AGREEMENT_CAPTION, caption_justify="left")
    for column in ("construct", "a", "b", "α ordinal", "95 % CI", "n", "κ qw", "MAE", "bias b−a", "verdict"):
        agreement.add_column(column)
    rows = [(c, p) for c, r in result["judge_judge"].items() for p in r.get("pairs", [])]
    rows += [(t["construct"], t) for t in result["test_retest"] if "alpha_ordinal" in t]
    if not rows:
        agreement.add_row("–", "needs two judges, or samples ≥ 2 for test–retest", "", "", "", "", "", "", "", "")
    for construct, p in rows:
        agreement.add_row(construct, p["a"], p["b"], _num(p["alpha_ordinal"]),
                          "–" if not p["ci"] else f"[{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]", str(p["n"]),
                          _num(p["kappa_qw"]), _num(p["mae"]), _num(p["bias"]), p["verdict"])
    tables.append(agreement)
    bias = Table(title="Length bias (Spearman ρ of score with the rated text's length)", title_justify="left")
    for column in ("judge", "construct", "ρ", "p", "n"):
        bias.add_column(column)
    for b in result["length_bias"]:
        bias.add_row(b["judge"], b["construct"], _num(b["spearman"]), _num(b["p_value"]), str(b["n"]))
    tables.append(bias)
    leak = Table(title="Response leakage into attachment (re-judged with the response shown / swapped)",
                 title_justify="left")
    for column in ("judge", "n", "mean change when shown", "ρ(change, empathy)", "shown − swapped"):
        leak.add_column(column)
    for row in result["response_leakage"]:
        leak.add_row(row["judge"], str(row["n"]), _num(row.get("mean_change_when_shown")),
                     _num(row.get("spearman_change_vs_empathy")), _num(row.get("mean_shown_minus_swapped")))
    tables.append(leak)
    if result.get("warnings"):
        warned = Table(title="Warnings: scores to distrust whatever their agreement", title_justify="left")
        for column in ("judge", "construct", "what"):
            warned.add_column(column)
        for w in result["warnings"]:
            warned.add_row(escape(w["judge"]), w["construct"], escape(w["message"]))
        tables.insert(0, warned)
    use = Table(title="Usage", title_justify="left")
    for column in ("judge", "calls", "tokens in", "tokens out", "cost USD", "median latency ms", "expected score"):
        use.add_column(column)
    for u in result["usage"]:
        use.add_row(u["judge"], f"{u['calls']:,}", f"{u['tokens_in']:,}", f"{u['tokens_out']:,}", f"{u['cost_usd']:.4f}",
                    _num(u["median_latency_ms"], 0), f"{u['expected_score_share']:.0%}")
    tables.append(use)
    return tables


def _num(value, digits: int = 2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"
