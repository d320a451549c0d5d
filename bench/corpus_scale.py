"""How `empathy corpus build` scales: WildChat-schema corpora of 100k and 300k conversations.

Generates shards with the published schema and realistic text lengths (about 4 KB of parquet per
conversation, like WildChat-1M), runs the real CLI build on each in a subprocess, and reports wall
time and peak RSS; then extrapolates linearly to the full 837,989 conversations of WildChat-1M and
the 4,743,336 of WildChat-4.8M. Generated data is deleted afterwards.

Sharded build: every size is built `--rounds` times with `--workers 1` (the serial build: one
process, the shards one after another) and `--workers 2` (a worker process per shard, two at a
time), interleaved so both see the same load; the 2-worker / 1-worker wall ratio is the median of
the rounds' ratios. Peak RSS is reported for the build's own process and per worker (the largest
of the shard workers' peaks, from funnel.json's `build` note).

In the same run it times the build's cheap pass of the population filter (`corpus.prefilter_reason`,
each pair read with its preceding exchange) against the old keyword filter
(`corpus.transactional_reason`) on the same turn-pairs, so the ratio holds whatever else runs on
the machine.

The default build ends with the offline classifier, which embeds every candidate the cheap pass
keeps: its cost grows with the share of turn-pairs the cheap pass lets through. `--personal-share`
sets how many generated conversations open personally (default 0.05); the random filler words alone
hit the cheap pass's cues often enough that it keeps about 11 % of the English turn-pairs even at 0
(measured), against 3.9 % of the bundled ShareGPT corpus's, so the generated share is pessimistic
(WildChat's is not known here). The classifier's own seconds are read from funnel.json. Each build gets an empty embedding cache of its own (the derived models are
linked from the user's cache, so nothing is exported inside a timed build).
Usage: python bench/corpus_scale.py [--sizes 100000 300000] [--rounds 3] [--personal-share 0.05] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from empathy_study import corpus
from tests.support.wildchat import SCHEMA, conversation_row  # noqa: E402

FULL_WILDCHAT = 837_989
WILDCHAT_4_8M = 4_743_336
WORKERS = (1, 2)
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


def generate(size: int, directory: Path, seed: int = 0, shard_rows: int = SHARD_ROWS,
             personal_share: float = 0.05) -> int:
    """Write `size` conversations as shards, `personal_share` of them opening every user message with a
    personal line (the rest with a task line); return bytes written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    languages = np.array(["English", "Chinese", "Russian", "French", "Spanish"])
    for start in range(0, size, shard_rows):
        rows = []
        for i in range(start, min(size, start + shard_rows)):
            turns = 1 + rng.poisson(1.5)
            lead_pool = PERSONAL if rng.random() < personal_share else TASKS
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
        path = directory / f"train-{start // shard_rows:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path, row_group_size=2_000)
    return sum(p.stat().st_size for p in directory.glob("*.parquet"))


# The peak is the build process's VmHWM: getrusage's ru_maxrss would keep this bench's own peak,
# inherited across the fork that starts the build.
_MEASURED_BUILD = """
import resource, sys
from empathy_study.corpus._shards import peak_rss_mb
from empathy_study.study.cli import app
try:
    app(sys.argv[1:])
except SystemExit as end:
    code = end.code
finally:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(usage.ru_utime + usage.ru_stime, peak_rss_mb(), file=sys.stderr)
"""


@dataclass
class Run:
    wall: float  # seconds
    rss_mb: float  # the build command's own process
    worker_rss_mb: float  # the largest peak of the shard workers (the build's process itself when workers = 1)
    output_mb: float  # turn_pairs.parquet + terminal_pairs.parquet
    cpu_build: float  # user + system seconds of the build's own process (all of the work when workers = 1)
    cpu_workers: float  # the shard workers' seconds, summed (0 when workers = 1: they ran in the build process)
    classifier_seconds: float  # wall seconds of the offline classifier (in the build process, after the duplicate pass)
    candidates: int  # pairs the classifier scored

    @property
    def cpu(self) -> float:
        return self.cpu_build + self.cpu_workers


def fresh_cache(root: Path) -> Path:
    """An empty embedding cache whose derived models are the user's (linked, not rebuilt)."""
    from empathy_study.causal import _static

    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    _static.load_onnx_model()  # exported into the user's cache once, outside any timed build
    (root / "models").symlink_to(_static.onnx_model_dir().parent, target_is_directory=True)
    return root


def build(directory: Path, out: Path, workers: int) -> Run:
    """Run the real CLI in a fresh process; wall time, that process's peak RSS, the workers' peak."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "EMPATHY_CACHE": str(fresh_cache(out.parent / f"{out.name}-cache"))}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED_BUILD, "corpus", "build", "--source", "wildchat",
         "--input", str(directory), "--out", str(out), "--workers", str(workers)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )
    wall = time.perf_counter() - start
    cpu, peak_mb = done.stderr.strip().splitlines()[-1].split()
    funnel = json.loads((out / "funnel.json").read_text())
    shards = funnel["build"]["shards"]
    output = sum((out / name).stat().st_size for name in (corpus.TURN_PAIRS_FILE, corpus.TERMINAL_PAIRS_FILE))
    workers_cpu = sum(s["cpu_seconds"] for s in shards) if workers > 1 else 0.0
    # The classifier's decisions are under "classifier", how long it took under "build" (contracts.md).
    return Run(wall, float(peak_mb), max(s["peak_rss_mb"] for s in shards), output / 1e6, float(cpu), workers_cpu,
               float(funnel["build"]["classifier"]["seconds"]), int(funnel["classifier"]["candidates"]))


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
    parser.add_argument("--rounds", type=int, default=3, help="builds per size and worker count (medians)")
    parser.add_argument("--shard-rows", type=int, default=SHARD_ROWS, help="conversations per generated shard")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--personal-share", type=float, default=0.05,
                        help="share of generated conversations whose user messages open personally")
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
            nbytes = generate(size, data, shard_rows=args.shard_rows, personal_share=args.personal_share)
            print(f"generated {size:,} conversations: {nbytes / 1e6:,.0f} MB "
                  f"({nbytes / size / 1e3:.1f} KB each, {len(list(data.glob('*.parquet')))} shards) "
                  f"in {time.perf_counter() - t0:.0f} s", flush=True)
            runs: dict[int, list[Run]] = {w: [] for w in WORKERS}
            for round_ in range(args.rounds):
                for workers in WORKERS if round_ % 2 == 0 else WORKERS[::-1]:  # alternate who goes first
                    run = build(data, workdir / f"study-{size}-{workers}", workers)
                    runs[workers].append(run)
                    print(f"  round {round_ + 1}, {workers} worker(s): {run.wall:.1f} s wall, CPU {run.cpu_build:.1f} s "
                          f"build process + {run.cpu_workers:.1f} s workers; peak RSS build process "
                          f"{run.rss_mb:,.0f} MB, worker {run.worker_rss_mb:,.0f} MB; classifier {run.classifier_seconds:.1f} s "
                          f"on {run.candidates:,} candidates; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
                          flush=True)
            wall = {w: float(np.median([r.wall for r in runs[w]])) for w in WORKERS}
            ratio = float(np.median([b.wall / a.wall for a, b in zip(runs[1], runs[2])]))
            rss = {w: max(r.rss_mb for r in runs[w]) for w in WORKERS}
            worker_rss = {w: max(r.worker_rss_mb for r in runs[w]) for w in WORKERS}
            cpu = {w: float(np.median([r.cpu for r in runs[w]])) for w in WORKERS}
            cpu_build2 = float(np.median([r.cpu_build for r in runs[2]]))
            results.append((size, nbytes, wall, ratio, rss, worker_rss, runs[1][0].output_mb, cpu, cpu_build2))
            every = [r for w in WORKERS for r in runs[w]]
            seconds = float(np.median([r.classifier_seconds for r in every]))
            print(f"  offline classifier at {size:,}: {seconds:.1f} s (median) on {every[0].candidates:,} candidates, "
                  f"{1e3 * seconds / max(1, every[0].candidates):.1f} ms per candidate; "
                  f"projected for WildChat-1M: {seconds * FULL_WILDCHAT / size / 60:.1f} min", flush=True)
            print(f"build {size:,}: 1 worker {wall[1]:.1f} s ({size / wall[1]:,.0f} conversations/s), 2 workers "
                  f"{wall[2]:.1f} s; median ratio 2/1 workers {ratio:.2f}; peak RSS: 1 worker {rss[1]:,.0f} MB, "
                  f"2 workers {rss[2]:,.0f} MB in the build process + {worker_rss[2]:,.0f} MB per worker at most; "
                  f"tables {runs[1][0].output_mb:,.0f} MB; CPU 1 worker {cpu[1]:.1f} s, 2 workers {cpu[2]:.1f} s "
                  f"({cpu_build2:.1f} s of it in the build process)", flush=True)
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
        (n1, _, t1, _, r1, _, _, c1, cb1), (n2, _, t2, ratio2, r2, wr2, out2, c2, cb2) = results[0], results[-1]
        print(f"\ntime per 1k conversations, 1 worker: {1e3 * t1[1] / n1:.2f} s at {n1:,}, {1e3 * t2[1] / n2:.2f} s "
              f"at {n2:,} (ratio {(t2[1] / n2) / (t1[1] / n1):.2f}; 1.00 = linear)")
        print(f"peak RSS ratio {n2:,} / {n1:,}, 1 worker: {r2[1] / r1[1]:.2f} (1.00 = flat memory)")
        print(f"2 workers / 1 worker at {n2:,}: wall {ratio2:.2f} (median of rounds), CPU {c2[2] / c2[1]:.2f}; "
              f"per worker peak RSS {wr2[2]:,.0f} MB")
        # CPU as a line through the two sizes (start-up is a constant): the build process's own part
        # (planning, the duplicate pass) runs once, the shards' part is what N workers share.
        def line(a: float, b: float) -> tuple[float, float]:
            slope = (b - a) / (n2 - n1)
            return a - slope * n1, slope

        build_cpu, shard_cpu = line(cb1, cb2), line(c1[2] - cb1, c2[2] - cb2)
        for name, full in (("WildChat-1M", FULL_WILDCHAT), ("WildChat-4.8M", WILDCHAT_4_8M)):
            projected = {w: t2[w] + (t2[w] - t1[w]) / (n2 - n1) * (full - n2) for w in WORKERS}
            quiet = {k: (build_cpu[0] + build_cpu[1] * full + (shard_cpu[0] + shard_cpu[1] * full) / k) / 60
                     for k in (1, 2, 8, 32)}
            print(f"projected for {name} ({full:,}), wall as measured here: {projected[1] / 60:.1f} min on 1 worker, "
                  f"{projected[2] / 60:.1f} min on 2; from CPU time, on free cores: "
                  + ", ".join(f"{k} workers {m:.1f} min" for k, m in quiet.items())
                  + f"; tables about {out2 * full / n2 / 1e3:.2f} GB of this generated text (about as much again "
                  f"on disk while the build runs: the shards' part files)")

if __name__ == "__main__":
    main()
