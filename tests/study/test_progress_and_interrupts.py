"""Long steps without a terminal still show that they move (a line every few seconds), and a corpus
build cut short leaves nothing half-written behind."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from empathy_study import study
from empathy_study.study.cli import _common
from empathy_study.study.workspace import Workspace


def test_without_a_terminal_progress_is_a_line_every_few_seconds(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(_common, "err_console", Console(file=buffer, force_terminal=False, width=200))
    clock = {"now": 1000.0}
    monkeypatch.setattr(_common.time, "monotonic", lambda: clock["now"])
    every = _common.LINE_EVERY_SECONDS
    # One update a second for 3.5 intervals, then the last item.
    with _common.progress_display() as progress:
        for done in range(36):
            clock["now"] = 1000.0 + done * every / 10
            progress(study.Step("judging", done, 40, {"failed": 2}))
        progress(study.Step("judging", 40, 40, {"failed": 2}))
    lines = buffer.getvalue().splitlines()
    assert lines == ["judging: 0/40, failed 2", "judging: 10/40, failed 2", "judging: 20/40, failed 2",
                     "judging: 30/40, failed 2", "judging: 40/40, failed 2"]


def test_a_new_step_prints_at_once(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr(_common, "err_console", Console(file=buffer, force_terminal=False, width=200))
    monkeypatch.setattr(_common.time, "monotonic", lambda: 5.0)  # no time passes at all
    with _common.progress_display() as progress:
        progress(study.Step("starting the judges", 0, None))
        progress(study.Step("judging", 0, 4))
        progress(study.Step("judging", 1, 4))
    assert buffer.getvalue().splitlines() == ["starting the judges: 0", "judging: 0/4"]


def test_a_corpus_build_cut_short_leaves_no_temporary_files(tmp_path):
    seen_partial = []

    def interrupt(step: study.Step) -> None:
        partial = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
        if partial:  # the build has started writing: cut it here, as Ctrl-C would
            seen_partial.extend(partial)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        study.build_corpus(Workspace(tmp_path), "sharegpt", [], interrupt)
    assert seen_partial, "the build was never caught mid-write: the test would prove nothing"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no .tmp, no half table, no funnel
