"""`empathy corpus build | sample`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.table import Table

import corpus
from study.cli._common import Seed, StudyDir, console, progress, user_errors, workspace, write_json

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
) -> None:
    """Filter conversations and cut them into turn-pairs (prompt → response → reply).

    Writes OUT/turn_pairs.parquet, OUT/terminal_pairs.parquet (conversations that end after an
    assistant answer) and OUT/funnel.json (rows after every stage, count per rejection reason).
    """
    if source not in corpus.SOURCES:
        raise corpus.CorpusError(f"--source must be one of {', '.join(corpus.SOURCES)} (got {source!r})")
    if source == "wildchat" and not input:
        raise corpus.CorpusError("--source wildchat needs --input (WildChat-1M parquet shards, a directory or a glob)")
    study = workspace(out, must_exist=False)
    config = study.config().corpus
    funnel = corpus.Funnel(source)
    with progress(f"reading {source}") as update:
        conversations = corpus.read_source(source, list(input or []), funnel, on_progress=update)
        corpus.build_corpus(conversations, out, config, funnel)
    summary = funnel.to_dict()
    write_json(study.funnel, summary)
    console.print(funnel_table(summary))
    console.print(f"wrote {study.turn_pairs}, {study.terminal_pairs.name} and {study.funnel.name}")


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
    study = workspace(study_dir)
    pairs = corpus.read_table(study.require(study.turn_pairs, f"empathy corpus build --out {study_dir}"))
    with progress("topics and strata"):
        drawn, design = corpus.draw_sample(pairs, n, seed, study.config().sample)
    design["turn_pairs_file"] = str(study.turn_pairs)
    pq.write_table(pa.Table.from_pandas(drawn, preserve_index=False), study.sample)
    write_json(study.sample_design, design)
    strata = len(design["strata"])
    console.print(f"sampled {len(drawn):,} of {design['population']:,} pairs across {strata} strata (seed {seed}) → {study.sample}")
