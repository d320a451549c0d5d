"""How long an `empathy` command takes to start on a study: what a user waits for before anything happens.

On a study made by `empathy init` (no sample yet), `empathy judge run DIR --dry-run` reads
study.toml and stops with its one error line, and `empathy annotate status DIR` reads it and says
what to run first: both are start-up (imports, reading and validating the configuration) and
nothing else. The baseline, in the same run, is the interpreter starting and importing the
package's root (`import empathy_study`). Medians of interleaved rounds after one warm-up round.

Usage: python bench/cli_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENTRY = "import sys; from empathy_study.study.cli import app; sys.argv[0] = 'empathy'; sys.exit(app())"


def commands(study: Path) -> dict[str, list[str]]:
    return {
        "baseline: python -c 'import empathy_study'": [sys.executable, "-c", "import empathy_study"],
        "empathy judge run DIR --dry-run": [sys.executable, "-c", ENTRY, "judge", "run", str(study), "--dry-run"],
        "empathy annotate status DIR": [sys.executable, "-c", ENTRY, "annotate", "status", str(study)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    with tempfile.TemporaryDirectory() as scratch:
        study = Path(scratch) / "study"
        subprocess.run([sys.executable, "-c", ENTRY, "init", str(study)], env=env, check=True, capture_output=True)
        runs = commands(study)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for round_ in range(args.rounds + 1):
            for name, command in runs.items():
                started = time.perf_counter()
                subprocess.run(command, env=env, capture_output=True)
                if round_:  # the first round warms the file cache
                    times[name].append(time.perf_counter() - started)
    base = statistics.median(next(iter(times.values())))
    for name, seen in times.items():
        median = statistics.median(seen)
        print(f"{name}: median {median:.2f} s of {len(seen)} (ratio to the baseline {median / base:.1f}; "
              f"runs {', '.join(f'{t:.2f}' for t in seen)})")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
