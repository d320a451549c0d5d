"""The CLI's tables never lose a number: on an 80-column terminal and in piped output (where Rich
assumes 80 columns), a table too wide for the screen is printed as one line of `header: value` items per
row instead of cells cut to "…" (the agreement table of a first pilot was unreadable)."""

from __future__ import annotations

import io
import json
import re
from collections import Counter

import pytest
from rich.table import Table
from typer.testing import CliRunner

from empathy_study.study.cli import app
from empathy_study.study.cli._common import StudyConsole
from tests.study.conftest import make_simulated

runner = CliRunner()


def tokens(text: str) -> Counter:
    """Every figure in the text, as written (brackets, commas and the table's borders stripped)."""
    return Counter(re.findall(r"[-+]?\d[\d,]*\.?\d*", text.replace("│", " ")))


def wide_table() -> tuple[Table, list[str]]:
    table = Table(title="wide", caption="a caption that must survive")
    for column in ("kind", "a", "b", "α ordinal", "95 % CI", "α interval", "n", "κ qw", "ρ", "MAE", "bias b−a", "verdict"):
        table.add_column(column)
    cells = []
    for i in range(5):
        row = ["judge-human", f"a-judge-with-a-long-name-{i}", f"annotator-{i:04d}", f"0.{i}23", f"[-0.{i}2, 0.{i}5]",
               f"0.{i}34", f"{160 + i:,}", f"0.{i}45", f"-0.{i}56", f"1.{i}34", f"-0.{i}67", "inconclusive"]
        table.add_row(*row)
        cells += row
    return table, cells


@pytest.mark.parametrize("where", ["80 columns", "piped"])
def test_a_table_too_wide_keeps_every_cell(where):
    out = io.StringIO()
    console = StudyConsole(file=out, width=80) if where == "80 columns" else StudyConsole(file=out)
    assert not console.is_terminal and console.width == 80  # Rich's width for output that is not a terminal
    table, cells = wide_table()
    console.print(table)
    printed = out.getvalue()
    assert "…" not in printed and max(len(line) for line in printed.splitlines()) <= 80
    flat = " ".join(printed.split())
    for cell in cells:
        assert cell in flat, cell
    assert not tokens(" ".join(cells)) - tokens(printed)  # every figure, as often as it occurs
    assert "a caption that must survive" in flat and flat.startswith("wide")


def test_a_table_that_fits_stays_a_table():
    out = io.StringIO()
    table = Table(title="small")
    for column in ("judge", "calls", "cost USD"):
        table.add_column(column)
    table.add_row("gpt-4o-mini", "1,234", "0.0123")
    StudyConsole(file=out, width=80).print(table)
    assert "┃ judge" in out.getvalue() and "│ gpt-4o-mini │ 1,234 │ 0.0123   │" in out.getvalue()


@pytest.mark.parametrize("columns", ["80", None])
def test_the_agreement_table_keeps_its_numbers_at_80_columns_and_piped(tmp_path, monkeypatch, columns):
    ws = make_simulated(tmp_path / "study", n=120, gold=40)
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    result = runner.invoke(app, ["agree", str(ws.root)], env={"COLUMNS": columns} if columns else {})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    report = json.loads(ws.agreement.read_text())
    expected = Counter()
    for construct in ("empathy", "attachment"):
        for p in report[construct]["pairs"]:
            figures = [p["alpha_ordinal"], *(p["ci"] or []), p["alpha_interval"], p["kappa_qw"], p["spearman"],
                       p["mae"], p["bias"]]
            expected += tokens(" ".join(f"{v:.2f}" for v in figures if v is not None) + f" {p['n']}")
            assert f"a: {p['a']} · b: {p['b']}" in " ".join(result.output.split())
    printed = tokens(result.output)
    assert not expected - printed, expected - printed  # every figure of every pair, as often as it occurs
