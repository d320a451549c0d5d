"""`empathy corpus build | sample | classify | audit`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from empathy_study import study
from empathy_study.study.cli._common import Seed, StudyDir, console, progress_display, user_errors, workspace

app = typer.Typer(help="Raw chat logs → turn-pairs → a stratified sample.", no_args_is_help=True)


def funnel_table(funnel: dict) -> Table:
    table = Table(title=f"Funnel — {funnel['source']}", title_justify="left")
    table.add_column("stage")
    table.add_column("unit", style="dim")
    table.add_column("rows", justify="right")
    for stage in funnel["stages"]:
        table.add_row(stage["name"], stage["unit"], f"{stage['rows']:,}")
    table.add_section()
    for reason, rows in funnel["rejected"].items():
        table.add_row(f"[dim]rejected: {reason}[/]", "", f"[dim]{rows:,}[/]")
    terminal = funnel.get("terminal_pairs")
    if terminal:
        table.add_section()
        table.add_row("terminal pairs kept (no reply)", "turn_pairs", f"{terminal['kept']:,}")
    return table


@app.command()
@user_errors
def build(
    source: Annotated[str, typer.Option(help="Corpus format: sharegpt or wildchat.")],
    out: Annotated[Path, typer.Option(help="Study directory to write into (created if missing; other files there are left alone).", file_okay=False, resolve_path=True)],
    input: Annotated[
        list[str] | None,
        typer.Option("--input", help="Files, directories or globs. Omit with --source sharegpt to read the bundled real corpus."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=0, help="WildChat shards built in parallel, a worker per shard "
                                              "(0: one per CPU core). Default: [corpus] workers of study.toml, "
                                              "0 unless set."),
    ] = None,
) -> None:
    """Filter conversations and cut them into turn-pairs (prompt → response → reply).

    Writes OUT/turn_pairs.parquet, OUT/terminal_pairs.parquet (conversations that end after an
    assistant answer) and OUT/funnel.json (rows after every stage, count per rejection reason).
    WildChat shards are read by parallel workers (local processes, or Ray tasks with
    [corpus] build_backend = "ray"); duplicates are then removed across all shards at once.
    """
    with progress_display() as progress:
        result = study.build_corpus(workspace(out, must_exist=False), source, list(input or []), progress, workers)
    console.print(funnel_table(result.funnel))
    build_note = result.funnel.get("build", {})
    if "shards" in build_note:
        shards = build_note["shards"]
        console.print(f"{len(shards)} shard{'s' if len(shards) != 1 else ''} on {build_note['workers']} "
                      f"{build_note['backend']} worker{'s' if build_note['workers'] != 1 else ''}, peak RSS per worker "
                      f"{max(s['peak_rss_mb'] for s in shards):,.0f} MB at most")
    console.print(f"wrote {', '.join(str(p) for p in result.written)}")


@app.command()
@user_errors
def sample(
    study_dir: StudyDir,
    n: Annotated[int, typer.Option("--n", help="Number of turn-pairs to draw.", min=1)],
    seed: Seed = 0,
) -> None:
    """Draw a stratified sample (model × turn bucket × topic by default) with exact inclusion probabilities.

    Writes DIR/sample.parquet (turn-pair columns + stratum, topic, inclusion_prob) and
    DIR/sample.json (the design: strata sizes, topics, seed).
    """
    with progress_display() as progress:
        result = study.draw_sample(workspace(study_dir), n, seed, progress)
    console.print(f"sampled {result.rows:,} of {result.population:,} pairs across {result.strata} strata "
                  f"(seed {seed}) → {result.written[0]}")


@app.command("sample-terminal")
@user_errors
def sample_terminal(
    study_dir: StudyDir,
    n: Annotated[int, typer.Option("--n", help="Number of terminal pairs to draw.", min=1)],
    seed: Seed = 0,
) -> None:
    """Draw terminal pairs (conversations that ended after the response) for selection on replying.

    Stratified by model × turn bucket with exact inclusion probabilities. Writes DIR/terminal_sample.parquet
    and DIR/terminal_sample.json. `empathy judge run` then judges their empathy beside the sample (same log,
    cache, dry run and --max-cost), `empathy export` writes DIR/scored_terminal_pairs.parquet, and
    `empathy estimate` reports the effect of empathy on replying and Lee bounds.
    """
    from empathy_study.study import selection

    with progress_display() as progress:
        result = selection.draw_terminal_sample(workspace(study_dir), n, seed, progress)
    console.print(f"sampled {result.rows:,} of {result.population:,} terminal pairs across {result.strata} strata "
                  f"(seed {seed}) → {result.written[0]}")
    if result.note:
        console.print(f"[bold yellow]note:[/] {result.note}", highlight=False, soft_wrap=True)


# The population filter's judge pass and its measurement (study/cli/population.py).
from empathy_study.study.cli import population as _population  # noqa: E402

app.command("classify")(_population.classify)
app.add_typer(_population.audit_app, name="audit")
