"""`empathy corpus classify` (the judge pass of the population filter) and `empathy corpus audit` (its measurement)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from empathy_study.study import population
from empathy_study.study.cli._common import (
    Seed,
    StudyDir,
    console,
    err_console,
    progress_display,
    user_errors,
    workspace,
)
from empathy_study.study.cli.judge import dry_run_table, run_table


@user_errors
def classify(
    study_dir: StudyDir,
    judge_names: Annotated[list[str] | None, typer.Option(
        "--judge", help="A judge of DIR/study.toml's panel (repeatable); default: [corpus] classify_judges, else local/smollm2.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print calls, tokens and cost per judge; call nothing.")] = False,
    max_cost: Annotated[float | None, typer.Option(help="Stop cleanly before the spend of this run would pass USD.", min=0)] = None,
) -> None:
    """The judge pass: the panel decides which of the cheap pass's candidates are socio-emotional.

    Judges every turn-pair of DIR/turn_pairs.parquet with the binary rubric
    prompts/socioemotional.toml (the pair read with its preceding exchange). Every call is appended
    to DIR/population/judgments.jsonl; a re-run only calls what is not judged yet. Writes
    DIR/socioemotional.parquet (a verdict per pair; `empathy corpus sample` then draws from the
    pairs judged socio-emotional) and adds the pass to DIR/funnel.json.
    """
    ws = workspace(study_dir)
    if dry_run:
        plan = population.plan_classify(ws, judges=judge_names)
        console.print(dry_run_table(plan.lines))
        console.print(f"{plan.candidates:,} candidate pairs")
        return
    with progress_display() as progress:
        result = population.classify(ws, judges=judge_names, max_cost=max_cost, progress=progress)
    if result.plan.torn:
        err_console.print(f"note: {result.plan.torn} torn line(s) in the judge-pass log (an earlier run was killed "
                          "mid-write); those calls were made again")
    if result.summary is not None:
        console.print(run_table(result.summary, result.plan.plans))
        if result.summary.stopped_by_budget:
            console.print(f"stopped before exceeding --max-cost {max_cost:g} USD; run again with a higher cap to continue")
    c = result.counts
    console.print(f"judge pass: {c['kept']:,} of {c['judged']:,} judged candidates socio-emotional "
                  f"({c['unjudged']:,} not judged yet) → {', '.join(str(p) for p in result.written)}")
    if any(p.judge.model.startswith("local/") for p in result.plan.plans):
        err_console.print("warning: the embedded judge classifies poorly — on the committed audit the two passes "
                          "together recalled 0.25 against the cheap pass's 0.61 (README); name a capable panel judge "
                          "with --judge or [corpus] classify_judges")


audit_app = typer.Typer(help="Measure the population filter: a stratified, labelled audit sample of an unfiltered frame.",
                        no_args_is_help=True)


@audit_app.command("draw")
@user_errors
def audit_draw(
    study_dir: StudyDir,
    size: Annotated[list[str], typer.Option("--size", help="STRATUM=N (repeatable), e.g. own3+=200.")],
    seed: Seed = 0,
) -> None:
    """Draw the audit sample from DIR/turn_pairs.parquet (built with [corpus] keep_transactional = true).

    Drawing again with the same seed and larger sizes adds a wave: every earlier pair stays.
    """
    sizes = {}
    for item in size:
        stratum, _, n = item.rpartition("=")
        if not stratum or not n.isdigit():
            raise typer.BadParameter(f"--size wants STRATUM=N, got {item!r}")
        sizes[stratum] = int(n)
    result = population.draw_filter_audit(workspace(study_dir), sizes, seed)
    console.print(f"drew {len(result.sample):,} pairs → {', '.join(str(p) for p in result.written)}")


@audit_app.command("push")
@user_errors
def audit_push(study_dir: StudyDir) -> None:
    """Send the audit sample to its binary Label Studio project (created on first use)."""
    console.print(json.dumps(population.push_filter_audit(workspace(study_dir))))


@audit_app.command("pull")
@user_errors
def audit_pull(study_dir: StudyDir) -> None:
    """Pull every answer of the audit project → DIR/filter_audit_labels.parquet."""
    result = population.pull_filter_audit(workspace(study_dir))
    console.print(f"{result.labelled:,} of {result.sampled:,} audit pairs labelled ({result.skipped} skipped, "
                  f"{result.unparsed} unreadable) → {result.path}")


@audit_app.command("measure")
@user_errors
def audit_measure(
    labels: Annotated[Path, typer.Argument(help="A labelled audit set (JSON lines), e.g. data/socioemotional_audit.jsonl.",
                                           exists=True, dir_okay=False)],
    judgments: Annotated[Path | None, typer.Option(help="The judge pass's log over the set's candidates.",
                                                   exists=True, dir_okay=False)] = None,
    classifier: Annotated[bool, typer.Option("--classifier", help="Also the default path: the cheap pass, then "
                                             "the packaged offline classifier (embeds the candidates).")] = False,
) -> None:
    """Design-weighted precision, recall and kept share (95 % Korn–Graubard CIs) of the old keyword
    filter, the cheap pass, the judge pass and the whole filter, and the share of kept pairs with a
    code fence (prompt, response or reply)."""
    with progress_display() as progress:
        figures = population.measure_filters(population.read_audit(labels), judgments, classifier, progress)
    table = Table(title=f"Population filter measured on {labels.name}", title_justify="left")
    for column in ("filter", "precision", "recall", "kept share", "code fences in kept", "labelled kept / positives"):
        table.add_column(column)
    for name, rates in figures["filters"].items():
        fence = _rate(rates["fence_share"]) if "fence_share" in rates else ""
        table.add_row(name, *(_rate(rates[k]) for k in ("precision", "recall", "kept_share")), fence,
                      f"{rates['precision']['n']} / {rates['recall']['n']}")
    console.print(table)


def _rate(rate: dict) -> str:
    return f"{rate['estimate']:.3f} [{rate['ci_low']:.2f}, {rate['ci_high']:.2f}]"
