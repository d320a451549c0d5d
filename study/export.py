"""`scored_pairs.parquet`: the sample joined with the panel's scores (and, once they exist, blind gold labels).

The one place where stages meet: the sample (corpus), scores (judge) and labels (annotation).
The file carries its own provenance in the Parquet metadata, read back by `empathy estimate`.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import judge
from study.annotate import gold_columns
from study.provenance import provenance
from study.workspace import Workspace

TABLE_METADATA_KEY = b"empathy_study"


def scored_pairs(study: Workspace) -> tuple[pd.DataFrame, dict]:
    """The joined table and what it was made from."""
    config = study.config()
    sample = pd.read_parquet(study.require(study.sample, f"empathy corpus sample {study.root} --n N"))
    versions = config.prompt_versions()
    records = judge.JudgmentLog(study.judgments).read().records if study.judgments.exists() else []
    scores = judge.judge_scores(records, versions)
    panel = judge.panel_scores(scores)
    table = sample.merge(panel, on="pair_id", how="left")
    gold = gold_columns(study, sample)
    if gold is not None:
        table = table.merge(gold, on="pair_id", how="left")
    made_from = {
        "prompt_versions": versions,
        "judges": [j.model_dump(exclude={"api_key_env"}) for j in config.judges],
        "judged": {c: int(table[c].notna().sum()) for c in ("empathy", "attachment")},
        "gold": {c: int(table[f"{c}_gold"].notna().sum()) for c in ("empathy", "attachment")} if gold is not None else None,
        "rows": int(len(table)),
        "aggregate": "empathy / attachment = mean over judges of each judge's mean over its samples",
    }
    return table, made_from


def write_scored_pairs(study: Workspace) -> tuple[pd.DataFrame, dict]:
    table, made_from = scored_pairs(study)
    record = provenance(inputs={"sample": study.sample, **({"judgments": study.judgments} if study.judgments.exists() else {})},
                        **made_from)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           TABLE_METADATA_KEY: json.dumps(record, default=str).encode()})
    pq.write_table(arrow, study.scored_pairs)
    return table, record
