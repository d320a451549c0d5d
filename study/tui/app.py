"""The calibration app: four screens (modes) over one study read once, reloaded after a run or a lock."""

from __future__ import annotations

from datetime import datetime

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.message import Message

from empathy_study.shared import CONSTRUCTS
from empathy_study.study import calibrate
from empathy_study.study.tui.screens import CalibrateScreen, DisagreementsScreen, OverviewScreen, RubricScreen
from empathy_study.study.workspace import Workspace


class DataReloaded(Message):
    def __init__(self, data: calibrate.CalibrationData) -> None:
        super().__init__()
        self.data = data


class CalibrateApp(App):
    """See where the judges disagree with people, fix the rubric, calibrate, lock."""

    CSS_PATH = "calibrate.tcss"
    TITLE = "empathy calibrate"
    MODES = {"overview": OverviewScreen, "disagreements": DisagreementsScreen, "rubric": RubricScreen,
             "calibrate": CalibrateScreen}
    SCREENS_GROUP = Binding.Group("Screens", compact=True)
    BINDINGS = [
        Binding("1", "show('overview')", "Overview", group=SCREENS_GROUP),
        Binding("2", "show('disagreements')", "Disagreements", group=SCREENS_GROUP),
        Binding("3", "show('rubric')", "Rubric and run", group=SCREENS_GROUP),
        Binding("4", "show('calibrate')", "Calibrate and lock", group=SCREENS_GROUP),
        Binding("c", "construct", "Construct"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, data: calibrate.CalibrationData, *, boot: int = 200, lock_boot: int = 1_000,
                 clock: datetime | None = None) -> None:
        super().__init__()
        self.data = data
        self.construct = CONSTRUCTS[0]
        self.generation = 0  # bumped whenever the study is read again
        self.boot = boot  # bootstrap draws for the overview's intervals
        self.lock_boot = lock_boot  # … and for the evidence a lock records
        self.clock = clock  # a fixed time for tests and snapshots; None = now
        self.overviews: dict = {}  # (generation, construct, label version, with intervals) → Overview

    def crash_reason(self) -> str | None:
        """One line on what stopped the app, or None when it was quit (Textual sets a non-zero return code
        when an exception ended the app, after printing its traceback)."""
        if not self.return_code:
            return None
        return ("the calibration app stopped on an internal error (a bug; the traceback is above). Rubric copies "
                "and locks saved before it are kept")

    def on_mount(self) -> None:
        self.title = f"empathy calibrate · {self.data.config.study.name}"
        if self.data.simulated:
            self.sub_title = "SIMULATED"  # annotators and judges drawn from a planted truth
        else:
            self.sub_title = str(self.data.study.root)
        self.switch_mode("overview")
        self.prefetch()

    @work(thread=True, group="prefetch")
    def prefetch(self) -> None:
        """Read the gold pairs' texts while the overview is on screen (the disagreements screen shows them)."""
        data = self.data
        if len(data.labels):
            data.texts(str(data.labels["pair_id"].iloc[0]))

    def action_show(self, mode: str) -> None:
        self.switch_mode(mode)

    def action_construct(self) -> None:
        self.construct = CONSTRUCTS[(CONSTRUCTS.index(self.construct) + 1) % len(CONSTRUCTS)]
        self.screen.refresh_view()

    @work(thread=True, exclusive=True, group="reload")
    def reload(self) -> None:
        """Read the study again (after a judge run or a lock) without blocking the screens."""
        self.post_message(DataReloaded(calibrate.load(self.data.study)))

    def on_data_reloaded(self, message: DataReloaded) -> None:
        self.data = message.data
        self.generation += 1
        self.overviews.clear()
        self.screen.refresh_view()


def make_app(study: Workspace, *, boot: int = 200, lock_boot: int = 1_000, clock: datetime | None = None) -> CalibrateApp:
    """The app over one study; the study is read here, so a study that cannot be read fails before
    the terminal is taken over."""
    return CalibrateApp(calibrate.load(study), boot=boot, lock_boot=lock_boot, clock=clock)
