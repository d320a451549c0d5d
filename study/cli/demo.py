"""`empathy demo` on the terminal: how each result of `study.demo.run_demo` is shown."""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import singledispatchmethod
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from empathy_study import study
from empathy_study.study import demo as wiring
from empathy_study.study.cli import corpus as corpus_cli
from empathy_study.study.cli import judge as judge_cli
from empathy_study.study.cli._common import console, progress_display, user_errors
from empathy_study.study.cli.estimate import print_warnings, results_table
from empathy_study.study.workspace import Workspace


def _number(value, signed: bool = False) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


class ConsoleView:
    """The demo's `DemoView`: a rule per step, Rich tables for results, progress bars for long steps."""

    def section(self, title: str) -> None:
        console.rule(title)

    def progress(self) -> AbstractContextManager:
        return progress_display()

    def status(self, text: str) -> AbstractContextManager:
        return console.status(text)

    @singledispatchmethod
    def show(self, result: object) -> None:
        raise TypeError(f"the demo has no view of {type(result).__name__}")

    @show.register
    def _(self, built: study.BuildResult) -> None:
        console.print(corpus_cli.funnel_table(built.funnel))

    @show.register
    def _(self, drawn: study.SampleResult) -> None:
        console.print(f"sampled {drawn.rows} of {drawn.population:,} pairs across {drawn.strata} strata")

    @show.register
    def _(self, judged: study.JudgeRunResult) -> None:
        if judged.summary is not None:
            console.print(judge_cli.run_table(judged.summary, judged.plan.plans))
        if judged.advice:
            console.print(judged.advice, markup=False, highlight=False)

    @show.register
    def _(self, diagnostics: wiring.JudgeDiagnostics) -> None:
        for table in judge_cli.report_tables(diagnostics.report):
            console.print(table)

    @show.register
    def _(self, exported: study.ExportResult) -> None:
        console.print(f"wrote {exported.path}: judged {exported.record['judged']}")

    @show.register
    def _(self, pushed: wiring.Pushed) -> None:
        root = pushed.study.root
        if pushed.results is None:
            console.print(f"skipped: {pushed.reason}\nTo annotate: `make labelstudio`, `source "
                          ".labelstudio/credentials.env`, export LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY as it "
                          "prints; for each annotator `make labelstudio-annotator NAME=…` and `empathy annotate "
                          f"add-annotator {root} EMAIL --url URL`; then `empathy annotate push {root}`.",
                          highlight=False)
            return
        for r in pushed.results:
            console.print(f"{r.project}: {r.new_tasks} new tasks ({r.existing_tasks} already there) — project "
                          f"{r.project_id}")
        if pushed.audit is not None:
            console.print(pushed.audit.describe() + (" (too few for it: the demo's labels serve agreement and "
                                                     "calibration)" if pushed.audit.short else ""), markup=False,
                          highlight=False)
        console.print(f"annotate in the browser, then `empathy annotate pull {root}` and `empathy agree {root}`")

    @show.register
    def _(self, skipped: wiring.Skipped) -> None:
        console.print(skipped.reason)

    @show.register
    def _(self, estimated: wiring.Estimated) -> None:
        console.print(results_table(estimated.result))
        console.print(f"report: {estimated.report}")

    @show.register
    def _(self, planted: wiring.PlantedComparison) -> None:
        table = Table(title="Planted truth vs estimates (semi-synthetic: simulated judge, simulated human labels; "
                            "not a finding)", title_justify="left")
        for column in ("estimator", "estimate", "95 % CI", "truth it should hit"):
            table.add_column(column)
        for row in planted.rows:
            ci = f"[{row.ci[0]:+.3f}, {row.ci[1]:+.3f}]" + ("" if row.interval_valid else " ✗")
            table.add_row(row.label, f"{row.estimate:+.3f}", ci, f"{row.truth:.3f} ({row.target})")
        console.print(table)
        print_warnings(planted.result)
        console.print(f"report: {planted.report}")

    @show.register
    def _(self, preview: wiring.CalibrationPreview) -> None:
        table = Table(title="SIMULATED judges against SIMULATED annotators (empathy, current rubric)",
                      title_justify="left")
        for column in ("judge", "α", "MAE", "bias", "n gold"):
            table.add_column(column)
        for row in preview.overview.rows:
            if row.current:
                f = row.figures
                table.add_row(row.rater, _number(f["alpha"]), _number(f["mae"]), _number(f["bias"], signed=True),
                              str(f["n"]))
        console.print(table)
        ceiling = preview.overview.ceiling
        console.print(f"human ceiling α {_number(ceiling['alpha'])} on {ceiling['n']} pairs with two annotators; "
                      f"how it was simulated: {preview.study.simulation}")

    def done(self, demo: Workspace, calibration: Workspace) -> None:
        console.print(f"\nThe demo study is in {demo.root}")
        if demo.labels.exists():
            console.print(f"Calibrate its judges against your annotators: `empathy calibrate {demo.root}`")
        console.print(f"Open the calibration app on the simulated study: `empathy calibrate {calibration.root}`")


@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo study is written.", file_okay=False,
                                      resolve_path=True)] = Path("demo-study"),
) -> None:
    """Run the whole flow on the embedded defaults: the bundled real corpus, and on from there."""
    wiring.run_demo(out, ConsoleView())
