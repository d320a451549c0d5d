"""The append-only judgment log: JSON lines after a versioned header; one line per call.

Each record is written with a single `write` on a file opened for appending, so a crash leaves
at most one torn last line. Reading tolerates torn lines (counted, never fatal); appending after
one starts on a fresh line. `frame()` is the one reader of the log as a table: it keeps a parsed
copy (given a cache path) and parses only what was appended since.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from ._errors import JudgeError
from ._schema import JudgmentRecord
from ._scores import records_frame

LOG_FILE = "judgments.jsonl"
RUNS_FILE = "judge_runs.jsonl"  # one line per run: what ran (toolkit and library versions, the panel)
SCHEMA_VERSION = 1
HEADER = {"log": "empathy-study judgments", "schema_version": SCHEMA_VERSION}


@dataclass
class LogState:
    records: list[JudgmentRecord] = field(default_factory=list)
    torn: int = 0  # lines that could not be read (a crash mid-write)

    def finished(self) -> set[tuple]:
        return {r.cache_key() for r in self.records if r.score is not None}

    def failures(self) -> Counter:
        return Counter(r.cache_key() for r in self.records if r.score is None)


class JudgmentLog:
    def __init__(self, path: Path):
        self.path = path
        self._line_start_known = False  # after our own first write, the file ends with a newline

    def read(self) -> LogState:
        if not self.path.exists():
            return LogState()
        with self.path.open("r", encoding="utf-8", errors="replace") as handle:
            return self._parse(handle)

    def _parse(self, lines) -> LogState:
        """The records of the log's lines (the header first); unreadable lines are counted as torn."""
        state = LogState()
        lines = iter(lines)
        first = next(lines, "")
        try:
            header = json.loads(first)
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("log") != HEADER["log"]:
            raise JudgeError(f"{self.path} is not an empathy-study judgment log")
        if header.get("schema_version") != SCHEMA_VERSION:
            raise JudgeError(f"{self.path} has log schema {header.get('schema_version')}, "
                             f"this version reads {SCHEMA_VERSION}")
        for line in lines:
            if not line.strip():
                continue
            try:
                state.records.append(JudgmentRecord.model_validate_json(line))
            except ValidationError:
                state.torn += 1
        return state

    def frame(self, cache: Path | None = None) -> pd.DataFrame:
        """Every record of the log as a frame (`records_frame`; empty when there is no log).

        With `cache` (a Parquet path) the parsed copy is reused: it records in its own metadata the
        byte offset of the log it covers and the hash of those bytes, and as the log only grows the
        next read parses only what was appended. A log rewritten in place is parsed again from the
        start; a torn last line is left for the next read; a cache that cannot be written is no error.
        """
        if not self.path.exists():
            return records_frame([])
        if cache is None:
            return records_frame(self.read().records)
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        cached = _cached(cache, data, end)
        head = None
        if cached is None:  # parsed from the bytes hashed below, not from a second read of a growing file
            frame = records_frame(self._parse(data[:end].decode("utf-8", errors="replace").split("\n")).records)
        else:
            head, start = cached
            tail = []
            for line in data[start:end].split(b"\n"):
                if line.strip():
                    try:
                        tail.append(JudgmentRecord.model_validate_json(line))
                    except ValidationError:
                        continue  # a torn line (a run killed mid-write), as `read` skips it
            frame = head if not tail else pd.concat([head, records_frame(tail)], ignore_index=True)
        if head is None or len(frame) != len(head):
            _keep(cache, frame, {"offset": end, "sha256": hashlib.sha256(data[:end]).hexdigest()})
        return frame

    def append(self, records: list[JudgmentRecord]) -> None:
        if not records:
            return
        lines = "".join(r.model_dump_json() + "\n" for r in records)
        if (not self.path.exists() or self.path.stat().st_size == 0) and self._create(json.dumps(HEADER) + "\n" + lines):
            self._line_start_known = True
            return
        prefix = "" if self._line_start_known or self._ends_with_newline() else "\n"  # a run that died mid-line
        payload = prefix + lines
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND, 0o644)
        try:
            os.write(descriptor, payload.encode("utf-8"))
        finally:
            os.close(descriptor)
        self._line_start_known = True

    def _create(self, payload: str) -> bool:
        """Write a new log whole (header and first records) under a temporary name, then link it into
        place: a reader never meets the log without its header. False if another writer got there first
        (or an empty file stands there), in which case the caller appends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        staged.write_text(payload, encoding="utf-8")
        try:
            os.link(staged, self.path)
            return True
        except FileExistsError:
            if self.path.stat().st_size == 0:  # an empty file in its place: fill it the old way
                os.replace(staged, self.path)
                return True
            return False
        finally:
            staged.unlink(missing_ok=True)

    @property
    def runs_path(self) -> Path:
        return self.path.with_name(RUNS_FILE)

    def start_run(self, spec: dict) -> str:
        """Record a run's spec before its first call (a killed run stays on record); return its id."""
        run_id = uuid.uuid4().hex[:12]
        line = json.dumps({"run_id": run_id, "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           **spec}, default=str)
        self.runs_path.parent.mkdir(parents=True, exist_ok=True)
        with self.runs_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return run_id

    def runs(self) -> list[dict]:
        if not self.runs_path.exists():
            return []
        found = []
        for line in self.runs_path.read_text(encoding="utf-8").splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a run killed while writing its own spec line
        return found

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"



_CACHE_KEY = b"empathy_study_log"  # the cache's Parquet metadata: which bytes of the log it holds


def _cached(cache: Path, data: bytes, end: int) -> tuple[pd.DataFrame, int] | None:
    """The parsed copy and the offset it covers, when it is a copy of the log's first bytes."""
    try:
        meta = json.loads((pq.read_schema(cache).metadata or {})[_CACHE_KEY])
        offset = int(meta["offset"])
        if offset <= end and hashlib.sha256(data[:offset]).hexdigest() == meta["sha256"]:
            return pd.read_parquet(cache), offset
    except (OSError, ValueError, KeyError, pa.ArrowException):
        pass
    return None


def _keep(cache: Path, frame: pd.DataFrame, covers: dict) -> None:
    """Write the parsed copy whole under a temporary name, then move it into place (one file: the
    copy and the offset it covers cannot disagree)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _CACHE_KEY: json.dumps(covers).encode()})
    staged = cache.with_name(f".{cache.name}.{os.getpid()}.new")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, staged)
        os.replace(staged, cache)
    except (OSError, pa.ArrowException):
        pass  # a read-only study is still readable
    finally:
        staged.unlink(missing_ok=True)
