"""`empathy export DIR`."""

from __future__ import annotations

from empathy_study import study
from empathy_study.study.cli._common import StudyDir, console, user_errors, workspace


@user_errors
def export_pairs(study_dir: StudyDir) -> None:
    """Write DIR/scored_pairs.parquet: the sample + empathy and attachment (panel aggregate) — the input of
    `empathy estimate`. Joins whatever exists; pairs not yet judged have empty scores."""
    result = study.export(workspace(study_dir))
    console.print(f"wrote {result.path}: {len(result.table):,} pairs, judged: {result.record['judged']}; "
                  f"scores from: {result.record['scores_from']}")
    if result.terminal is not None:
        console.print(f"wrote {result.terminal}: the terminal sample with its panel empathy (selection on replying)")
    for note in result.notes:
        console.print(f"warning: {note}", markup=False, highlight=False)
    partial = {c: n for c, n in result.record["partial_panel"].items() if n}
    if partial:
        console.print(f"pairs left without a panel score because some judge of the panel has not scored them: {partial} "
                      "(run `empathy judge run` again to retry failures)")
