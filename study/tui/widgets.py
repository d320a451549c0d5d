"""What the screens draw, as renderables and cell texts: numbers, intervals, rubric versions, the
treatment-class confusion, a gold pair. Formatting only — every figure comes from `study.calibrate`."""

from __future__ import annotations

import math

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual.widgets import DataTable

from empathy_study.judge import Rubric
from empathy_study.study import calibrate


def number(value, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def interval(value, ci) -> str:
    """α with its interval in a compact cell: 0.50 [.39,.59]."""
    if value is None:
        return "undefined"
    if not ci:
        return number(value)

    def short(v: float) -> str:
        return f"{v:.2f}".replace("0.", ".", 1) if 0 <= v < 1 else f"{v:.2f}"

    return f"{value:.2f} [{short(ci[0])},{short(ci[1])}]"


short_version = calibrate.short


def fill_table(table: DataTable, columns: list[str | tuple[str, str, int]], rows: list[tuple[str, ...]],
               keys: list[str] | None = None) -> None:
    """Replace a table's columns and rows, each column as wide as its widest cell (a column given as
    (label, key, width) keeps that width).

    DataTable sizes a column that fits its content only when it next idles, and keeps the lines it
    drew before then: a frame drawn between the rows' arrival and that moment (a worker's result
    lands at any time) stayed on screen with every cell cut to the header's width. Widths given
    here are right from the first frame.
    """
    table.clear(columns=True)
    for index, column in enumerate(columns):
        label, key, width = column if isinstance(column, tuple) else (column, None, None)
        if width is None:
            width = max([cell_len(label), *(cell_len(str(row[index])) for row in rows)])
        table.add_column(label, width=width, key=key)
    if keys is None:
        table.add_rows(rows)
    else:
        for row, key in zip(rows, keys):
            table.add_row(*row, key=key)


def confusion_text(confusion: list[list[int]], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, show_edge=False)
    table.add_column("score↓ gold→")
    for name in calibrate.CLASSES:
        table.add_column(name, justify="right")
    for name, row in zip(calibrate.CLASSES, confusion):
        table.add_row(name, *(str(v) for v in row))
    return table


ROLES = {"prompt": "User", "response": "Assistant", "reply": "User (next)"}


def pair_view(detail: calibrate.PairDetail, rubric: Rubric) -> Table:
    """A gold pair: the texts its rubric shows, every rating and rationale, the gold and rater levels."""
    body = Text()
    body.append(f"{detail.pair_id}\n", style="bold")
    for name in rubric.context:
        body.append(f"{ROLES[name]}: ", style="bold")
        body.append(detail.texts.get(name, "")[:600] + "\n")
    if "response" not in rubric.context:
        body.append("(the response is hidden from raters of this construct)\n", style="italic")
    body.append("annotators: " + (", ".join(f"{a} {s:g}" for a, s in detail.annotators.items()) or "none") + "\n")
    for j in detail.judges:
        expected = f" (expected {j['expected_score']:.2f})" if j["expected_score"] is not None else ""
        body.append(f"{j['judge']} @ {short_version(j['version'])}: {j['score']:g}{expected} — {j['rationale']}\n")
    levels = Table(box=None, pad_edge=False, expand=True)
    levels.add_column("gold level")
    levels.add_column(f"{detail.rater} level")
    levels.add_row(f"{detail.gold_level} = {rubric.levels[detail.gold_level]}" if detail.gold_level else "—",
                   f"{detail.rater_level} = {rubric.levels[detail.rater_level]}" if detail.rater_level else "—")
    grid = Table.grid()
    grid.add_row(body)
    grid.add_row(levels)
    return grid
