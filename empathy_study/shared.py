"""What every stage package shares: the construct names, the cache folder, atomic writes, the table reader.

A leaf: it imports no other module of the toolkit, so any stage package may use it without
coupling to another stage.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pandas as pd

Construct = Literal["empathy", "attachment"]
CONSTRUCTS: tuple[Construct, ...] = ("empathy", "attachment")
JUDGE_COLUMN = "{construct}__{judge}"  # scored_pairs.parquet: one panel judge's own score of a construct


def judge_column(construct: str, judge: str) -> str:
    """The scored-pairs column holding one judge's own score of a construct (docs/contracts.md)."""
    return JUDGE_COLUMN.format(construct=construct, judge=judge)


def expected_key(construct: str) -> str:
    """The `panel_columns` key (and column prefix) of the judges' logprob-expected scores of a construct:
    `judge_column(expected_key("empathy"), judge)` is `empathy_expected__<judge>`."""
    return f"{construct}_expected"

CACHE_VARIABLE = "EMPATHY_CACHE"


def cache_dir() -> Path:
    """Where derived artefacts that may be rebuilt live (embeddings, assembled model files).

    `EMPATHY_CACHE` moves it; the default is the user's cache folder.
    """
    base = os.environ.get(CACHE_VARIABLE) or os.path.join(os.path.expanduser("~"), ".cache", "empathy-study")
    return Path(base)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A staging path beside `path`, moved over it only when the block finishes: a reader never
    sees half a file, and an interrupted write leaves nothing behind."""
    staged = path.with_name(f".{path.name}.partial")
    try:
        yield staged
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks (model weights and corpora do not fit a read())."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as staged:
        staged.write_text(text, encoding="utf-8")


def write_json(path: Path, payload: dict) -> None:
    write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as staged:
        frame.to_parquet(staged, index=False)


class TableError(ValueError):
    """A table file that is missing or cannot be read as Parquet or CSV."""


def read_frame(path: Path) -> pd.DataFrame:
    """A table from Parquet, or CSV when the name ends in .csv."""
    if not path.is_file():
        raise TableError(f"{path} does not exist")
    try:
        return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise TableError(f"{path} could not be read as {'CSV' if path.suffix.lower() == '.csv' else 'Parquet'}: "
                         f"{exc}") from exc


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
