"""How fast the calibration app opens and answers on 10,000 scored pairs and 1,000 gold labels.

The study: real ShareGPT turn-pairs (the bundled corpus, topic filter off) with SIMULATED
annotators and judges (`study.simulated`): 10,000 pairs, a Poisson audit of ~1,000 gold pairs with
two of four annotators each, three judges on every pair and an older rubric of one judge on the
gold pairs (≈ 62,000 judgment records).

Measured headless (Textual's pilot) at 80×24, medians over rounds:
- open: `make_app` (reads the study) until the overview shows its matrix — with the parsed-log cache
  (`DIR/.cache/`) and without it (the first open after a judge run appended);
- screen switch (overview ↔ disagreements), construct switch on the disagreements screen (1,000 rows
  recomputed and redrawn), re-sort of the 1,000 disagreement rows;
against a baseline in this script: a bare Textual app whose DataTables hold the same rows, read from
a Parquet file, switching between two screens and re-sorting with DataTable's own sort.
Also timed once: a fresh process that imports the app and opens the study (what a user waits for).

Run: python bench/tui_speed.py [--rounds 15] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from textual import events
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from empathy_study import corpus
from empathy_study.study import calibrate, simulated
from empathy_study.study.tui import make_app
from empathy_study.study.workspace import Workspace

SIZE = (80, 24)
PAIRS, GOLD = 10_000, 1_000


def build(root: Path) -> Path:
    study_dir = root / "calibration-simulated"
    if (study_dir / "judgments.jsonl").exists():
        return study_dir
    funnel = corpus.Funnel("sharegpt")
    corpus.build_corpus(corpus.read_source("sharegpt", [], funnel), root, corpus.CorpusConfig(keep_transactional=True),
                        funnel)
    pairs = pd.read_parquet(root / corpus.TURN_PAIRS_FILE)
    simulated.simulated_study(study_dir, pairs, n=PAIRS, gold=GOLD, annotators=4, overlap=2, seed=0)
    return study_dir


class TableScreen(Screen):
    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__()
        self.frame = frame

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in self.frame.columns:
            table.add_column(column, key=column)
        table.add_rows(self.frame.astype(str).itertuples(index=False))


class Bare(App):
    """The baseline: the same rows in plain DataTables, nothing computed."""

    BINDINGS = [("1", "switch_screen('one')", "one"), ("2", "switch_screen('two')", "two"), ("s", "sort", "sort")]

    def __init__(self, overview: Path, pairs: Path) -> None:
        super().__init__()
        self.overview_path, self.pairs_path = overview, pairs
        self.descending = False

    def on_mount(self) -> None:
        self.install_screen(TableScreen(pd.read_parquet(self.overview_path)), "one")
        self.install_screen(TableScreen(pd.read_parquet(self.pairs_path)), "two")
        self.push_screen("one")

    def action_sort(self) -> None:
        self.descending = not self.descending
        self.screen.query_one(DataTable).sort("difference", reverse=self.descending)


async def hit(pilot, key: str) -> None:
    """One key, handled and painted: the key goes to the app as the terminal would send it, then every
    message it caused (the app's, the new screen's and its widgets') is processed and the screen is
    composed. (The pilot's own `press` also waits for the process's CPU to go idle, which on a shared
    machine measures the neighbours.)"""
    app = pilot.app
    event = events.Key(key, key if len(key) == 1 else None)
    event.set_sender(app)
    app._driver.send_message(event)
    await asyncio.sleep(0)
    for _ in range(3):  # the key's action, then what it posted (a screen's resume, a table's redraw)
        await pilot._wait_for_screen()
    app.screen._on_timer_update()


async def timed_keys(app: App, setup: list[str], keys: list[str], rounds: int) -> list[float]:
    found = []
    async with app.run_test(size=SIZE) as pilot:
        for key in setup:
            await pilot.press(key)
            await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        for i in range(rounds):
            key = keys[i % len(keys)]
            started = time.perf_counter()
            await hit(pilot, key)
            found.append(time.perf_counter() - started)
        app.workers.cancel_all()
    return found


CPU: dict[str, list[float]] = {}  # CPU seconds of this process per open: what a machine to itself would wait


async def open_ours(study_dir: Path, cached: bool) -> float:
    if not cached:
        shutil.rmtree(study_dir / ".cache", ignore_errors=True)
    started, cpu = time.perf_counter(), time.process_time()
    app = make_app(Workspace(study_dir), boot=0)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.screen.query_one("#matrix").row_count > 0
        elapsed = time.perf_counter() - started
        CPU.setdefault(f"ours-{cached}", []).append(time.process_time() - cpu)
    return elapsed


async def open_bare(overview: Path, pairs: Path) -> float:
    started, cpu = time.perf_counter(), time.process_time()
    app = Bare(overview, pairs)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.screen.query_one(DataTable).row_count > 0
        elapsed = time.perf_counter() - started
        CPU.setdefault("bare", []).append(time.process_time() - cpu)
    return elapsed


def fresh_process(study_dir: Path) -> tuple[float, float]:
    code = ("import asyncio, time, sys; started = time.perf_counter()\n"
            "from empathy_study.study.tui import make_app\n"
            "from empathy_study.study.workspace import Workspace\n"
            "async def main():\n"
            "    app = make_app(Workspace(__import__('pathlib').Path(sys.argv[1])), boot=0)\n"
            "    async with app.run_test(size=(80, 24)) as pilot:\n"
            "        await pilot.pause()\n"
            "        print(time.perf_counter() - started)\n"
            "asyncio.run(main())\n")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(study_dir)], capture_output=True, text=True, check=True)
    total = time.perf_counter() - started
    return total, float(out.stdout.strip().splitlines()[-1])


def line(name: str, ours: list[float], bare: list[float] | None) -> str:
    median = statistics.median(ours)
    low, high = (statistics.quantiles(ours, n=4)[0], statistics.quantiles(ours, n=4)[2]) if len(ours) > 3 else (min(ours), max(ours))
    text = f"{name:<34} {1000 * median:8.1f} ms (IQR {1000 * low:.1f}–{1000 * high:.1f})"
    if bare:
        base = statistics.median(bare)
        text += f"   baseline {1000 * base:7.1f} ms   ratio {median / base:5.2f}"
    return text


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the study here instead of a temporary folder")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="tui-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    study_dir = build(root)
    print(f"study: {study_dir} (built in {time.perf_counter() - started:.0f} s)")
    data = calibrate.load(Workspace(study_dir))
    gold = data.gold("empathy")
    print(f"{len(data.sample):,} pairs, {len(data.judgments):,} judgments, {len(gold.units):,} gold pairs (empathy), "
          f"{len(data.labels):,} gold labels")

    # the same rows the app shows, for the baseline
    view = calibrate.overview(data, "empathy")
    overview_rows = pd.DataFrame([{"rater": r.rater, "rubric": r.version, "alpha": r.figures["alpha"],
                                   "kappa": r.figures["kappa"], "mae": r.figures["mae"], "bias": r.figures["bias"],
                                   "n": r.figures["n"]} for r in view.rows])
    pairs_rows = calibrate.disagreements(data, "empathy")
    overview_path, pairs_path = root / "bare-overview.parquet", root / "bare-pairs.parquet"
    overview_rows.to_parquet(overview_path)
    pairs_rows.to_parquet(pairs_path)

    rounds = args.rounds
    cold = [await open_ours(study_dir, cached=False) for _ in range(max(3, rounds // 3))]
    warm = [await open_ours(study_dir, cached=True) for _ in range(rounds)]
    bare_open = [await open_bare(overview_path, pairs_path) for _ in range(rounds)]
    print(line("open (parsed-log cache)", warm, bare_open))
    print(line("open (no cache: log parsed)", cold, bare_open))
    print(line("  open, CPU time (parsed-log cache)", CPU["ours-True"], CPU["bare"]))
    print(line("  open, CPU time (no cache)", CPU["ours-False"], CPU["bare"]))
    ours_switch = await timed_keys(make_app(Workspace(study_dir), boot=0), ["2", "1"], ["2", "1"], 2 * rounds)
    bare_switch = await timed_keys(Bare(overview_path, pairs_path), ["2", "1"], ["2", "1"], 2 * rounds)
    print(line("screen switch (overview ↔ pairs)", ours_switch, bare_switch))
    ours_sort = await timed_keys(make_app(Workspace(study_dir), boot=0), ["2"], ["s"], 2 * rounds)
    bare_sort = await timed_keys(Bare(overview_path, pairs_path), ["2"], ["s"], 2 * rounds)
    print(line("re-sort 1,000 disagreement rows", ours_sort, bare_sort))
    ours_construct = await timed_keys(make_app(Workspace(study_dir), boot=0), ["2"], ["c"], rounds)
    print(line("construct switch (pairs recomputed)", ours_construct, None))
    total, inside = fresh_process(study_dir)
    print(f"fresh process, imports included: {total:.2f} s to exit ({inside:.2f} s from its first line to the "
          "overview on screen)")
    started = time.perf_counter()
    calibrate.overview(data, "empathy", boot=200)
    print(f"overview intervals (200 bootstrap draws, in a worker; the matrix shows meanwhile): "
          f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
