"""The four screens of the calibration app: overview, disagreements, rubric and run, calibrate and lock.

Screens show what the stage functions return (`study.calibrate`, `study.run_judges`) through the
formatters of `study.tui.widgets`; slow work (bootstrap intervals, judge runs, fits, the lock) runs in
thread workers that post messages back.
"""

from empathy_study.study.tui.screens.calibration import CalibrateScreen
from empathy_study.study.tui.screens.disagreements import DisagreementsScreen
from empathy_study.study.tui.screens.overview import OverviewScreen
from empathy_study.study.tui.screens.rubric import RubricScreen

__all__ = ["CalibrateScreen", "DisagreementsScreen", "OverviewScreen", "RubricScreen"]
