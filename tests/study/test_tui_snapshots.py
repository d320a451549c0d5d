"""Each screen of the calibration app at 80×24 on a fixed simulated study (seed 0, fixed clock).

Regenerate after an intended change of a screen (or of a packaged rubric, whose version the screens
show) with `pytest tests/study/test_tui_snapshots.py --snapshot-update`, and look at the report."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from empathy_study.study.tui import make_app
from tests.study.conftest import make_simulated

SIZE = (80, 24)
CLOCK = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)


async def settle(pilot) -> None:
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.fixture(scope="module")
def fixed_study(tmp_path_factory):
    return make_simulated(tmp_path_factory.mktemp("snapshots") / "study", n=120, gold=40)


@pytest.mark.parametrize("keys", [[], ["2"], ["3"], ["4"], ["4", "g", "g", "l"], ["4", "g", "L"], ["c", "1"]],
                         ids=["overview", "disagreements", "rubric", "calibrate", "lock-dialog", "lock-below-floor",
                              "overview-attachment"])
def test_screen(snap_compare, fixed_study, keys):
    async def run_before(pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    assert snap_compare(make_app(fixed_study, boot=20, lock_boot=20, clock=CLOCK), run_before=run_before,
                        terminal_size=SIZE)
