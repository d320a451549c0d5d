"""Rubric and run: edit the study's copy of a rubric, re-judge the gold pairs with it."""

from __future__ import annotations

import threading

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Footer, Header, ProgressBar, SelectionList, Static, TextArea

from empathy_study import judge, study
from empathy_study.study import calibrate
from empathy_study.study.progress import Step
from empathy_study.study.tui.screens.base import StudyScreen
from empathy_study.study.workspace import StudyError


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
        if self.data.simulated:
            message = ("SIMULATED study: its judges (sim-…) were drawn from a planted truth and no model answers to "
                       "them — ctrl+r runs real judges only, on a study of your own")
            self.query_one("#counters", Static).update(message)
            self.notify(message, severity="error", timeout=8)
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
        summary = result.summary
        state = "stopped" if summary.cancelled else "done"
        self.post_message(RunFinished(f"{state}: {summary.ok} judged, {summary.failed} failed, ${summary.cost_usd:.4f} "
                                      f"({result.left} left for a later run)"))

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
