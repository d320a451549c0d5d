"""How `empathy corpus build` scales: WildChat-schema corpora of 100k and 300k conversations.

Generates shards with the published schema and realistic text lengths (about 4 KB of parquet per
conversation, like WildChat-1M), runs the real CLI build on each in a subprocess, and reports wall
time and peak RSS; then extrapolates linearly to the full 838,989 conversations. Generated data is
deleted afterwards. In the same run it times the build's cheap pass of the population filter
(`corpus.prefilter_reason`, each pair read with its preceding exchange) against the old keyword
filter (`corpus.transactional_reason`) on the same turn-pairs, so the ratio holds whatever else
runs on the machine. Usage: python bench/corpus_scale.py [--sizes 100000 300000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from empathy_study import corpus
from tests.support.wildchat import SCHEMA, conversation_row  # noqa: E402

FULL_WILDCHAT = 837_989
SHARD_ROWS = 20_000
VOCAB = np.array(
    ("the of and to in is you that it for on with as are this be at have or from an by not but what all "
     "were when we there can your which their said if do will each about how up out them then she many "
     "some so these would other into has more her two like him see time could no make than first been "
     "its who now people my made over did down only way find use may water long little very after words "
     "called just where most know get through back much before go good new write our used me man too any "
     "day same right look think also around another came come work three word must because does part "
     "feel happy sad friend love help please code function return data model question answer story").split()
)
PERSONAL = ["I feel so lonely since my best friend moved away.", "Thank you so much, you are so kind.",
            "How are you today? I'm a bit tired after work.", "My girlfriend and I had a fight and I'm sad."]
TASKS = ["Write an essay about climate change.", "```python\nprint('hello')\n```\nwhy does this fail?",
         "Translate this paragraph into French.", "What is the capital of Australia?"]


def text(rng: np.random.Generator, mean_chars: float, lead: str = "") -> str:
    words = max(3, int(rng.lognormal(np.log(mean_chars / 5.5), 0.6)))
    return lead + " " + " ".join(VOCAB[rng.integers(0, len(VOCAB), words)])


def generate(size: int, directory: Path, seed: int = 0) -> int:
    """Write `size` conversations as shards; return bytes written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    languages = np.array(["English", "Chinese", "Russian", "French", "Spanish"])
    for start in range(0, size, SHARD_ROWS):
        rows = []
        for i in range(start, min(size, start + SHARD_ROWS)):
            turns = 1 + rng.poisson(1.5)
            lead_pool = PERSONAL if rng.random() < 0.3 else TASKS
            messages = []
            for t in range(turns):
                messages.append(text(rng, 700, lead_pool[rng.integers(len(lead_pool))]))
                messages.append(text(rng, 2_600))
            rows.append(conversation_row(
                messages,
                language=languages[rng.choice(5, p=[0.55, 0.15, 0.12, 0.1, 0.08])],
                toxic=bool(rng.random() < 0.03), hashed_ip=f"ip{rng.integers(size // 3 + 1)}",
                model="gpt-4-0314" if rng.random() < 0.25 else "gpt-3.5-turbo-0613",
                conversation_hash=f"{i:032x}",
            ))
        path = directory / f"train-{start // SHARD_ROWS:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path, row_group_size=2_000)
    return sum(p.stat().st_size for p in directory.glob("*.parquet"))


_MEASURED_BUILD = """
import resource, sys
from empathy_study.study.cli import app
try:
    app(sys.argv[1:])
except SystemExit as end:
    code = end.code
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def build(directory: Path, out: Path) -> tuple[float, float]:
    """Run the real CLI in a fresh process; return (wall seconds, that process's peak RSS in MB)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED_BUILD, "corpus", "build", "--source", "wildchat",
         "--input", str(directory), "--out", str(out)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    wall = time.perf_counter() - start
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return wall, peak_kb / 1024


def filter_timing(directory: Path, pairs_wanted: int = 60_000) -> dict:
    """Seconds per turn-pair of the cheap pass and of the old keyword filter, on the same pairs
    (every user turn of the first conversations, with its preceding exchange), in this process."""
    pairs = []
    for path in sorted(directory.glob("*.parquet")):
        for messages in pq.read_table(path, columns=["conversation"]).column("conversation").to_pylist():
            texts = [m["content"] for m in messages]
            for start in range(0, len(texts) - 2, 2):  # prompt, response, reply — as the build cuts them
                prev = texts[start - 2:start] if start else ["", ""]
                pairs.append((texts[start], texts[start + 1], texts[start + 2], prev[0] or None, prev[1] or None))
            if len(pairs) >= pairs_wanted:
                break
        if len(pairs) >= pairs_wanted:
            break
    timings = {}
    for _ in range(3):  # interleaved rounds: both filters see the same load; the best round counts
        for name, run in (("old keyword filter", lambda: [corpus.transactional_reason(p, r, y) for p, r, y, _, _ in pairs]),
                          ("cheap pass", lambda: [corpus.prefilter_reason(*pair) for pair in pairs])):
            start = time.perf_counter()
            decisions = run()
            seconds = time.perf_counter() - start
            if seconds < timings.get(name, (float("inf"), 0))[0]:
                timings[name] = (seconds, sum(d is None for d in decisions))
    return {"pairs": len(pairs), **{name: {"us_per_pair": 1e6 * t / len(pairs), "kept": kept}
                                    for name, (t, kept) in timings.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="corpus-scale-", dir=args.workdir))
    need = int(max(args.sizes) * 4_500 * 1.5)
    free = shutil.disk_usage(workdir).free
    if free < need:
        sys.exit(f"not enough disk in {workdir}: {free / 1e9:.1f} GB free, about {need / 1e9:.1f} GB needed")
    results = []
    try:
        for size in sorted(args.sizes):
            data = workdir / f"data-{size}"
            t0 = time.perf_counter()
            nbytes = generate(size, data)
            print(f"generated {size:,} conversations: {nbytes / 1e6:,.0f} MB "
                  f"({nbytes / size / 1e3:.1f} KB each) in {time.perf_counter() - t0:.0f} s", flush=True)
            wall, rss = build(data, workdir / f"study-{size}")
            results.append((size, nbytes, wall, rss))
            print(f"build {size:,}: {wall:.1f} s, peak RSS {rss:,.0f} MB, {size / wall:,.0f} conversations/s", flush=True)
            if size == max(args.sizes):
                timing = filter_timing(data)
                old, new = timing["old keyword filter"], timing["cheap pass"]
                print(f"filters on the same {timing['pairs']:,} turn-pairs: cheap pass {new['us_per_pair']:.0f} µs/pair "
                      f"(keeps {new['kept']:,}), old keyword filter {old['us_per_pair']:.0f} µs/pair (keeps "
                      f"{old['kept']:,}); ratio new/old {new['us_per_pair'] / old['us_per_pair']:.2f}", flush=True)
            shutil.rmtree(data)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if len(results) >= 2:
        (n1, _, t1, r1), (n2, _, t2, r2) = results[0], results[-1]
        slope = (t2 - t1) / (n2 - n1)
        projected = t2 + slope * (FULL_WILDCHAT - n2)
        print(f"\ntime per 1k conversations: {1e3 * t1 / n1:.2f} s at {n1:,}, {1e3 * t2 / n2:.2f} s at {n2:,} "
              f"(ratio {(t2 / n2) / (t1 / n1):.2f}; 1.00 = linear)")
        print(f"peak RSS ratio {n2:,} / {n1:,}: {r2 / r1:.2f} (1.00 = flat memory)")
        print(f"projected for {FULL_WILDCHAT:,}: {projected / 60:.1f} min (target < 10), "
              f"peak RSS about {r2:,.0f} MB if flat (target < 4,096)")


if __name__ == "__main__":
    main()
