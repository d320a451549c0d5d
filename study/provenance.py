"""How a result was made: package versions, the toolkit's git commit, input hashes, seeds — and the
Parquet tables that carry that record in their own metadata (scored pairs, scored terminal pairs)."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from empathy_study.shared import atomic_path, file_sha256, read_frame

TABLE_METADATA_KEY = b"empathy_study"  # the Parquet metadata key of a scored table's provenance
_PACKAGES = ("empathy-study", "numpy", "pandas", "scipy", "scikit-learn", "econml", "sentence-transformers",
             "torch", "litellm", "instructor", "krippendorff", "label-studio-sdk", "pyarrow")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_state() -> dict[str, str | bool] | None:
    """Commit and dirty flag of the toolkit's own checkout (None when installed without one)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def provenance(inputs: dict[str, Path] | None = None, seeds: dict[str, int] | None = None, **extra) -> dict:
    record = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "git": git_state(),
        "seeds": seeds or {},
        "inputs": {name: {"path": str(path), "sha256": file_sha256(path)} for name, path in (inputs or {}).items()},
    }
    record.update(extra)
    return record


def write_with_provenance(table: pd.DataFrame, record: dict, path: Path) -> None:
    """Write `table` as Parquet with how it was made in the file's own metadata."""
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                           TABLE_METADATA_KEY: json.dumps(record, default=str).encode()})
    with atomic_path(path) as staged:
        pq.write_table(arrow, staged)


def read_scored_pairs(path: Path) -> tuple[pd.DataFrame, dict]:
    """A scored-pairs file (Parquet or CSV) and the provenance its writer recorded, if any."""
    frame = read_frame(path)
    if path.suffix.lower() == ".csv":
        return frame, {}
    meta = (pq.read_schema(path).metadata or {}).get(TABLE_METADATA_KEY)
    return frame, (json.loads(meta) if meta else {})
