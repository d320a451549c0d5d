"""The turn-pair table contract (DESIGN.md) and the one check every stage runs on its way in."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from empathy_study.shared import TableError, read_frame

from ._errors import CorpusError

TURN_PAIR_COLUMNS = (
    "pair_id", "conversation_id", "user_id", "model", "turn_index",
    "timestamp", "prompt", "response", "reply",
)
OPTIONAL_TURN_PAIR_COLUMNS = ("language", "country", "prev_response", "prev_prompt")
SAMPLE_COLUMNS = ("stratum", "topic", "inclusion_prob")

TURN_PAIR_SCHEMA = pa.schema([
    ("pair_id", pa.string()),
    ("conversation_id", pa.string()),
    ("user_id", pa.string()),
    ("model", pa.string()),
    ("turn_index", pa.int32()),
    ("timestamp", pa.timestamp("us", tz="UTC")),
    ("prompt", pa.string()),
    ("response", pa.string()),
    ("reply", pa.string()),
    ("prev_response", pa.string()),
    ("prev_prompt", pa.string()),
    ("language", pa.string()),
    ("country", pa.string()),
])
TERMINAL_PAIR_SCHEMA = pa.schema([f for f in TURN_PAIR_SCHEMA if f.name != "reply"])


def validate_turn_pairs(frame: pd.DataFrame, where: str | Path, required=TURN_PAIR_COLUMNS) -> pd.DataFrame:
    """Check a turn-pair table at a stage's entry: named columns present, ids unique, texts present."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise CorpusError(f"{where}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if frame["pair_id"].isna().any():
        raise CorpusError(f"{where}: {int(frame['pair_id'].isna().sum())} rows have no pair_id")
    duplicated = frame["pair_id"].duplicated()
    if duplicated.any():
        raise CorpusError(f"{where}: pair_id is not unique ({frame.loc[duplicated, 'pair_id'].iloc[0]} repeats)")
    for column in ("prompt", "response", "reply"):
        if column in required and frame[column].isna().any():
            raise CorpusError(f"{where}: column '{column}' has {int(frame[column].isna().sum())} empty values")
    return frame


def read_table(path: Path, required=TURN_PAIR_COLUMNS) -> pd.DataFrame:
    """Read a turn-pair-like table (Parquet or CSV) and validate it."""
    try:
        frame = read_frame(path)
    except TableError as exc:
        raise CorpusError(str(exc)) from exc
    return validate_turn_pairs(frame, path, required)
