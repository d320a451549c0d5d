"""The four screens: overview, disagreements, rubric and run, calibrate and lock.

Screens show what the stage functions return (`study.calibrate`, `study.run_judges`); slow work
(bootstrap intervals, judge runs, fits, the lock) runs in thread workers that post messages back.
"""

from __future__ import annotations

import threading

import numpy as np
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, SelectionList, Static, TextArea

from empathy_study import judge, study
from empathy_study.annotation import calibration as stats
from empathy_study.study import calibrate
from empathy_study.study.progress import Step
from empathy_study.study.tui.dialogs import Confirm
from empathy_study.study.workspace import StudyError

AGGREGATES = stats.AGGREGATES


def number(value, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
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


def short_version(version: str) -> str:
    return version[:8] if len(version) > 8 and "+" not in version[:8] else version[:10]


def confusion_text(confusion: list[list[int]], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False, show_edge=False)
    table.add_column("score↓ gold→")
    for name in stats.CLASSES:
        table.add_column(name, justify="right")
    for name, row in zip(stats.CLASSES, confusion):
        table.add_row(name, *(str(v) for v in row))
    return table


class StudyScreen(Screen):
    """A screen that redraws when the construct changes or the study was read again."""

    shown: tuple | None = None

    def compose_frame(self) -> ComposeResult:
        yield Header()

    def on_screen_resume(self) -> None:
        if self.shown != (self.app.generation, self.app.construct):
            self.refresh_view()

    def refresh_view(self) -> None:
        self.shown = (self.app.generation, self.app.construct)

    @property
    def data(self) -> calibrate.CalibrationData:
        return self.app.data


# ---------------------------------------------------------------------------------------------- overview


class IntervalsReady(Message):
    def __init__(self, key: tuple, overview: calibrate.Overview) -> None:
        super().__init__()
        self.key, self.overview = key, overview


class OverviewScreen(StudyScreen):
    """Judge (and panel) × rubric version against the blind gold labels of one construct."""

    BINDINGS = [Binding("v", "label_version", "Label version")]
    label_version: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="context", classes="context")
        yield DataTable(id="matrix", cursor_type="row", cell_padding=0)
        yield Static(id="detail")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#matrix", DataTable)
        table.add_columns("  rater", *(f" {c}" for c in ("rubric", "α [95% CI]", "κ", "MAE", "bias", "n",
                                                           "gap [95% CI]")))

    def action_label_version(self) -> None:
        versions = self.data.label_versions(self.app.construct)
        if len(versions) < 2:
            self.notify("the gold labels of this construct were all made under one rubric version")
            return
        current = self.label_version or versions[0]
        self.label_version = versions[(versions.index(current) + 1) % len(versions)]
        self.refresh_view()

    def key(self, intervals: bool) -> tuple:
        return (self.app.generation, self.app.construct, self.label_version, intervals)

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.label_version not in self.data.label_versions(self.app.construct):
            self.label_version = None
        cached = self.app.overviews.get(self.key(True)) or self.app.overviews.get(self.key(False))
        if cached is None:
            cached = calibrate.overview(self.data, self.app.construct, self.label_version)
            self.app.overviews[self.key(False)] = cached
        self.show(cached, self.key(True) in self.app.overviews)
        if self.key(True) not in self.app.overviews and self.app.boot:
            self.intervals(self.key(True))

    @work(thread=True, exclusive=True, group="intervals")
    def intervals(self, key: tuple) -> None:
        _, construct, label_version, _ = key
        found = calibrate.overview(self.data, construct, label_version, boot=self.app.boot)
        self.post_message(IntervalsReady(key, found))

    def on_intervals_ready(self, message: IntervalsReady) -> None:
        self.app.overviews[message.key] = message.overview
        if message.key == self.key(True):
            self.show(message.overview, True)

    def show(self, overview: calibrate.Overview, intervals: bool) -> None:
        gold, ceiling = overview.gold, overview.ceiling
        if not gold.units:
            root = self.data.study.root
            self.query_one("#context", Static).update(Text(
                f"{overview.construct.upper()} · no blind gold labels yet: `empathy annotate push {root}`, label the "
                f"audit sample in Label Studio, then `empathy annotate pull {root}`"))
            self.query_one("#matrix", DataTable).clear()
            self.rows = {}
            self.query_one("#detail", Static).update("")
            return
        lines = [f"{overview.construct.upper()} · gold: {len(gold.units)} pairs, {len(gold.annotators)} annotators, "
                 f"labels under rubric {short_version(gold.label_version)}"
                 + (f" (+{sum(gold.other_versions.values())} labels under other versions, not pooled)"
                    if gold.other_versions else ""),
                 f"human ceiling α {interval(ceiling['alpha'], ceiling['ci'])} on {ceiling['n']} pairs with ≥ 2 "
                 f"annotators" + ("" if intervals or not self.app.boot else " · intervals: computing…")]
        locked = (self.data.lock or {}).get("constructs", {}).get(overview.construct)
        if locked:
            after = locked["evidence"]["after_held_out"].get("panel", {})
            lines.append(f"LOCKED (*): {'+'.join(j['name'] for j in locked['judges'])}, {locked['aggregate']['how']}"
                         f", held-out α {interval(after.get('alpha'), after.get('ci'))}")
        else:
            lines.append("not locked: export writes the raw panel mean (press 4 to calibrate and lock)")
        self.query_one("#context", Static).update(Text("\n".join(lines)))
        table = self.query_one("#matrix", DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in overview.rows:
            f = row.figures
            name = ("* " if row.locked else "  ") + row.rater
            version = short_version(row.version) + (" ◂" if row.current else "")
            gap = interval(row.gap["gap"], row.gap["gap_ci"]) if row.gap else "…" if self.app.boot else "—"
            cells = (version, interval(f["alpha"], f["ci"]), number(f["kappa"]), number(f["mae"]),
                     number(f["bias"], signed=True), str(f["n"]), gap)
            table.add_row(name[:14], *(f" {c}" for c in cells), key=f"{row.rater}@{row.version}")
        self.rows = {f"{r.rater}@{r.version}": r for r in overview.rows}
        if overview.rows:
            table.move_cursor(row=min(cursor, len(overview.rows) - 1))
            self.show_detail(overview.rows[table.cursor_row])
        else:
            self.query_one("#detail", Static).update("no judge has scored a gold pair of this construct yet")

    @on(DataTable.RowHighlighted, "#matrix")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        row = getattr(self, "rows", {}).get(event.row_key.value)
        if row is not None:
            self.show_detail(row)

    def show_detail(self, row: calibrate.OverviewRow) -> None:
        f = row.figures
        facts = Text(
            f"{row.rater} @ {short_version(row.version)}{' (current rubric)' if row.current else ''}\n"
            f"failed {number(None if row.fail_rate is None else 100 * row.fail_rate, 1)} % of items\n"
            f"${number(row.cost_per_1k, 4)} per 1k pairs\n"
            f"scored {row.pairs_scored} of {len(self.data.sample)} sample pairs\n"
            f"arm ≠ gold: {number(None if f['flip'] is None else 100 * f['flip'], 1)} % of gold\n"
            f"rule: treated ≥ {self.data.rule[0]:g}, control ≤ {self.data.rule[1]:g}\n"
            + ("unrounded panel mean" if row.rater == calibrate.PANEL else "α, κ: pairwise with annotators"))
        grid = Table.grid(padding=(0, 3))
        grid.add_row(facts, confusion_text(f["confusion"], "treatment class"))
        self.query_one("#detail", Static).update(grid)


# ---------------------------------------------------------------------------------------------- disagreements


SORTS = ("|Δ|", "Δ", "gold", "score", "pair")


class DisagreementsScreen(StudyScreen):
    """Gold pairs where the judges and people differ most: dialogue, every rating, rationales, the rubric."""

    BINDINGS = [
        Binding("j", "rater", "Judge"),
        Binding("v", "version", "Rubric"),
        Binding("s", "sort", "Sort"),
        Binding("m", "model", "Model"),
        Binding("t", "topic", "Topic"),
    ]
    rater: str = calibrate.PANEL
    version: str | None = None
    sort: str = SORTS[0]
    model: str | None = None
    topic: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="context", classes="context")
        yield DataTable(id="pairs", cursor_type="row")
        with VerticalScroll(id="pair-detail"):
            yield Static(id="pair-text")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#pairs", DataTable)
        table.add_column("pair", width=12, key="pair")  # the whole pair id, shown cut to 12 characters
        table.add_columns("model", "topic", "gold", "score", "Δ", "ann")

    def raters(self) -> list[str]:
        return ([calibrate.PANEL] if len(self.data.judges) > 1 else []) + self.data.judges

    def versions(self) -> list[str]:
        pairs = self.data.rater_versions(self.app.construct)
        names = self.data.judges if self.rater == calibrate.PANEL else [self.rater]
        found = [v for _, v in pairs if all((n, v) in pairs for n in names)]
        return list(dict.fromkeys(found)) or [self.data.versions[self.app.construct]]

    def cycle(self, attribute: str, options: list) -> None:
        current = getattr(self, attribute)
        setattr(self, attribute, options[(options.index(current) + 1) % len(options)] if current in options else options[0])
        self.show_rows()

    def action_rater(self) -> None:
        self.cycle("rater", self.raters())
        self.version = None

    def action_version(self) -> None:
        self.cycle("version", self.versions())

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.apply_sort()

    def action_model(self) -> None:
        self.cycle("model", [None, *sorted(self.frame["model"].unique())])

    def action_topic(self) -> None:
        self.cycle("topic", [None, *sorted(self.frame["topic"].unique())])

    def refresh_view(self) -> None:
        super().refresh_view()
        if self.rater not in self.raters():
            self.rater = self.raters()[0]
        self.show_rows()

    def show_rows(self) -> None:
        """Recompute (a new construct, rater or rubric) or refilter, then redraw the rows."""
        construct = self.app.construct
        if self.version not in self.versions():
            self.version = self.versions()[0]
        key = (self.app.generation, construct, self.rater, self.version)
        if getattr(self, "frame_key", None) != key:  # a filter reuses the computed frame
            self.frame, self.frame_key = calibrate.disagreements(self.data, construct, self.rater, self.version), key
        shown = self.frame
        if self.model is not None:
            shown = shown[shown["model"] == self.model]
        if self.topic is not None:
            shown = shown[shown["topic"] == self.topic]
        self.shown_count = len(shown)
        table = self.query_one("#pairs", DataTable)
        table.clear()
        table.add_rows([(r.pair_id, str(r.model)[:14], str(r.topic)[:14], number(r.gold, 1), number(r.score, 1),
                         number(r.difference, 1, signed=True), str(r.annotators)) for r in shown.itertuples()],
                       )
        self.apply_sort()

    def sort_key(self):
        """The current sort as a key on a row's pair id: unscored pairs last, ties by pair id."""
        frame = self.frame.set_index("pair_id")
        far = float("inf")
        if self.sort == "pair":
            return lambda pair_id: pair_id
        values = {"|Δ|": -frame["difference"].abs(), "Δ": frame["difference"], "gold": -frame["gold"],
                  "score": -frame["score"]}[self.sort].fillna(far).to_dict()
        return lambda pair_id: (values[pair_id], pair_id)

    def apply_sort(self) -> None:
        """Re-sort in place (DataTable's own sort: the rows are not rebuilt)."""
        table = self.query_one("#pairs", DataTable)
        table.sort("pair", key=self.sort_key())
        self.pair_ids = [table.get_row_at(i)[0] for i in range(table.row_count)]
        self.query_one("#context", Static).update(Text(
            f"{self.app.construct.upper()} · {self.rater} @ {short_version(self.version)} · sort {self.sort} · "
            f"model {self.model or 'all'} · topic {self.topic or 'all'} · {self.shown_count} of {len(self.frame)} "
            "gold pairs"))
        if self.pair_ids:
            table.move_cursor(row=0)
            self.show_pair(self.pair_ids[0])
        else:
            self.query_one("#pair-text", Static).update("no gold pair matches")

    @on(DataTable.RowHighlighted, "#pairs")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(getattr(self, "pair_ids", [])):
            self.show_pair(self.pair_ids[event.cursor_row])

    def show_pair(self, pair_id: str) -> None:
        construct = self.app.construct
        detail = calibrate.pair_detail(self.data, construct, pair_id)
        rubric = self.data.rubrics[construct]
        body = Text()
        body.append(f"{pair_id}\n", style="bold")
        labels = {"prompt": "User", "response": "Assistant", "reply": "User (next)"}
        for name in rubric.context:
            body.append(f"{labels[name]}: ", style="bold")
            body.append(detail.texts.get(name, "")[:600] + "\n")
        if "response" not in rubric.context:
            body.append("(the response is hidden from raters of this construct)\n", style="italic")
        body.append("annotators: " + (", ".join(f"{a} {s:g}" for a, s in detail.annotators.items()) or "none") + "\n")
        for j in detail.judges:
            expected = f" (expected {j['expected_score']:.2f})" if j["expected_score"] is not None and \
                np.isfinite(j["expected_score"]) else ""
            body.append(f"{j['judge']} @ {short_version(j['version'])}: {j['score']:g}{expected} — {j['rationale']}\n")
        gold = [s for s in detail.annotators.values()]
        levels = Table(box=None, pad_edge=False, expand=True)
        levels.add_column("gold level")
        levels.add_column(f"{self.rater} level")
        mine = self.frame.loc[self.frame["pair_id"] == pair_id, "score"]
        gold_level = int(stats.to_levels([np.mean(gold)])[0]) if gold else None
        rater_level = int(stats.to_levels(mine.to_numpy())[0]) if len(mine) and np.isfinite(mine.iloc[0]) else None
        levels.add_row(f"{gold_level} = {rubric.levels[gold_level]}" if gold_level else "—",
                       f"{rater_level} = {rubric.levels[rater_level]}" if rater_level else "—")
        grid = Table.grid()
        grid.add_row(body)
        grid.add_row(levels)
        self.query_one("#pair-text", Static).update(grid)


# ---------------------------------------------------------------------------------------------- rubric and run


class RunProgress(Message):
    def __init__(self, step: Step) -> None:
        super().__init__()
        self.step = step


class RunFinished(Message):
    def __init__(self, summary: str, error: str | None = None) -> None:
        super().__init__()
        self.summary, self.error = summary, error


class RubricScreen(StudyScreen):
    """Edit the study's copy of a rubric; run chosen judges with it on the gold pairs."""

    BINDINGS = [
        Binding("e", "edit", "Edit"),
        Binding("escape", "done", "Done", priority=True),
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+r", "run", "Run gold", priority=True),
        Binding("ctrl+t", "stop", "Stop", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.drafts: dict[str, str] = {}
        self.stop_event = threading.Event()
        self.running = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="context", classes="context")
        yield TextArea(id="editor", soft_wrap=True)
        with Horizontal(id="run-row"):
            yield SelectionList[str](id="judge-list")
            with VerticalScroll(id="run-status"):
                yield ProgressBar(id="progress", show_eta=False)
                yield Static("no run yet: ctrl+r runs the chosen judges on the gold pairs", id="counters")
        yield Footer(compact=True, show_command_palette=False)

    def refresh_view(self) -> None:
        previous = getattr(self, "editing", None)
        if previous is not None:  # keep unsaved edits of the construct left behind
            text = self.query_one("#editor", TextArea).text
            if text != calibrate.rubric_text(self.data.study, previous):
                self.drafts[previous] = text
            else:
                self.drafts.pop(previous, None)
        super().refresh_view()
        construct = self.app.construct
        self.editing = construct
        text = self.drafts.get(construct) or calibrate.rubric_text(self.data.study, construct)
        self.query_one("#editor", TextArea).load_text(text)
        judges = self.query_one("#judge-list", SelectionList)
        chosen = set(judges.selected) if judges.option_count else set(self.data.judges)
        judges.clear_options()
        judges.add_options([(name, name, name in chosen) for name in self.data.judges])
        self.describe()

    def on_mount(self) -> None:
        self.query_one("#progress", ProgressBar).display = False  # shown once a run reports progress
        self.query_one("#judge-list", SelectionList).focus()

    def action_edit(self) -> None:
        self.query_one("#editor", TextArea).focus()

    def action_done(self) -> None:
        self.query_one("#judge-list", SelectionList).focus()

    def describe(self) -> None:
        construct = self.app.construct
        copy = self.data.study.rubric_copy(construct)
        where = f"study copy {copy.relative_to(self.data.study.root)}" if copy.exists() else \
            "packaged rubric (ctrl+s saves a copy into the study)"
        self.query_one("#context", Static).update(Text(
            f"{construct.upper()} rubric · {where} · version {self.data.versions[construct]}\n"
            f"gold pairs: {len(calibrate.gold_pairs(self.data))} · judges and Label Studio read this text · "
            "e edits, esc leaves the editor"))

    def action_save(self) -> None:
        construct = self.app.construct
        try:
            rubric = calibrate.save_rubric(self.data.study, construct, self.query_one("#editor", TextArea).text)
        except StudyError as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return
        self.drafts.pop(construct, None)
        self.notify(f"saved {self.data.study.rubric_copy(construct).name}: rubric version {rubric.version}")
        self.data.versions[construct] = rubric.version
        self.data.rubrics[construct] = rubric
        self.app.reload()

    def action_run(self) -> None:
        if self.running:
            self.notify("a run is in progress (ctrl+t stops it)", severity="warning")
            return
        chosen = list(self.query_one("#judge-list", SelectionList).selected)
        pairs = calibrate.gold_pairs(self.data)
        if not chosen or not pairs:
            self.notify("choose at least one judge" if not chosen else "there are no gold pairs to judge",
                        severity="error")
            return
        self.running = True
        self.stop_event.clear()
        self.query_one("#counters", Static).update(f"starting {', '.join(chosen)} on {len(pairs)} gold pairs…")
        self.run_judges(chosen, pairs)

    def action_stop(self) -> None:
        if self.running:
            self.stop_event.set()
            self.query_one("#counters", Static).update("stopping: calls in flight finish and are kept…")

    @work(thread=True, exclusive=True, group="run")
    def run_judges(self, judges: list[str], pairs: list[str]) -> None:
        try:
            result = study.run_judges(self.data.study, pairs=pairs, judges=judges,
                                      progress=lambda step: self.post_message(RunProgress(step)),
                                      stop=self.stop_event.is_set)
        except (judge.JudgeError, StudyError) as exc:
            self.post_message(RunFinished("", str(exc)))
            return
        if result.summary is None:
            self.post_message(RunFinished("nothing to do: every chosen judge has already judged these pairs "
                                          "under the current rubric"))
            return
        tallies = result.summary.tallies.values()
        ok, failed = sum(t.ok for t in tallies), sum(t.failed for t in tallies)
        cost = sum(t.cost_usd for t in tallies)
        state = "stopped" if result.summary.cancelled else "done"
        self.post_message(RunFinished(f"{state}: {ok} judged, {failed} failed, ${cost:.4f} "
                                      f"({result.plan.calls - ok - failed} left for a later run)"))

    def on_run_progress(self, message: RunProgress) -> None:
        step = message.step
        bar = self.query_one("#progress", ProgressBar)
        bar.display = True
        bar.update(total=step.total, progress=step.done)
        counters = "  ".join(f"{k.replace('_', ' ')} {v:,.4g}" for k, v in step.counters.items())
        self.query_one("#counters", Static).update(f"{step.name}: {step.done}/{step.total or '?'}  {counters}")

    def on_run_finished(self, message: RunFinished) -> None:
        self.running = False
        if message.error:
            self.query_one("#counters", Static).update(f"run failed: {message.error}")
            self.notify(message.error, severity="error", timeout=8)
        else:
            self.query_one("#counters", Static).update(message.summary)
            self.notify(message.summary)
        self.app.reload()


# ---------------------------------------------------------------------------------------------- calibrate and lock


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
        self.query_one("#fit-table", DataTable).add_columns("rater", "MAE", "α", "arm≠gold")

    def versions(self) -> list[str]:
        current = self.data.versions[self.app.construct]
        found = [v for _, v in self.data.rater_versions(self.app.construct)]
        return list(dict.fromkeys([current, *found]))

    def action_source(self) -> None:
        self.source = calibrate.SOURCES[(calibrate.SOURCES.index(self.source) + 1) % len(calibrate.SOURCES)]
        self.recompute()

    def action_aggregate(self) -> None:
        self.how = AGGREGATES[(AGGREGATES.index(self.how) + 1) % len(AGGREGATES)]
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
        table.clear()
        detail = self.query_one("#fit-detail", Static)
        if message.result is None:
            self.query_one("#context", Static).update(Text(
                f"{self.app.construct.upper()} · source {self.source} (s) · aggregate {self.how} (g) · cannot fit"))
            detail.update(Text(message.error or ""))
            return
        r = message.result
        self.query_one("#context", Static).update(Text(
            f"{r.construct.upper()} · rubric {short_version(r.version)} (v) · source {r.source} (s) · aggregate "
            f"{r.how} (g)\n{len(r.units)} gold pairs ({r.dropped} without every chosen judge) · labels under "
            f"{short_version(r.label_version)} · {r.folds} folds grouped by user · figures held out"))
        for name in [*r.judges, calibrate.PANEL]:
            b, a = r.before[name], r.after[name]
            table.add_row(name, f"{number(b['mae'])} → {number(a['mae'])}",
                          f"{number(b['alpha'])} → {number(a['alpha'])}",
                          f"{number(b['flip'])} → {number(a['flip'])}")
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
            + "l locks it into calibration.json; `empathy export` applies the lock")
        outer = Table.grid()
        outer.add_row(grid)
        outer.add_row(lines)
        detail.update(outer)

    def action_lock(self) -> None:
        r = self.result
        if r is None or r.units == [] or self.settings() != (self.app.generation, r.construct, r.version,
                                                              tuple(r.judges), r.source, r.how):
            self.notify("nothing fitted to lock yet", severity="warning")
            return
        after = r.after[calibrate.PANEL]
        details = (f"{r.construct}: judges {', '.join(r.judges)} @ {r.version}, source {r.source}, aggregate {r.how}\n"
                   f"held-out MAE {number(after['mae'])}, α {number(after['alpha'])} on {len(r.units)} gold pairs\n"
                   f"covers {r.coverage[0]} of {r.coverage[1]} sample pairs\n"
                   + ("SIMULATED labels: the lock will say so\n" if self.data.simulated else "")
                   + "writes calibration.json (with bootstrap intervals: takes a few seconds)")
        self.app.push_screen(Confirm(f"Lock the calibration of {r.construct}?", details),
                             lambda yes: self.write_lock(r) if yes else None)

    @work(thread=True, exclusive=True, group="lock")
    def write_lock(self, result: calibrate.CalibrationFit) -> None:
        try:
            path = calibrate.lock(self.data, result, boot=self.app.lock_boot, now=self.app.clock)
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

