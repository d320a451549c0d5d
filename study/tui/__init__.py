"""`empathy calibrate DIR`: the calibration app (Textual) over the study library.

`make_app(workspace)` reads the study once (`study.calibrate.load`) and returns the app; the
screens (`screens/`) call the same stage functions as the CLI (`calibrate.overview`, `fit`, `lock`,
`study.run_judges`) and draw what they return with `widgets`; they hold no statistics of their own
(an import contract in pyproject.toml keeps numpy, pandas and the statistics out of this package).
"""

from empathy_study.study.tui.app import CalibrateApp, make_app

__all__ = ["CalibrateApp", "make_app"]
