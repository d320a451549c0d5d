"""Calibrate and lock: per judge an isotonic map to the human scale, a panel aggregate, held-out figures, the lock."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, SelectionList, Static

from empathy_study.study import calibrate
from empathy_study.study.lock import MIN_ALPHA, below_floor
from empathy_study.study.tui.dialogs import Confirm
from empathy_study.study.tui.screens.base import StudyScreen
from empathy_study.study.tui.widgets import confusion_text, fill_table, number, short_version
from empathy_study.study.workspace import StudyError

FIT_COLUMNS = ["rater", "MAE", "α", "arm≠gold"]


class FitReady(Message):
    def __init__(self, key: tuple, result: calibrate.CalibrationFit | None, error: str | None = None) -> None:
        super().__init__()
        self.key, self.result, self.error = key, result, error


class Locked(Message):
    def __init__(self, construct: str, path: str | None, error: str | None = None) -> None:
        super().__init__()
        self.construct, self.path, self.error = construct, path, error


class CalibrateScreen(StudyScreen):
    """Per judge an isotonic map to the human scale and a panel aggregate, judged on held-out folds; lock."""

    BINDINGS = [
        Binding("s", "source", "Source"),
        Binding("g", "aggregate", "Aggregate"),
        Binding("v", "version", "Rubric"),
        Binding("l", "lock", "Lock"),
        Binding("L", "lock(True)", "Lock below the floor", show=False),
    ]
    source: str = "score"
    how: str = "mean"
    version: str | None = None
    result: calibrate.CalibrationFit | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="context", classes="context")
        with Horizontal(id="fit-row"):
            yield SelectionList[str](id="fit-judges")
            yield DataTable(id="fit-table", cursor_type="none")
        yield Static(id="fit-detail")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        fill_table(self.query_one("#fit-table", DataTable), FIT_COLUMNS, [])

    def versions(self) -> list[str]:
        """Rubric versions to fit under: the construct's claim first (labels exist under it), then the
        current rubric, then the judges' other versions."""
        construct = self.app.construct
        found = [v for _, v in self.data.rater_versions(construct)]
        return list(dict.fromkeys([self.data.claims[construct], self.data.versions[construct], *found]))

    def rubric_note(self, version: str) -> str:
        """What fitting under `version` means when it is not the study's current rubric."""
        current = self.data.versions[self.app.construct]
        if version == current:
            return ""
        return (f"\nnot the current rubric ({short_version(current)}): judges and labels under "
                f"{short_version(version)}; export stays on it until labels under the current rubric exist")

    def action_source(self) -> None:
        self.source = calibrate.SOURCES[(calibrate.SOURCES.index(self.source) + 1) % len(calibrate.SOURCES)]
        self.recompute()

    def action_aggregate(self) -> None:
        self.how = calibrate.AGGREGATES[(calibrate.AGGREGATES.index(self.how) + 1) % len(calibrate.AGGREGATES)]
        self.recompute()

    def action_version(self) -> None:
        versions = self.versions()
        self.version = versions[(versions.index(self.version) + 1) % len(versions)] if self.version in versions \
            else versions[0]
        self.recompute()

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.version not in self.versions():
            self.version = self.versions()[0]
        judges = self.query_one("#fit-judges", SelectionList)
        chosen = set(judges.selected) if judges.option_count else set(self.data.judges)
        with judges.prevent(SelectionList.SelectedChanged):
            judges.clear_options()
            judges.add_options([(name, name, name in chosen) for name in self.data.judges])
        self.recompute()

    @on(SelectionList.SelectedChanged, "#fit-judges")
    def judges_changed(self) -> None:
        self.recompute()

    def settings(self) -> tuple:
        chosen = tuple(self.query_one("#fit-judges", SelectionList).selected)
        return (self.app.generation, self.app.construct, self.version, chosen, self.source, self.how)

    def recompute(self) -> None:
        key = self.settings()
        self.query_one("#context", Static).update(Text(
            f"{key[1].upper()} · rubric {short_version(self.version)} · source {self.source} (s) · aggregate "
            f"{self.how} (g) · judges: space toggles · fitting…"))
        self.fit(key)

    @work(thread=True, exclusive=True, group="fit")
    def fit(self, key: tuple) -> None:
        _, construct, version, chosen, source, how = key
        try:
            result = calibrate.fit(self.data, construct, list(chosen), version=version, source=source, how=how)
        except StudyError as exc:
            self.post_message(FitReady(key, None, str(exc)))
            return
        self.post_message(FitReady(key, result))

    def on_fit_ready(self, message: FitReady) -> None:
        if message.key != self.settings():
            return  # the settings changed while it ran; a newer fit is on its way
        self.result = message.result
        table = self.query_one("#fit-table", DataTable)
        fill_table(table, FIT_COLUMNS, [])
        detail = self.query_one("#fit-detail", Static)
        if message.result is None:
            self.query_one("#context", Static).update(Text(
                f"{self.app.construct.upper()} · source {self.source} (s) · aggregate {self.how} (g) · cannot fit"))
            detail.update(Text(message.error or ""))
            return
        r = message.result
        self.query_one("#context", Static).update(Text(
            f"{r.construct.upper()} · rubric {short_version(r.version)} (v) · source {r.source} (s) · aggregate "
            f"{r.how} (g)\n{len(r.units)} gold pairs ({r.dropped} without every chosen judge) · labels under the same "
            f"rubric · {r.folds} folds grouped by user · figures held out" + self.rubric_note(r.version)))
        rows = []
        for name in [*r.judges, calibrate.PANEL]:
            b, a = r.before[name], r.after[name]
            rows.append((name, f"{number(b['mae'])} → {number(a['mae'])}", f"{number(b['alpha'])} → {number(a['alpha'])}",
                         f"{number(b['flip'])} → {number(a['flip'])}"))
        fill_table(table, FIT_COLUMNS, rows)
        grid = Table.grid(padding=(0, 3))
        grid.add_row(confusion_text(r.before[calibrate.PANEL]["confusion"], "before: raw mean"),
                     confusion_text(r.after[calibrate.PANEL]["confusion"], "after: held out"))
        lines = Text(
            f"ceiling α {number(r.ceiling['ceiling'])} · calibrated panel α {number(r.ceiling['judge'])} on the same "
            f"{r.ceiling['n']} pairs (gap {number(r.ceiling['gap'], signed=True)})\n"
            f"on the sample: {r.coverage[0]} of {r.coverage[1]} pairs scored by every chosen judge; arm "
            f"changes for {number(None if r.arm_change is None else 100 * r.arm_change, 1)} %\n"
            + (f"weights: {', '.join(f'{n} {w:.2f}' for n, w in zip(r.judges, r.cross.final.weights))}\n"
               if r.cross.final.weights is not None else "")
            + ("l locks it into calibration.json; `empathy export` applies the lock" if not below_floor(
                r.after[calibrate.PANEL]["alpha"]) else
               f"held-out α below the floor of {MIN_ALPHA} a lock needs: l refuses; L locks anyway, recorded as an "
               "override"))
        outer = Table.grid()
        outer.add_row(grid)
        outer.add_row(lines)
        detail.update(outer)

    def action_lock(self, override: bool = False) -> None:
        r = self.result
        if r is None or r.units == [] or self.settings() != (self.app.generation, r.construct, r.version,
                                                              tuple(r.judges), r.source, r.how):
            self.notify("nothing fitted to lock yet", severity="warning")
            return
        after = r.after[calibrate.PANEL]
        below = below_floor(after["alpha"])
        if below and not override:
            self.notify(f"not locked: held-out α {number(after['alpha'])} is below the floor of {MIN_ALPHA} a lock "
                        "needs. Improve the rubric or the panel — or press L to lock anyway, recorded in the lock as "
                        "an override", severity="error", timeout=10)
            return
        current = self.data.versions[r.construct]
        details = (f"{r.construct}: judges {', '.join(r.judges)} @ {r.version}, source {r.source}, aggregate {r.how}\n"
                   f"held-out MAE {number(after['mae'])}, α {number(after['alpha'])} on {len(r.units)} gold pairs\n"
                   f"covers {r.coverage[0]} of {r.coverage[1]} sample pairs\n"
                   + (f"NOT the current rubric ({current}): export applies this lock while the gold labels are under "
                      f"{r.version}\n" if r.version != current else "")
                   + (f"BELOW THE FLOOR of {MIN_ALPHA}: the lock records the override, and export and estimate say "
                      "so\n" if below else "")
                   + ("SIMULATED labels: the lock will say so\n" if self.data.simulated else "")
                   + "writes calibration.json (with bootstrap intervals: takes a few seconds)")
        question = (f"Lock {r.construct} below the agreement floor?" if below else
                    f"Lock the calibration of {r.construct}?")
        self.app.push_screen(Confirm(question, details), lambda yes: self.write_lock(r, below) if yes else None)

    @work(thread=True, exclusive=True, group="lock")
    def write_lock(self, result: calibrate.CalibrationFit, override: bool = False) -> None:
        try:
            path = calibrate.lock(self.data, result, boot=self.app.lock_boot, now=self.app.clock, override=override)
        except (StudyError, OSError) as exc:
            self.post_message(Locked(result.construct, None, str(exc)))
            return
        self.post_message(Locked(result.construct, str(path)))

    def on_locked(self, message: Locked) -> None:
        if message.error:
            self.notify(message.error, severity="error")
            return
        self.notify(f"locked {message.construct} → {message.path}")
        self.app.reload()
