"""The calibration app driven like a user would: keys only, at 80×24 (Textual's pilot).

A run goes through `study.run_judges` against the fault-injecting fake endpoint (failures, cancel)
and, for two calls, the real local judge."""

from __future__ import annotations

import html
import json
import re
import time
from datetime import datetime, timezone

import pandas as pd
import pytest
from typer.testing import CliRunner

from empathy_study import judge, study
from empathy_study.study import calibrate
from empathy_study.study.cli import app as cli
from empathy_study.study.lock import MIN_ALPHA
from empathy_study.study.tui import make_app
from empathy_study.study.tui.screens import CalibrateScreen, DisagreementsScreen, OverviewScreen, RubricScreen
from empathy_study.study.workspace import StudyError, Workspace
from tests.judge.conftest import sample_frame, start_fake, write_study

SIZE = (80, 24)
CLOCK = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)


async def settle(pilot, rounds: int = 3) -> None:
    for _ in range(rounds):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def context(app) -> str:
    return str(app.screen.query_one("#context").render())


async def test_keys_move_between_the_four_screens_and_the_construct_follows(simulated_study):
    app = make_app(simulated_study, boot=10, lock_boot=10, clock=CLOCK)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, OverviewScreen) and context(app).startswith("EMPATHY")
        assert app.screen.query_one("#matrix").row_count == 5  # 3 judges, an older rubric of one, the panel
        assert "SIMULATED" in app.sub_title
        for key, kind in (("2", DisagreementsScreen), ("3", RubricScreen), ("4", CalibrateScreen)):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, kind)
        await pilot.press("c")
        await settle(pilot)
        assert context(app).startswith("ATTACHMENT")
        await pilot.press("1")
        await settle(pilot)
        assert context(app).startswith("ATTACHMENT")
        assert "[" in str(app.screen.query_one("#matrix").get_row_at(0)[2])  # the interval arrived from its worker


async def test_disagreements_sort_and_filter(simulated_study):
    app = make_app(simulated_study, boot=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#pairs")
        first = screen.frame.iloc[0]
        assert abs(first["difference"]) == screen.frame["difference"].abs().max()  # largest disagreement first
        await pilot.press("m")
        await settle(pilot)
        model = screen.model
        assert f"model {model}" in context(app)
        assert table.row_count == int((screen.frame["model"] == model).sum()) < len(screen.frame)
        await pilot.press("s")  # signed difference, most negative first
        await settle(pilot)
        shown = [float(table.get_row_at(i)[5]) for i in range(table.row_count)]
        assert shown == sorted(shown)
        await pilot.press("j")
        await settle(pilot)
        assert "sim-low @" in context(app)
        shown_now = app.export_screenshot()  # what the terminal shows
        assert "simulated-annotator" in shown_now and "SIMULATED" in shown_now


async def test_calibrate_shows_the_fit_and_lock_writes_it(simulated_study):
    app = make_app(simulated_study, boot=0, lock_boot=20, clock=CLOCK)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("g", "g")  # aggregate: non-negative weights fitted on gold
        await settle(pilot)
        assert "aggregate weights" in context(app)
        expected = calibrate.fit(app.data, "empathy", app.data.judges, how="weights")
        assert expected.after["panel"]["alpha"] >= MIN_ALPHA
        row = app.screen.query_one("#fit-table").get_row_at(3)
        assert row[0] == "panel" and row[1] == f"{expected.before['panel']['mae']:.2f} → {expected.after['panel']['mae']:.2f}"
        await pilot.press("l")
        await pilot.pause()
        assert "Lock the calibration of empathy" in str(app.screen.query_one("#question").render())
        await pilot.press("y")
        await settle(pilot, 4)
        lock = json.loads(simulated_study.calibration.read_text())
        entry = lock["constructs"]["empathy"]
        assert entry["aggregate"]["how"] == "weights" and [j["name"] for j in entry["judges"]] == app.data.judges
        assert entry["evidence"]["locked_at"] == CLOCK.isoformat(timespec="seconds")
        assert entry["evidence"]["after_held_out"]["panel"]["mae"] == pytest.approx(expected.after["panel"]["mae"])
        assert entry["evidence"]["override"] is None
        await pilot.press("1")
        await settle(pilot)
        assert "LOCKED (*)" in context(app)
        assert str(app.screen.query_one("#matrix").get_row_at(0)[0]).startswith("*")


async def test_a_lock_below_the_agreement_floor_is_refused_unless_overridden(simulated_study):
    """It went through at held-out α 0.00 (every pair then got the same calibrated score)."""
    app = make_app(simulated_study, boot=0, lock_boot=20, clock=CLOCK)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("g")  # aggregate: median
        await settle(pilot)
        weak = calibrate.fit(app.data, "empathy", app.data.judges, how="median")
        assert weak.after["panel"]["alpha"] < MIN_ALPHA
        assert "belowthefloor" in screen_letters(app)
        await pilot.press("l")
        await settle(pilot)
        assert isinstance(app.screen, CalibrateScreen) and not simulated_study.calibration.exists()
        assert any("below the floor" in str(n.message) for n in app._notifications)
        await pilot.press("L")  # the explicit override
        await pilot.pause()
        assert "below the agreement floor" in str(app.screen.query_one("#question").render())
        assert "BELOW THE FLOOR" in str(app.screen.query_one("#details").render())
        await pilot.press("y")
        await settle(pilot, 4)
    evidence = json.loads(simulated_study.calibration.read_text())["constructs"]["empathy"]["evidence"]
    assert evidence["override"]["floor"] == MIN_ALPHA
    assert evidence["override"]["alpha_held_out"] == pytest.approx(weak.after["panel"]["alpha"])


async def test_switching_the_judge_then_sorting_the_disagreements_does_not_crash(simulated_study):
    """`2`, `j`, `s` died in short_version(None): the rater's rubric version was reset after the redraw."""
    app = make_app(simulated_study, boot=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await settle(pilot)
        for key in ("j", "s", "j", "s", "v", "s"):
            await pilot.press(key)
            await settle(pilot)
        assert isinstance(app.screen, DisagreementsScreen) and app.screen.version is not None
        assert f"{app.screen.rater} @ " in context(app) and "sort" in context(app)
    assert app.return_code in (0, None)


async def test_declining_the_lock_writes_nothing(simulated_study):
    app = make_app(simulated_study, boot=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("l", "n")
        await settle(pilot)
        assert not simulated_study.calibration.exists() and isinstance(app.screen, CalibrateScreen)


def fake_study(root, url: str, prompts: list[str], gold: list[int], concurrency: int = 4):
    toml = f"""
[[judges]]
name = "fake"
model = "openai/fake"
api_base = "{url}/v1"
concurrency = {concurrency}
retries = 2
timeout = 2
input_cost_per_million = 1.0
output_cost_per_million = 2.0
"""
    sample = sample_frame(prompts)
    write_study(root, sample, toml)
    labels = [{"pair_id": sample["pair_id"][i], "construct": c, "annotator": f"a{k}", "score": 1 + (i + k) % 7,
               "mode": "blind", "annotation_id": 1, "updated_at": "2026", "prompt_version": "v"}
              for i in gold for c in ("empathy", "attachment") for k in (1, 2)]
    pd.DataFrame(labels).to_parquet(root / "labels.parquet")
    return Workspace(root)


async def test_an_edited_rubric_runs_on_the_gold_pairs_and_failures_are_counted(tmp_path, monkeypatch):
    process, url = start_fake()
    try:
        prompts = ["I feel FAULT:score9 today", "plain and calm", "FAULT:500x1 a bad week", "no labels here"]
        ws = fake_study(tmp_path / "study", url, prompts, gold=[0, 1, 2])
        app = make_app(ws, boot=0)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3")
            await settle(pilot)
            editor = app.screen.query_one("#editor")
            editor.load_text(editor.text.replace('instruction = """\n', 'instruction = """\nRead slowly.\n', 1))
            await pilot.press("ctrl+s")
            await settle(pilot)
            version = ws.config().prompt_versions()["empathy"]
            assert ws.rubric_copy("empathy").exists() and version in context(app)
            await pilot.press("ctrl+r")
            await settle(pilot, 6)
            counters = str(app.screen.query_one("#counters").render())
            records = judge.JudgmentLog(ws.judgments).read().records
            failed = [r for r in records if r.score is None]
            assert {r.pair_id for r in records} == {"p000", "p001", "p002"}  # the gold pairs, nothing else
            assert {r.prompt_version for r in records if r.construct == "empathy"} == {version}
            assert failed and all(r.pair_id == "p000" for r in failed)  # score 9 breaks the schema every time
            assert counters.startswith("done:") and f"{len(failed)} failed" in counters
            await pilot.press("1")
            await settle(pilot)
            row = app.screen.query_one("#matrix").get_row_at(0)
            assert "fake" in str(row[0]) and version[:8] in str(row[1])
            await pilot.press("3", "ctrl+r")  # a re-run: what is done costs nothing, failures retry
            await settle(pilot, 6)
            again = judge.JudgmentLog(ws.judgments).read().records
            assert {r.pair_id for r in again[len(records):]} <= {"p000"}
    finally:
        process.kill()
        process.wait()


async def test_cancel_keeps_everything_already_judged(tmp_path):
    process, url = start_fake(latency=0.4)
    try:
        ws = fake_study(tmp_path / "study", url, [f"a quiet evening {i}" for i in range(10)], gold=list(range(10)),
                        concurrency=1)
        planned = study.plan_judging(ws, pairs=list(pd.read_parquet(ws.sample)["pair_id"])).calls
        app = make_app(ws, boot=0)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("3", "ctrl+r")
            started = time.monotonic()
            while "judging: 2/" not in str(app.screen.query_one("#counters").render()):
                assert time.monotonic() - started < 60
                await pilot.pause(0.1)
            await pilot.press("ctrl+t")
            await settle(pilot, 6)
            counters = str(app.screen.query_one("#counters").render())
            assert counters.startswith("stopped:")
        records = judge.JudgmentLog(ws.judgments).read().records
        assert 2 <= len(records) < planned
        assert f"{len(records)} judged" in counters
        left = study.plan_judging(ws, pairs=list(pd.read_parquet(ws.sample)["pair_id"])).calls
        assert left == planned - len(records)  # nothing judged was lost; a re-run does only the rest
    finally:
        process.kill()
        process.wait()


async def test_the_local_judge_runs_from_the_app_on_one_gold_pair(tmp_path):
    """Two real calls (empathy and attachment of one pair) to SmolLM2 on llama.cpp."""
    sample = sample_frame(["I feel lonely tonight and nobody calls", "another pair"])
    # the default local judge, with a short answer budget: this test is about the app, not the judge
    write_study(tmp_path / "study", sample, '[[judges]]\nname = "smollm2"\nmodel = "local/smollm2"\n'
                'concurrency = 1\nmax_tokens = 48\n')
    pd.DataFrame([{"pair_id": "p000", "construct": c, "annotator": a, "score": 4, "mode": "blind",
                   "annotation_id": 1, "updated_at": "2026"} for c in ("empathy", "attachment") for a in ("a1", "a2")]
                 ).to_parquet(tmp_path / "study" / "labels.parquet")
    ws = Workspace(tmp_path / "study")
    app = make_app(ws, boot=0)
    started = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "ctrl+r")
        await settle(pilot, 6)
        counters = str(app.screen.query_one("#counters").render())
    records = judge.JudgmentLog(ws.judgments).read().records
    print(f"\nlocal judge, 2 calls from the app: {time.perf_counter() - started:.1f} s")
    assert len(records) == 2 and {r.construct for r in records} == {"empathy", "attachment"}
    assert all(r.model == "local/smollm2" and r.pair_id == "p000" for r in records)
    assert counters.startswith("done:")


def test_a_study_that_cannot_be_calibrated_fails_before_the_app_opens(tmp_path):
    with pytest.raises(StudyError, match="empathy corpus sample"):
        make_app(Workspace(tmp_path))
    result = CliRunner().invoke(cli, ["calibrate", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "error:" in result.output and "not a study directory" in result.output


def screen_letters(app) -> str:
    """What the terminal shows, without its spaces (the SVG spells them as non-breaking)."""
    svg = html.unescape(app.export_screenshot())
    return re.sub(r"\s", "", "".join(re.findall(r"<text[^>]*>(.*?)</text>", svg)))


async def test_cells_a_worker_widens_are_shown_whole_however_the_frames_fall(simulated_study):
    """The overview's intervals arrive from a worker and widen the α column. A frame drawn between their
    arrival and the table's next idle moment must not leave the cells cut to the old width (DataTable
    kept such frames: the calibrate snapshot failed that way on a loaded machine)."""
    app = make_app(simulated_study, boot=0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        screen.show(calibrate.overview(app.data, "empathy", boot=20), True)  # what IntervalsReady does
        app.export_screenshot()  # a frame before the table idles
        await settle(pilot)
        cell = str(screen.query_one("#matrix").get_row_at(0)[2]).strip()
        assert "[" in cell and re.sub(r"\s", "", cell) in screen_letters(app)


async def test_ctrl_r_on_a_simulated_study_says_it_is_simulated_and_calls_nothing(simulated_study):
    """It named a model LiteLLM cannot call (simulated/sim-low) instead."""
    logged = simulated_study.judgments.read_bytes()
    app = make_app(simulated_study, boot=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "ctrl+r")
        await settle(pilot, 4)
        counters = str(app.screen.query_one("#counters").render())
    assert counters.startswith("SIMULATED study") and "planted truth" in counters
    assert simulated_study.judgments.read_bytes() == logged  # not one failure record in the simulated log
    result = CliRunner().invoke(cli, ["judge", "run", str(simulated_study.root)])
    assert result.exit_code == 1 and "is a SIMULATED study" in result.output
    assert simulated_study.judgments.read_bytes() == logged


def test_a_crash_in_the_app_exits_non_zero_with_one_reason(simulated_study, monkeypatch):
    """A crash used to leave a traceback and exit code 0."""
    from textual.app import App

    from empathy_study.study.tui import CalibrateApp

    def broken(self) -> None:
        raise RuntimeError("planted fault")

    async def press(pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)

    monkeypatch.setattr(DisagreementsScreen, "action_sort", broken)
    # the command's own app, run headless with keys pressed (Textual's App.run itself is untouched)
    monkeypatch.setattr(CalibrateApp, "run", lambda self: App.run(self, headless=True, size=SIZE, auto_pilot=press))
    result = CliRunner().invoke(cli, ["calibrate", str(simulated_study.root)])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: the calibration app stopped on an internal error")
