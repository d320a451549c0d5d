"""Stage functions for the pair tables: build the corpus (turn-pairs, terminal pairs, funnel), draw the sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from empathy_study import corpus
from empathy_study.shared import write_json, write_parquet
from empathy_study.study import population
from empathy_study.study.progress import Progress, Step, quiet
from empathy_study.study.workspace import Workspace


@dataclass
class BuildResult:
    funnel: dict  # what funnel.json holds: rows after every stage, count per rejection reason
    written: list[Path]


def build_corpus(study: Workspace, source: str, inputs: list[str], progress: Progress = quiet,
                 workers: int | None = None) -> BuildResult:
    """Filter a source's conversations and cut them into turn-pairs in the study directory.

    WildChat is built shard by shard, `workers` at a time (None: `[corpus] workers`; 0: one per
    core), then one duplicate pass over all shards; ShareGPT (one JSON file) in one stream.
    """
    if source not in corpus.SOURCES:
        raise corpus.CorpusError(f"--source must be one of {', '.join(corpus.SOURCES)} (got {source!r})")
    if source == "wildchat" and not inputs:
        raise corpus.CorpusError("--source wildchat needs --input (WildChat-1M parquet shards, a directory or a glob)")
    config = study.config().corpus
    funnel = corpus.Funnel(source)
    if source == "wildchat":
        plans = corpus.plan_wildchat(inputs, funnel)
        corpus.build_shards(plans, study.root, config, funnel, workers,
                            on_progress=lambda name, done, total, counters: progress(Step(name, done, total, counters)))
    else:
        step = f"reading {source}"
        conversations = corpus.read_source(source, inputs, funnel,
                                           on_progress=lambda done, total: progress(Step(step, done, total)))
        corpus.build_corpus(conversations, study.root, config, funnel,
                            on_progress=lambda name, done, total, counters: progress(Step(name, done, total, counters)))
    summary = funnel.to_dict()
    write_json(study.funnel, summary)
    return BuildResult(summary, [study.turn_pairs, study.terminal_pairs, study.funnel])


@dataclass
class SampleResult:
    rows: int
    population: int
    strata: int
    seed: int
    written: list[Path]


def draw_sample(study: Workspace, n: int, seed: int = 0, progress: Progress = quiet) -> SampleResult:
    """A stratified sample with exact inclusion probabilities → sample.parquet and its design, sample.json."""
    pairs = corpus.read_table(study.require(study.turn_pairs, f"empathy corpus build --out {study.root}"))
    pairs, judge_pass = population.population_pairs(study, pairs)  # the judge pass's verdicts, once it ran
    progress(Step("topics and strata", 0, None))
    drawn, design = corpus.draw_sample(pairs, n, seed, study.config().sample)
    design["turn_pairs_file"] = str(study.turn_pairs)
    if judge_pass:
        design["judge_pass"] = judge_pass
    write_parquet(study.sample, drawn)
    write_json(study.sample_design, design)
    progress(Step("topics and strata", 1, 1))
    return SampleResult(len(drawn), design["population"], len(design["strata"]), seed, [study.sample, study.sample_design])
