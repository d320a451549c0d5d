"""The demo's judge step on the embedded judge (SmolLM2-135M, llama.cpp), before and after its speed-ups.

Same script, same code, same calls: the demo's study (bundled ShareGPT corpus, a sample of 12 pairs,
seed 0, response-swap check on 4 pairs: 32 calls) is judged twice, each time in a fresh copy with a
fresh server:

  before  the server on as many threads as there are cores, the rationale free, logprobs at every
          generated token (judge._local.LOCAL_THREADS = cpu count, judge._call.LOCAL_ONE_SENTENCE and
          LOCAL_SCORE_PROBE off: the behaviour before them)
  after   the defaults: one thread, a one-sentence rationale, the score's logprobs asked for at its
          position after the answer

Reported: wall time of the judge step, median per-call latency, the llama server's CPU seconds,
llama.cpp's own prompt-evaluation and generation times (the rest of a call is Python: sampling
under the grammar, logprobs, HTTP), output tokens, and whether the scores stayed the same — exact agreement, mean |difference|, Krippendorff's α between
the two runs — and how far the expected scores moved. Run it once, under nice:

    nice .venv/bin/python bench/local_judge.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from empathy_study import annotation, judge, study
from empathy_study.judge import _call, _local
from empathy_study.study.demo import DEMO_SAMPLE, DEMO_SEED, DEMO_SWAP_CHECK
from empathy_study.study.workspace import Workspace


def demo_study(root: Path) -> Workspace:
    """The demo's study up to its judge step, exactly as `empathy demo` builds it."""
    ws = Workspace(root)
    ws.init()
    text = ws.config_path.read_text(encoding="utf-8")
    ws.config_path.write_text(text.replace("swap_check_pairs = 20", f"swap_check_pairs = {DEMO_SWAP_CHECK}"),
                              encoding="utf-8")
    study.build_corpus(ws, "sharegpt", [])
    study.draw_sample(ws, DEMO_SAMPLE, DEMO_SEED)
    return ws


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # servers that have exited and been waited for
    return usage.ru_utime + usage.ru_stime


PERF = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens.*?\n.*?eval time =\s*([\d.]+) ms /\s*(\d+) runs")


def server_work(log: str) -> dict:
    """llama.cpp's own timings, summed over every request the server answered."""
    found = [tuple(map(float, m)) for m in PERF.findall(log)]
    return {"requests": len(found), "prompt_s": sum(f[0] for f in found) / 1000, "prompt_tokens": sum(f[1] for f in found),
            "generate_s": sum(f[2] for f in found) / 1000, "generated": sum(f[3] for f in found)}


def judge_step(template: Path, where: Path, fast: bool) -> dict:
    shutil.copytree(template, where)
    _call.LOCAL_ONE_SENTENCE = _call.LOCAL_SCORE_PROBE = fast
    _local.LOCAL_THREADS = 1 if fast else (os.cpu_count() or 2)
    logs = []
    stop = _local.LocalServer.stop

    def keep_log(server) -> None:  # the server deletes its request log when it stops: read it first
        logs.append(server.log.read_text(errors="replace"))
        stop(server)

    _local.LocalServer.stop = keep_log
    try:
        cpu, started, load = children_cpu(), time.perf_counter(), os.getloadavg()[0]
        result = study.run_judges(Workspace(where))
        seconds, cpu = time.perf_counter() - started, children_cpu() - cpu
    finally:
        _local.LocalServer.stop = stop
    records = judge.records_frame(judge.JudgmentLog(where / "judgments.jsonl").read().records)
    return {"records": records, "seconds": seconds, "server_cpu": cpu, "load": (load, os.getloadavg()[0]),
            "calls": result.summary.called if result.summary else 0, "work": server_work("".join(logs))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="keep the two studies here (default: a temporary folder)")
    args = parser.parse_args()
    base = args.out or Path(tempfile.mkdtemp(prefix="local-judge-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"building the demo's study in {base / 'template'} …", flush=True)
    demo_study(base / "template")
    runs = {}
    for name, fast in (("before", False), ("after", True)):
        print(f"judging: {name} …", flush=True)
        runs[name] = judge_step(base / "template", base / name, fast)
    print(f"\n{'':10}{'calls':>7}{'failed':>8}{'wall s':>9}{'median call s':>15}{'server CPU s':>14}"
          f"{'tokens out':>12}{'load 1-min':>13}")
    for name, run in runs.items():
        r = run["records"]
        print(f"{name:10}{len(r):>7}{int(r['score'].isna().sum()):>8}{run['seconds']:>9.0f}"
              f"{r['latency_ms'].median() / 1000:>15.1f}{run['server_cpu']:>14.0f}{int(r['tokens_out'].sum()):>12,}"
              f"{run['load'][0]:>7.1f}→{run['load'][1]:.1f}")
    print(f"\n{'':10}{'requests':>9}{'prompt eval s':>15}{'tokens':>8}{'generation s':>14}{'tokens':>8}"
          f"{'rest of the call s':>20}")
    for name, run in runs.items():
        w = run["work"]
        rest = run["records"]["latency_ms"].sum() / 1000 - w["prompt_s"] - w["generate_s"]
        print(f"{name:10}{w['requests']:>9}{w['prompt_s']:>15.0f}{w['prompt_tokens']:>8,.0f}{w['generate_s']:>14.0f}"
              f"{w['generated']:>8,.0f}{rest:>20.0f}")
    before, after = runs["before"], runs["after"]
    print(f"\nspeed-up: wall {before['seconds'] / after['seconds']:.2f}×, median call "
          f"{before['records']['latency_ms'].median() / after['records']['latency_ms'].median():.2f}×, "
          f"server CPU {before['server_cpu'] / after['server_cpu']:.2f}×")
    key = ["pair_id", "construct", "prompt_version", "sample_index"]
    both = before["records"].merge(after["records"], on=key, suffixes=("_before", "_after"))
    scored = both.dropna(subset=["score_before", "score_after"])
    same = (scored["score_before"] == scored["score_after"]).mean()
    mae = (scored["score_before"] - scored["score_after"]).abs().mean()
    alpha = annotation.alpha(np.vstack([scored["score_before"], scored["score_after"]]).astype(float), "ordinal")
    expected = both.dropna(subset=["expected_score_before", "expected_score_after"])
    moved = (expected["expected_score_before"] - expected["expected_score_after"]).abs()
    print(f"scores: {len(scored)} calls scored in both runs; the same score in {same:.0%} "
          f"(mean |difference| {mae:.2f}; α ordinal between the runs {'undefined' if alpha is None else f'{alpha:.2f}'})")
    print(f"expected scores: |before − after| median {moved.median():.3f}, max {moved.max():.3f} over {len(moved)} calls")
    print("score counts before:", before["records"]["score"].value_counts().sort_index().to_dict(),
          " after:", after["records"]["score"].value_counts().sort_index().to_dict())
    rationale = pd.concat({n: r["records"]["rationale"].fillna("").str.len() for n, r in runs.items()}, axis=1)
    print(f"rationale length (characters), median: before {rationale['before'].median():.0f}, "
          f"after {rationale['after'].median():.0f}")
    print(f"\nstudies kept in {base}")


if __name__ == "__main__":
    main()
