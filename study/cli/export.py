"""`empathy export DIR`."""

from __future__ import annotations

from study.cli._common import StudyDir, console, user_errors, workspace
from study.export import write_scored_pairs


@user_errors
def export_pairs(study_dir: StudyDir) -> None:
    """Write DIR/scored_pairs.parquet: the sample + empathy and attachment (panel aggregate) — the input of
    `empathy estimate`. Joins whatever exists; pairs not yet judged have empty scores."""
    study = workspace(study_dir)
    table, record = write_scored_pairs(study)
    console.print(f"wrote {study.scored_pairs}: {len(table):,} pairs, judged: {record['judged']}")
