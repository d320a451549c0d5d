"""The append-only judgment log: JSON lines after a versioned header; one line per call.

Each record is written with a single `write` on a file opened for appending, so a crash leaves
at most one torn last line. Reading tolerates torn lines (counted, never fatal); appending after
one starts on a fresh line.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from ._errors import JudgeError
from ._schema import JudgmentRecord

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
        state = LogState()
        if not self.path.exists():
            return state
        with self.path.open("r", encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
            try:
                header = json.loads(first)
            except json.JSONDecodeError:
                header = None
            if not isinstance(header, dict) or header.get("log") != HEADER["log"]:
                raise JudgeError(f"{self.path} is not an empathy-study judgment log")
            if header.get("schema_version") != SCHEMA_VERSION:
                raise JudgeError(f"{self.path} has log schema {header.get('schema_version')}, "
                                 f"this version reads {SCHEMA_VERSION}")
            for line in handle:
                if not line.strip():
                    continue
                try:
                    state.records.append(JudgmentRecord.model_validate_json(line))
                except ValidationError:
                    state.torn += 1
        return state

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
