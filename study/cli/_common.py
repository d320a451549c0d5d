"""What every command shares: the error line, progress bars, JSON output, option aliases."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from annotation import AgreementError, AnnotationError
from causal import CausalError
from corpus import CorpusError
from judge import JudgeError
from study.workspace import StudyError, Workspace

console = Console()
err_console = Console(stderr=True)

# Errors a user can fix from the message alone: one line, exit code 1, no traceback.
USER_ERRORS: tuple[type[Exception], ...] = (AgreementError, AnnotationError, CorpusError, CausalError, JudgeError, StudyError)

StudyDir = Annotated[
    Path,
    typer.Argument(help="Study directory (made by `empathy init`).", file_okay=False, resolve_path=True),
]
Seed = Annotated[int, typer.Option(help="Seed of every random step (recorded in the outputs).")]


def user_errors(command: Callable) -> Callable:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None

    return run


def workspace(path: Path, must_exist: bool = True) -> Workspace:
    if must_exist and not path.is_dir():
        raise StudyError(f"{path} is not a study directory: create it with `empathy init {path}`")
    return Workspace(path)


@contextmanager
def progress(description: str, total: float | None = None) -> Iterator[Callable[[float, float | None], None]]:
    """A Rich progress bar; yields `update(done, total)`. Quiet when output is not a terminal."""
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=False, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(description, total=total)

        def update(done: float, new_total: float | None = None) -> None:
            bar.update(task, completed=done, total=new_total if new_total is not None else bar.tasks[0].total)

        yield update


@contextmanager
def step_progress() -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars for a multi-step job: one bar per step name, `update(step, done, total)`."""
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, disable=not err_console.is_terminal) as bar:
        tasks: dict[str, int] = {}
        totals: dict[str, int] = {}

        def finish_all() -> None:
            for name, task in tasks.items():
                bar.update(task, completed=totals[name])

        def update(step: str, done: int, total: int) -> None:
            if step not in tasks:
                finish_all()  # a new step means the earlier ones are done
                tasks[step] = bar.add_task(step, total=total)
            totals[step] = total
            bar.update(tasks[step], completed=done, total=total)

        yield update
        finish_all()


def write_json(path: Path, payload: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    staged = path.with_name(f".{path.name}.partial")
    staged.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(staged, path)
