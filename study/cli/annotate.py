"""`empathy annotate push | pull | status | requeue` and `empathy agree`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from empathy_study import study
from empathy_study.shared import CONSTRUCTS
from empathy_study.study.cli._common import StudyDir, console, user_errors, workspace

app = typer.Typer(help="Human ground truth in Label Studio (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY).",
                  no_args_is_help=True)


@app.command()
@user_errors
def push(
    study_dir: StudyDir,
    review: Annotated[bool, typer.Option("--review", help="Also sync review projects: the judges' scores and "
                                         "rationales as predictions, for checking the judge (never gold).")] = False,
) -> None:
    """Send the blind audit sample (and calibration pairs) to Label Studio; re-pushing adds only what is new.

    Blind projects carry no judge score anywhere (the free edition shows predictions to every annotator).
    """
    ws = workspace(study_dir)
    table = Table(title="Label Studio push", title_justify="left")
    for column in ("project", "id", "new tasks", "already there", "new predictions"):
        table.add_column(column)
    for r in study.push(ws, review):
        table.add_row(r.project + (" (created)" if r.created else ""), str(r.project_id), str(r.new_tasks),
                      str(r.existing_tasks), str(r.new_predictions))
    console.print(table)


@app.command()
@user_errors
def pull(study_dir: StudyDir) -> None:
    """Fetch every annotation into DIR/labels.parquet (annotators under pseudonymous ids; edits replace,
    deletions disappear). Nothing is overwritten when the server cannot be read."""
    ws = workspace(study_dir)
    summary = study.pull(ws)
    counts = summary.labels.groupby(["construct", "mode"]).size().to_dict() if len(summary.labels) else {}
    console.print(f"wrote {ws.labels}: {len(summary.labels):,} labels {counts}")
    if summary.foreign:
        console.print(f"ignored {summary.foreign} result(s) from controls that are not this study's")
    if summary.unparsed:
        console.print(f"ignored {summary.unparsed} annotation(s) without a 1-7 choice")
    if summary.skipped:
        console.print(f"{summary.skipped} audit task(s) were skipped: a skipped audit pair breaks its known sampling "
                      f"probability. Put them back in the queue with `empathy annotate requeue {study_dir}`.")


@app.command()
@user_errors
def status(study_dir: StudyDir) -> None:
    """Tasks, labelled, overlap reached, skips and labels per annotator, per project."""
    ws = workspace(study_dir)
    table = Table(title="Annotation status", title_justify="left")
    for column in ("project", "tasks", "labelled", "overlap reached", "skipped", "per annotator"):
        table.add_column(column)
    for row in study.status(ws):
        people = ", ".join(f"{k}: {v}" for k, v in sorted(row["per_annotator"].items())) or "–"
        table.add_row(row["project"], str(row["tasks"]), str(row["labelled"]), str(row["overlap_reached"]),
                      str(row["skipped"]), people)
    console.print(table)


@app.command()
@user_errors
def requeue(study_dir: StudyDir) -> None:
    """Delete skipped annotations of blind audit tasks so the tasks go back into the queue."""
    removed = study.requeue_skipped(workspace(study_dir))
    console.print(f"re-queued {removed} skipped task annotation(s)")


@user_errors
def agree(study_dir: StudyDir) -> None:
    """Agreement between annotators, judges and the panel → DIR/agreement.json and a table.

    Krippendorff's α (ordinal, interval; values 1..7) with unit-bootstrap 95 % CIs, quadratic-weighted
    κ, Spearman ρ, MAE and bias for every pair of raters. α ≥ 0.8 reliable, ≥ 0.667 tentative.
    """
    ws = workspace(study_dir)
    report = study.agree(ws)
    for construct in CONSTRUCTS:
        result = report.get(construct, {})
        if "note" in result:
            console.print(f"{construct}: {result['note']}")
            continue
        ceiling = result.get("human_ceiling")
        table = Table(title=f"{construct}: agreement (human ceiling α = "
                            f"{'–' if ceiling is None else f'{ceiling:.2f}'}; ≥ 0.8 reliable, ≥ 0.667 tentative)",
                      title_justify="left")
        for column in ("kind", "a", "b", "α ordinal", "95 % CI", "α interval", "n", "κ qw", "ρ", "MAE", "bias", "verdict"):
            table.add_column(column)
        for p in result["pairs"]:
            table.add_row(p["kind"], p["a"], p["b"], _num(p["alpha_ordinal"]),
                          "–" if not p["ci"] else f"[{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]", _num(p["alpha_interval"]),
                          str(p["n"]), _num(p["kappa_qw"]), _num(p["spearman"]), _num(p["mae"]), _num(p["bias"]),
                          p["verdict"])
        console.print(table)
    console.print(f"wrote {ws.agreement}")


def _num(value) -> str:
    return "–" if value is None else f"{value:.2f}"


@app.command()
@user_errors
def plan(
    study_dir: StudyDir,
    ci_width: Annotated[float, typer.Option("--ci-width", help="Target width of the corrected 95 % interval "
                                            "(points on the 1-7 scale).")],
    cost_per_label: Annotated[float | None, typer.Option(help="Price of one label in USD, to cost the plan.")] = None,
) -> None:
    """How many more audited pairs bring the judge-error-corrected interval to --ci-width.

    Reads the variance the last `empathy estimate DIR` measured (DIR/estimates/estimates.json) and
    the annotation rate in DIR/labels.parquet.
    """
    from empathy_study.study.audit_plan import plan_audit

    result = plan_audit(workspace(study_dir), ci_width, cost_per_label)
    p = result.plan
    console.print(f"corrected estimate {result.estimate:+.3f}: interval width {p.current_width:.3f} from "
                  f"{p.audited:,} audited of {p.pairs:,} pairs")
    if not p.reachable:
        console.print(f"width {p.target_width:g} is out of reach in this sample: labelling every pair would give "
                      f"{p.width_if_all_audited:.3f} (the rest of the width is how much the effect varies)")
    elif not p.more:
        console.print(f"width {p.target_width:g} is already reached")
    else:
        line = f"about {p.more:,} more audited pairs ({p.needed:,} in all) reach width {p.target_width:g}"
        if result.labels_per_pair:
            line += f": {p.more * result.labels_per_pair:,.0f} labels at {result.labels_per_pair:.1f} per pair"
        if result.days is not None:
            line += f", ~{result.days:.1f} days at the current {result.labels_per_day:.0f} labels/day"
        if result.cost_usd is not None:
            line += f", ~{result.cost_usd:,.2f} USD"
        console.print(line)
        console.print("raise [annotation] audit_rate in study.toml, `empathy annotate push`, label, pull, export and "
                      "estimate again")
    if result.stale:
        console.print(f"note: scored_pairs.parquet changed after the last estimate: run `empathy estimate "
                      f"{study_dir}` for an up-to-date plan")
