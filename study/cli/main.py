"""`empathy` — the top-level app, `init` and `demo`."""

from __future__ import annotations

import typer

from empathy_study.study.cli import annotate as annotate_cli
from empathy_study.study.cli import corpus as corpus_cli
from empathy_study.study.cli import judge as judge_cli
from empathy_study.study.cli._common import StudyApp, StudyDir, console, error_line, user_errors, workspace
from empathy_study.study.cli.demo import demo
from empathy_study.study.cli.estimate import estimate
from empathy_study.study.cli.export import export_pairs

app = typer.Typer(
    cls=StudyApp,  # usage errors end in one `error:` line and exit 1; help texts print as written
    help="Does empathetic language from an LLM cause users to become emotionally attached? "
    "From raw chat logs to judge-validated causal estimates.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(corpus_cli.app, name="corpus")
app.add_typer(judge_cli.app, name="judge")
app.add_typer(annotate_cli.app, name="annotate")
app.command()(annotate_cli.agree)
app.command()(estimate)
app.command("export")(export_pairs)
app.command()(demo)


@app.command()
@user_errors
def init(study_dir: StudyDir) -> None:
    """Create a study directory with a commented study.toml holding every default."""
    path = workspace(study_dir, must_exist=False).init()
    console.print(f"created {path}")


@app.command()
@user_errors
def calibrate(study_dir: StudyDir) -> None:
    """Open the calibration app: where the judges disagree with the blind gold labels, rubric edits and
    re-runs on the gold pairs, isotonic calibration with held-out figures, and the lock `export` applies."""
    from empathy_study.study.tui import make_app

    app = make_app(workspace(study_dir))
    app.run()
    reason = app.crash_reason()
    if reason:
        error_line(reason)
        raise typer.Exit(code=1)
