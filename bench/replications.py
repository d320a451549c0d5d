"""What the replication benches share: their command line (`replication_parser`), the loop that runs
replications, appends each one's records to a JSON-lines file as it finishes (a cut run keeps what it
did) and prints progress; and the Wilson interval their coverage tables give.

Imported as a sibling module (`from replications import run_replications, wilson`), like real_text.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import stats


def replication_parser(description: str, n_help: str = "pairs per study",
                       summarise_help: str = "only print the tables of results files") -> argparse.ArgumentParser:
    """The options every replication bench takes: --reps, --first, --n, --out and --summarise; a bench
    adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--first", type=int, default=0, help="first replication (to resume or split a run)")
    parser.add_argument("--n", type=int, default=2_000, help=n_help)
    parser.add_argument("--out", type=Path, default=None, help="append each replication's records here (JSON lines)")
    parser.add_argument("--summarise", type=Path, nargs="*", default=None, help=summarise_help)
    return parser


def wilson(successes: int, trials: int) -> tuple[float, float]:
    """Wilson 95 % interval of a share `successes` of `trials`."""
    z = stats.norm.ppf(0.975)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def run_replications(replicate: Callable[[int], list[dict]], first: int, reps: int, out: Path | None,
                     label: str = "") -> list[dict]:
    """replicate(rep) for rep in first … first + reps − 1: every record, each replication's appended to `out`
    as it finishes; CPU-s and wall seconds per replication printed every 10."""
    started, cpu = time.perf_counter(), time.process_time()
    records = []
    for rep in range(first, first + reps):
        rows = replicate(rep)
        records += rows
        if out:
            with out.open("a") as handle:
                handle.writelines(json.dumps(r) + "\n" for r in rows)
        done = rep - first + 1
        if done % 10 == 0 or done == reps:
            print(f"{label}{done} replications, {(time.process_time() - cpu) / done:.1f} CPU-s each "
                  f"({(time.perf_counter() - started) / done:.1f} s wall)", flush=True)
    return records
