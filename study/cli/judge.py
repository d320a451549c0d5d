"""`empathy judge run | export | report`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

import corpus
import judge
from study.cli._common import StudyDir, console, err_console, progress, user_errors, workspace, write_json
from study.workspace import Workspace

app = typer.Typer(help="Score sampled pairs with a panel of LLM judges; export scores; diagnose the judges.",
                  no_args_is_help=True)


def load_sample(study: Workspace) -> pd.DataFrame:
    path = study.require(study.sample, f"empathy corpus sample {study.root} --n N")
    return corpus.read_table(path)


def _tasks(study: Workspace, sample: pd.DataFrame) -> tuple[list[judge.Task], dict[str, judge.Rubric]]:
    settings = study.config().judge
    rubrics = judge.study_rubrics(settings.attachment_context)
    default_attachment = judge.load_rubric("attachment")
    return judge.main_tasks(sample, rubrics) + judge.swap_tasks(sample, default_attachment, settings.swap_check_pairs), rubrics


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
    """
    study = workspace(study_dir)
    config = study.config()
    sample = load_sample(study)
    tasks, _ = _tasks(study, sample)
    log = judge.JudgmentLog(study.judgments)
    state = log.read()
    if state.torn:
        err_console.print(f"note: {state.torn} torn line(s) in {study.judgments.name} (an earlier run was killed "
                          "mid-write); those calls will be made again")
    plans = judge.plan_panel(tasks, config.judges, state, config.judge)
    if dry_run:
        console.print(dry_run_table(judge.dry_run(plans)))
        return
    total = sum(len(p.items) for p in plans)
    if total == 0:
        console.print(f"nothing to do: every item is judged ({sum(p.cached for p in plans):,} cached, "
                      f"{sum(p.gave_up for p in plans):,} given up after {config.judge.max_attempts} failures)")
        return
    done = 0
    with judge.open_endpoints(config.judges) as endpoints, progress(f"judging ({total:,} calls)", total) as update:
        def on_record(record: judge.JudgmentRecord) -> None:
            nonlocal done
            done += 1
            update(done)

        summary = asyncio.run(judge.run_panel(plans, endpoints, log, config.judge, max_cost, on_record))
    console.print(run_table(summary, plans))
    if summary.stopped_by_budget:
        console.print(f"stopped before exceeding --max-cost {max_cost:g} USD; run again with a higher cap to continue")
    console.print(f"log: {study.judgments}  ·  next: empathy judge export {study_dir}")


def dry_run_table(lines: list[judge.DryRunLine]) -> Table:
    table = Table(title="Dry run — nothing was called", title_justify="left")
    for column in ("judge", "model", "calls", "cached", "given up", "tokens in (est.)", "tokens out (max)", "cost USD (max)"):
        table.add_column(column, justify="left" if column in ("judge", "model") else "right")
    for line in lines:
        cost = "unknown price" if line.cost_usd_max is None else f"{line.cost_usd_max:.4f}"
        table.add_row(line.judge, line.model, f"{line.calls:,}", f"{line.cached:,}", f"{line.gave_up:,}",
                      f"{line.tokens_in:,}", f"{line.tokens_out_max:,}", cost)
    return table


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

    Only judgments made with the study's current rubric versions count.
    """
    study = workspace(study_dir)
    log = judge.JudgmentLog(study.require(study.judgments, f"empathy judge run {study_dir}"))
    scores = judge.judge_scores(log.read().records, study.config().prompt_versions())
    scores.to_parquet(study.scores, index=False)
    complete = scores.groupby("construct")["score"].apply(lambda s: int(s.notna().sum())).to_dict()
    console.print(f"wrote {study.scores}: {len(scores):,} rows; scored per construct: {complete}")


@app.command()
@user_errors
def report(study_dir: StudyDir) -> None:
    """Judge diagnostics: failures, score distributions, test–retest, judge–judge agreement, length bias,
    how much the response leaks into attachment (response-swap check), tokens and cost → DIR/judge_report.json."""
    study = workspace(study_dir)
    records = judge.JudgmentLog(study.require(study.judgments, f"empathy judge run {study_dir}")).read().records
    sample = load_sample(study)
    shown = judge.load_rubric("attachment", ["prompt", "response", "reply"]).version
    result = judge.judge_report(records, sample, study.config().prompt_versions(), (shown, shown + "+swapped"))
    write_json(study.judge_report, result)
    for table in report_tables(result):
        console.print(table)
    console.print(f"wrote {study.judge_report}")


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
    agreement = Table(title="Judge–judge and test–retest agreement (α ordinal; ≥ 0.8 reliable, ≥ 0.667 tentative)",
                      title_justify="left")
    for column in ("construct", "a", "b", "α ordinal", "95 % CI", "n", "κ qw", "MAE", "bias"):
        agreement.add_column(column)
    rows = [(c, p) for c, r in result["judge_judge"].items() for p in r.get("pairs", [])]
    rows += [(t["construct"], t) for t in result["test_retest"] if "alpha_ordinal" in t]
    if not rows:
        agreement.add_row("–", "needs two judges, or samples ≥ 2 for test–retest", "", "", "", "", "", "", "")
    for construct, p in rows:
        agreement.add_row(construct, p["a"], p["b"], _num(p["alpha_ordinal"]),
                          "–" if not p["ci"] else f"[{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]", str(p["n"]),
                          _num(p["kappa_qw"]), _num(p["mae"]), _num(p["bias"]))
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
