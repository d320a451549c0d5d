"""Stage functions for selection on replying: draw a sample of terminal pairs (conversations that
ended after the response), export their panel empathy, and the `selection` block of the estimates.

Turn-pairs exist only where the user replied. The terminal sample is judged for empathy by the same
judge run (same log, cache, dry run and cost cap: `empathy judge run` plans it beside the turn-pair
sample); attachment is not judged there, as there is no reply to rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from empathy_study import causal, corpus, judge
from empathy_study.shared import write_json, write_parquet
from empathy_study.study.judging import TERMINAL_COLUMNS, load_terminal_sample, read_judgments
from empathy_study.study.lock import apply_lock, lock_sha256, read_lock
from empathy_study.study.progress import Progress, Step, quiet
from empathy_study.study.provenance import provenance, read_scored_pairs, write_with_provenance
from empathy_study.study.workspace import Workspace

TERMINAL_STRATA = ("model", "turn_bucket")  # topics are fitted on the turn-pair sample's prompts only


@dataclass
class TerminalSampleResult:
    rows: int
    population: int
    strata: int
    seed: int
    written: list[Path]
    note: str | None  # a caveat on how the two populations compare


def population_note(study: Workspace) -> str | None:
    """When the turn-pair sample was drawn after the socio-emotional judge pass, the terminal pairs
    (which that pass never saw) come from a wider population: said wherever the reply rate is used."""
    if not study.sample_design.exists():
        return None
    design = json.loads(study.sample_design.read_text(encoding="utf-8"))
    if design.get("judge_pass"):
        return ("the turn-pair sample was drawn from the pairs the socio-emotional judge pass kept; the terminal pairs "
                "were not passed through it, so replied and terminal answers come from different populations (both "
                "passed the cheap prefilter): the reply rate and the effect on replying mix the two")
    return None


def draw_terminal_sample(study: Workspace, n: int, seed: int = 0, progress: Progress = quiet) -> TerminalSampleResult:
    """A stratified sample (model × turn bucket, as configured) of terminal_pairs.parquet with exact
    inclusion probabilities → terminal_sample.parquet and its design, terminal_sample.json."""
    terminal = corpus.read_table(study.require(study.terminal_pairs, f"empathy corpus build --out {study.root}"),
                                 required=TERMINAL_COLUMNS)
    config = study.config().sample
    progress(Step("strata", 0, None))
    frame = terminal.sort_values("pair_id", kind="stable").reset_index(drop=True)
    parts = {"model": frame["model"].fillna("unknown").astype(str),
             "turn_bucket": corpus.turn_buckets(frame["turn_index"], config.turn_bucket_starts)}
    strata = [s for s in config.strata if s in TERMINAL_STRATA]
    frame["stratum"] = (pd.concat([k + "=" + parts[k] for k in strata], axis=1).agg("|".join, axis=1)
                        if strata else "all")
    drawn, design_strata = corpus.draw_stratified(frame, n, seed, config.allocation)
    note = population_note(study)
    design = {"n": int(n), "population": int(len(frame)), "seed": int(seed), "strata_by": strata,
              "allocation": config.allocation, "strata": design_strata,
              "terminal_pairs_file": str(study.terminal_pairs), "population_note": note}
    write_parquet(study.terminal_sample, drawn)
    write_json(study.terminal_sample_design, design)
    progress(Step("strata", 1, 1))
    return TerminalSampleResult(len(drawn), len(frame), len(design_strata), seed,
                                [study.terminal_sample, study.terminal_sample_design], note)


def scored_terminal_pairs(study: Workspace, judgments: pd.DataFrame | None = None,
                          versions: dict[str, str] | None = None) -> tuple[pd.DataFrame, dict] | None:
    """The terminal sample joined with the panel's empathy (the locked calibration where empathy is
    locked, as for the turn-pairs); None without a terminal sample. `judgments`: the log's frame, if
    already read; `versions`: the rubric version of empathy the turn-pairs' export used (default: the
    current one)."""
    terminal = load_terminal_sample(study)
    if terminal is None:
        return None
    config = study.config()
    versions = {**config.prompt_versions(), **(versions or {})}
    judgments = read_judgments(study) if judgments is None else judgments
    scores = judge.judge_scores(judgments, config.judges, versions)
    panel = [j.name for j in config.judges]
    table = terminal.merge(judge.panel_scores(scores, panel, ["empathy"]), on="pair_id", how="left")
    lock = read_lock(study)
    validated = None
    if lock and "empathy" in lock.get("constructs", {}):
        calibrated, applied = apply_lock(judgments, config,
                                         {**lock, "constructs": {"empathy": lock["constructs"]["empathy"]}}, versions)
        table["empathy_raw"] = table["empathy"]
        table = table.drop(columns=["empathy", "empathy_judges"]).merge(
            calibrated[["pair_id", "empathy", "empathy_judges"]], on="pair_id", how="left")
        validated = lock_sha256(study)
    table["empathy_judges"] = table["empathy_judges"].fillna(0).astype(int)
    made_from = {"prompt_versions": {"empathy": versions["empathy"]}, "rows": int(len(table)),
                 "judged": {"empathy": int(table["empathy"].notna().sum())},
                 "calibration_lock_sha256": validated,
                 "judges": [j.model_dump(exclude={"api_key_env"}) for j in config.judges],
                 "population_note": population_note(study)}
    return table, made_from


def export_terminal(study: Workspace, judgments: pd.DataFrame | None = None,
                    versions: dict[str, str] | None = None) -> Path | None:
    """Write DIR/scored_terminal_pairs.parquet (when a terminal sample exists), the provenance in its
    Parquet metadata like scored_pairs.parquet."""
    found = scored_terminal_pairs(study, judgments, versions)
    if found is None:
        return None
    table, made_from = found
    inputs = {"terminal_sample": study.terminal_sample,
              **({"judgments": study.judgments} if study.judgments.exists() else {})}
    write_with_provenance(table, provenance(inputs=inputs, **made_from), study.scored_terminal_pairs)
    return study.scored_terminal_pairs


def population_sizes(funnel_path: Path) -> dict:
    """Rows of turn_pairs.parquet and terminal_pairs.parquet as funnel.json counted them (the fallback
    weights for tables without inclusion probabilities)."""
    if not funnel_path.exists():
        return {}
    funnel = json.loads(funnel_path.read_text(encoding="utf-8"))
    stages = {s["name"]: s["rows"] for s in funnel.get("stages", [])}
    turn = stages.get("judge_pass", stages.get("deduplicated"))
    return {"turn_pairs": turn, "terminal_pairs": (funnel.get("terminal_pairs") or {}).get("kept")}


def read_terminal(terminal_path: Path | None) -> causal.Terminal | None:
    """The scored terminal pairs at `terminal_path` with their tables' population sizes and the note their
    export recorded, for the estimate's selection-on-replying analysis (None: there are none)."""
    if terminal_path is None or not terminal_path.exists():
        return None
    terminal, recorded = read_scored_pairs(terminal_path)
    note = recorded.get("population_note")
    return causal.Terminal(terminal, population_sizes(terminal_path.parent / "funnel.json"), [note] if note else [],
                           str(terminal_path))


def locate_terminal(pairs_path: Path) -> Path | None:
    """scored_terminal_pairs.parquet beside a scored-pairs file (its study directory), if there."""
    beside = pairs_path.parent / "scored_terminal_pairs.parquet"
    return beside if beside.exists() else None

