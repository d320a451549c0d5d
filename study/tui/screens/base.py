"""What every screen of the calibration app shares."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Header

from empathy_study.study import calibrate


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
