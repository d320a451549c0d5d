"""`scored_pairs.parquet`: the sample joined with the panel's scores (and, once they exist, blind gold labels).

The one place where stages meet: the sample (corpus), scores (judge) and labels (annotation).
The file carries its own provenance in the Parquet metadata, read back by `empathy estimate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from empathy_study import judge
from empathy_study.annotation import labelstudio
from empathy_study.shared import CONSTRUCTS
from empathy_study.study.annotate import AnnotationState
from empathy_study.study.judging import load_sample, read_judgments, scored_counts
from empathy_study.study.labels import gold_columns
from empathy_study.study.lock import apply_lock, lock_sha256, read_lock, validation_record
from empathy_study.study.provenance import provenance, write_with_provenance
from empathy_study.study.selection import export_terminal
from empathy_study.study.workspace import Workspace


def scored_pairs(study: Workspace, judgments: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """The joined table and what it was made from (`judgments`: the log's frame, if already read)."""
    config = study.config()
    sample = load_sample(study)
    versions = config.judged_versions()  # the study's constructs and the checks it opted in to
    judgments = read_judgments(study) if judgments is None else judgments
    scores = judge.judge_scores(judgments, config.judges, versions)
    panel = [j.name for j in config.judges]
    controls = [c for c in judge.CONTROLS if c in versions]  # e.g. prompt_attachment: a column of its own
    table = sample.merge(judge.panel_scores(scores, panel, [*CONSTRUCTS, *controls]), on="pair_id", how="left")
    lock = read_lock(study)
    validated: dict[str, dict | None] = {c: None for c in CONSTRUCTS}
    if lock and lock.get("constructs"):
        calibrated, applied = apply_lock(judgments, config, lock)
        lock_hash = lock_sha256(study)
        for construct, entry in applied.items():
            # The raw panel mean stays beside the calibrated score it was replaced by.
            table[f"{construct}_raw"] = table[construct]
            table = table.drop(columns=[construct, f"{construct}_judges"]).merge(
                calibrated[["pair_id", construct, f"{construct}_judges"]], on="pair_id", how="left")
            validated[construct] = validation_record(entry, lock_hash)
    for construct in [*CONSTRUCTS, *controls]:
        table[f"{construct}_judges"] = table[f"{construct}_judges"].fillna(0).astype(int)
    if study.labels.exists():
        labelstudio.refuse_recorded(AnnotationState.load(study).foreign_accounts, "empathy export",
                                    config.annotation.allow_foreign_accounts)
    gold = gold_columns(study, sample, config.prompt_versions(), config.annotation)
    if gold is not None:
        table = table.merge(gold, on="pair_id", how="left")
    made_from = {
        "prompt_versions": versions,
        "judges": [j.model_dump(exclude={"api_key_env"}) for j in config.judges],
        "scores_from": scored_counts(scores),  # the judges whose scores are actually in the table
        "judged": {c: int(table[c].notna().sum()) for c in [*CONSTRUCTS, *controls]},
        "partial_panel": {c: int(((table[f"{c}_judges"] > 0) & table[c].isna()).sum()) for c in CONSTRUCTS},
        "gold": {c: int(table[f"{c}_gold"].notna().sum()) for c in CONSTRUCTS} if gold is not None else None,
        "rows": int(len(table)),
        "aggregate": "empathy / attachment = mean over the panel's judges of each judge's mean over its samples, "
                     "only where every judge of the panel scored the pair; a construct locked in calibration.json "
                     "instead holds the locked aggregate of the locked judges' calibrated scores (the raw mean in "
                     "<construct>_raw)",
        "validated": validated,
    }
    return table, made_from


@dataclass
class ExportResult:
    table: pd.DataFrame
    record: dict  # the provenance written into the file
    path: Path
    terminal: Path | None = None  # scored_terminal_pairs.parquet, written when a terminal sample exists


def export(study: Workspace) -> ExportResult:
    """Write DIR/scored_pairs.parquet, the input of `empathy estimate`."""
    judgments = read_judgments(study)
    table, made_from = scored_pairs(study, judgments)
    inputs = {"sample": study.sample, **({"judgments": study.judgments} if study.judgments.exists() else {}),
              **({"calibration": study.calibration} if study.calibration.exists() else {})}
    record = provenance(inputs=inputs, **made_from)
    write_with_provenance(table, record, study.scored_pairs)
    return ExportResult(table, record, study.scored_pairs, export_terminal(study, judgments))


def validation_note(recorded: dict) -> str:
    """One line on whether a scored-pairs file's scores were validated against human labels, and by what."""
    validated = recorded.get("validated")
    if not validated or not any(validated.values()):
        return ("warning: these scores were never validated against human labels (no calibration lock): "
                "`empathy calibrate DIR` locks a validated panel, `empathy export DIR` applies it")
    parts = []
    for construct, entry in validated.items():
        if entry is None:
            parts.append(f"{construct} NOT validated (raw panel mean)")
            continue
        alpha, ci = entry.get("alpha_held_out"), entry.get("alpha_ci")
        figure = f"α {alpha:.2f}" if alpha is not None else "α undefined"
        figure += f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        judges = "+".join(j["name"] for j in entry["judges"])
        parts.append(f"{construct} validated ({judges}, {entry['aggregate']['how']}; held-out {figure} on "
                     f"{entry['n_gold']} gold; locked {entry['locked_at'][:10]}"
                     f"{'; SIMULATED labels' if entry.get('simulated') else ''})")
    prefix = "scores: " if all(validated.values()) else "warning: scores only partly validated: "
    return prefix + "; ".join(parts)
