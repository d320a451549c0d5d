"""What every command shares: the error line, progress display, option aliases."""

from __future__ import annotations

import functools
import inspect
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from empathy_study.annotation import AgreementError, AnnotationError
from empathy_study.causal import CausalError
from empathy_study.corpus import CorpusError
from empathy_study.judge import JudgeError
from empathy_study.shared import TableError
from empathy_study.study.progress import Step
from empathy_study.study.workspace import StudyError, Workspace


def fit_table(table: Table, console: Console) -> RenderableType:
    """The table as it is where its columns fit the console's width with every word whole; else each row
    as one line of `header: value` items. Rich shrinks columns that do not fit down to "…" — at 80
    columns, and in any piped output, the agreement table lost most of its numbers."""
    if not table.show_header or not table.columns:
        return table  # a layout grid (progress bars and the like), not a table of results
    widest = Measurement.get(console, console.options.update(max_width=1_000_000), table).minimum
    if widest <= console.width:
        return table
    return Group(*_rows_as_lines(table, console))


def _text(cell: object, console: Console) -> Text:
    if isinstance(cell, Text):
        return cell
    return console.render_str(cell) if isinstance(cell, str) else Text(str(cell))


def _rows_as_lines(table: Table, console: Console) -> list[RenderableType]:
    title = [Text.assemble(_text(table.title, console), style="bold")] if table.title else []
    headers = [_text(c.header, console).plain for c in table.columns]
    rows = Table.grid(padding=(0, 1))  # a bullet, then the row's items: a wrapped line stays indented
    rows.add_column(width=1)
    rows.add_column(ratio=1)
    for row in zip(*(list(c.cells) for c in table.columns)):
        line = Text()
        items = [(h, _text(cell, console)) for h, cell in zip(headers, row)]
        for i, (header, value) in enumerate((h, v) for h, v in items if v.plain.strip()):
            line.append(" · " if i else "")
            line.append(f"{header}: " if header else "", style="dim")
            line.append_text(value)
        rows.add_row("•", line)
    caption = [_text(table.caption, console)] if table.caption else []
    return [*title, rows, *caption]


class StudyConsole(Console):
    """The CLI's output console: tables go through `fit_table`, so none loses a number."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(fit_table(o, self) if isinstance(o, Table) else o for o in objects), **kwargs)


console = StudyConsole()
err_console = Console(stderr=True)

# Errors a user can fix from the message alone: one line, exit code 1, no traceback.
USER_ERRORS: tuple[type[Exception], ...] = (AgreementError, AnnotationError, CorpusError, CausalError, JudgeError,
                                            StudyError, TableError)

StudyDir = Annotated[
    Path,
    typer.Argument(help="Study directory (made by `empathy init`).", file_okay=False, resolve_path=True),
]
Seed = Annotated[int, typer.Option(help="Seed of every random step (recorded in the outputs).")]

AGREEMENT_CAPTION = ("bias b−a = mean of b − a: positive when b rates higher than a. Verdict from the 95 % CI "
                     "of α ordinal: reliable = all of it ≥ 0.8, tentative = all ≥ 0.667, unreliable = all < 0.667, "
                     "inconclusive = it straddles 0.667.")

LINE_EVERY_SECONDS = 10.0  # without a terminal, progress is a line this often


INTERRUPTED = 130  # the shell's code for a run ended by Ctrl-C


def error_line(message: str) -> None:
    """The one line every failure ends with (the message printed as written, brackets included)."""
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def user_errors(command: Callable) -> Callable:
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            error_line(str(exc))
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            error_line("interrupted (Ctrl-C)")
            raise typer.Exit(code=INTERRUPTED) from None

    return run


def plain_help(text: str | None) -> str | None:
    """A docstring or option help as Rich should print it: lines of a paragraph joined (the terminal
    wraps them), and brackets escaped so that `[[judges]]` or `[causal]` is not taken for markup."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(escape(" ".join(p.split())) for p in paragraphs)


def tidy_help(command: Any) -> None:
    """Apply `plain_help` to a command, its parameters and (for groups) every subcommand, once."""
    if getattr(command, "_help_tidied", False):
        return
    command._help_tidied = True
    command.help = plain_help(command.help)
    command.short_help = plain_help(command.short_help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = plain_help(param.help)
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)


class StudyApp(TyperGroup):
    """The `empathy` command itself: whatever goes wrong ends with one `error:` line and exit code 1 —
    a usage error (unknown option, bad value, missing argument) included, for every command."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        tidy_help(self)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as exc:  # Typer's usage errors: unknown option, bad value, missing argument
            if type(exc).__name__ == "NoArgsIsHelpError":
                code = 0  # a bare `empathy judge` asks for the help, which was printed
            else:
                context = getattr(exc, "ctx", None)
                hint = f" (see `{context.command_path} --help`)" if context is not None else ""
                error_line(exc.format_message() + hint)
                code = 1
        except typer.Abort:
            error_line("aborted")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def workspace(path: Path, must_exist: bool = True) -> Workspace:
    if must_exist and not path.is_dir():
        raise StudyError(f"{path} is not a study directory: create it with `empathy init {path}`")
    return Workspace(path)


@contextmanager
def stop_on_interrupt() -> Iterator[Callable[[], bool]]:
    """A `stop` flag for a long job: the first Ctrl-C asks the job to stop starting new work (what is
    in flight finishes and is kept); a second Ctrl-C stops at once (KeyboardInterrupt)."""
    asked = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield asked.is_set
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame) -> None:
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()
        err_console.print("stopping: no new calls start; the calls in flight finish and are logged "
                          "(Ctrl-C again to quit at once)", highlight=False)

    signal.signal(signal.SIGINT, handler)
    try:
        yield asked.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def progress_display() -> Iterator[Callable[[Step], None]]:
    """The CLI's progress callback: a Rich bar per step on a terminal, a plain line every few
    seconds otherwise (logs of batch jobs still show that a long step moves)."""
    if not err_console.is_terminal:
        last = {"at": 0.0, "step": None}

        def line(step: Step) -> None:
            now = time.monotonic()
            if step.name == last["step"] and now - last["at"] < LINE_EVERY_SECONDS and step.done != step.total:
                return
            last.update(at=now, step=step.name)
            counts = f"{step.done:,}" + (f"/{step.total:,}" if step.total else "")
            extra = "".join(f", {k.replace('_', ' ')} {v:,.4g}" for k, v in step.counters.items())
            err_console.print(f"{step.name}: {counts}{extra}", highlight=False)

        yield line
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[counters]}")]
    with Progress(*columns, console=err_console) as bar:
        tasks: dict[str, int] = {}
        last: dict[str, Step] = {}

        def update(step: Step) -> None:
            if step.name not in tasks:
                for name, task in tasks.items():  # a new step means the earlier ones are done
                    bar.update(task, completed=last[name].total or last[name].done)
                tasks[step.name] = bar.add_task(step.name, total=step.total, counters="")
            last[step.name] = step
            counters = "  ".join(f"{k.replace('_', ' ')} {v:,.4g}" for k, v in step.counters.items())
            bar.update(tasks[step.name], completed=step.done, total=step.total, counters=counters)

        yield update
