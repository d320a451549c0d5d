"""`scored_pairs.parquet`: the sample joined with the panel's scores (and, once they exist, blind gold labels).

The one place where stages meet: the sample (corpus), scores (judge) and labels (annotation).
The file carries its own provenance in the Parquet metadata, read back by `empathy estimate`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from empathy_study import judge
from empathy_study.shared import CONSTRUCTS, atomic_path, read_frame
from empathy_study.study.annotate import gold_columns
from empathy_study.study.judging import load_sample, scored_counts
from empathy_study.study.provenance import provenance
from empathy_study.study.workspace import Workspace

TABLE_METADATA_KEY = b"empathy_study"


def scored_pairs(study: Workspace) -> tuple[pd.DataFrame, dict]:
    """The joined table and what it was made from."""
    config = study.config()
    sample = load_sample(study)
    versions = config.prompt_versions()
    records = judge.JudgmentLog(study.judgments).read().records if study.judgments.exists() else []
    scores = judge.judge_scores(records, config.judges, versions)
    panel = [j.name for j in config.judges]
    table = sample.merge(judge.panel_scores(scores, panel), on="pair_id", how="left")
    for construct in CONSTRUCTS:
        table[f"{construct}_judges"] = table[f"{construct}_judges"].fillna(0).astype(int)
    gold = gold_columns(study, sample)
    if gold is not None:
        table = table.merge(gold, on="pair_id", how="left")
    made_from = {
        "prompt_versions": versions,
        "judges": [j.model_dump(exclude={"api_key_env"}) for j in config.judges],
        "scores_from": scored_counts(scores),  # the judges whose scores are actually in the table
        "judged": {c: int(table[c].notna().sum()) for c in CONSTRUCTS},
        "partial_panel": {c: int(((table[f"{c}_judges"] > 0) & table[c].isna()).sum()) for c in CONSTRUCTS},
        "gold": {c: int(table[f"{c}_gold"].notna().sum()) for c in CONSTRUCTS} if gold is not None else None,
        "rows": int(len(table)),
        "aggregate": "empathy / attachment = mean over the panel's judges of each judge's mean over its samples, "
                     "only where every judge of the panel scored the pair",
    }
    return table, made_from


@dataclass
class ExportResult:
    table: pd.DataFrame
    record: dict  # the provenance written into the file
    path: Path


def export(study: Workspace) -> ExportResult:
    """Write DIR/scored_pairs.parquet, the input of `empathy estimate`."""
    table, made_from = scored_pairs(study)
    record = provenance(inputs={"sample": study.sample, **({"judgments": study.judgments} if study.judgments.exists() else {})},
                        **made_from)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           TABLE_METADATA_KEY: json.dumps(record, default=str).encode()})
    with atomic_path(study.scored_pairs) as staged:
        pq.write_table(arrow, staged)
    return ExportResult(table, record, study.scored_pairs)


def read_scored_pairs(path: Path) -> tuple[pd.DataFrame, dict]:
    """A scored-pairs file (Parquet or CSV) and the provenance its writer recorded, if any."""
    frame = read_frame(path)
    if path.suffix.lower() == ".csv":
        return frame, {}
    meta = (pq.read_schema(path).metadata or {}).get(TABLE_METADATA_KEY)
    return frame, (json.loads(meta) if meta else {})
