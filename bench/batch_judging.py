"""Client-side cost of batch judging against live judging, on real turn-pairs, in one script.

The same N items (N/2 real ShareGPT turn-pairs of data/socioemotional_audit.jsonl × both
constructs) are judged by the study library twice per round: live, against the fault-free fake
endpoint (no latency, concurrency 64: the baseline), and as a batch judge against the fake
files/batches endpoint (one run submits, the next collects). Reports, medians over the rounds,
the client's wall and CPU time per judgment for each and their ratio — what the machine itself
spends on a run, the provider's time excluded — and, for docs/scale.md, the input tokens per call
as sent (LiteLLM's gpt-4o-mini tokenizer), bytes per batch input line and per judgment record.
Usage: python bench/batch_judging.py [--pairs 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from empathy_study import judge, study  # noqa: E402
from empathy_study.study.workspace import Workspace  # noqa: E402


def start(module: str, *args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    return process, f"http://127.0.0.1:{int(process.stdout.readline().split()[1])}"


def sample(pairs: int) -> pd.DataFrame:
    rows = pd.read_json(REPO / "data" / "socioemotional_audit.jsonl", lines=True).head(pairs)
    return pd.DataFrame({
        "pair_id": rows["pair_id"], "conversation_id": rows["conversation_id"], "user_id": rows["conversation_id"],
        "model": "m", "turn_index": rows["turn_index"], "timestamp": None, "prompt": rows["prompt"],
        "response": rows["response"], "reply": rows["reply"], "stratum": "all", "topic": "t0",
        "inclusion_prob": rows["inclusion_prob"],
    })


def study_dir(root: Path, frame: pd.DataFrame, url: str, batch: bool) -> Workspace:
    root.mkdir(parents=True)
    frame.to_parquet(root / "sample.parquet")
    (root / "study.toml").write_text(f"""[judge]
swap_check_pairs = 0

[[judges]]
name = "bench"
model = "openai/fake"
api_base = "{url}/v1"
concurrency = 64
batch = {str(batch).lower()}
input_cost_per_million = 0.075
output_cost_per_million = 0.3
""")
    return Workspace(root)


def timed(work) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    frame = sample(args.pairs)
    live_server, live_url = start("tests.support.fake_llm")
    batch_server, batch_url = start("tests.support.fake_batch", "--polls", "0")
    results: dict[str, list[tuple[float, float]]] = {"live": [], "batch": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for number in range(args.rounds):
                ws = study_dir(Path(tmp) / f"live{number}", frame, live_url, batch=False)
                results["live"].append(timed(lambda ws=ws: study.run_judges(ws)))
                ws = study_dir(Path(tmp) / f"batch{number}", frame, batch_url, batch=True)
                results["batch"].append(timed(lambda ws=ws: (study.run_judges(ws), study.run_judges(ws))))
                records = judge.JudgmentLog(ws.judgments).read().records
                assert len(records) == 2 * len(frame) and all(r.score is not None for r in records)
            ledger = judge.BatchLedger(ws.judgments)
            inputs = list(ledger.folder.glob("*.jsonl"))
            lines = [json.loads(line) for path in inputs for line in path.read_text().splitlines()]
            input_bytes = sum(path.stat().st_size for path in inputs) / len(lines)
            record_bytes = ws.judgments.stat().st_size / len(records)
            _, litellm = judge._call._libraries()
            tokens = [litellm.token_counter(model="gpt-4o-mini", messages=line["body"]["messages"]) for line in lines]
            by_construct = {}
            for line, count in zip(lines, tokens):
                by_construct.setdefault(json.loads(line["custom_id"])[1], []).append(count)
    finally:
        live_server.kill()
        batch_server.kill()
    items = 2 * len(frame)
    print(f"{items} judgments ({len(frame)} real turn-pairs × 2 constructs), {args.rounds} rounds, medians:")
    for name, runs in results.items():
        wall = statistics.median(w for w, _ in runs) / items * 1000
        cpu = statistics.median(c for _, c in runs) / items * 1000
        print(f"  {name:5}: {wall:.2f} ms wall, {cpu:.2f} ms CPU per judgment (client)")
    ratio = statistics.median(c for _, c in results["batch"]) / statistics.median(c for _, c in results["live"])
    print(f"  batch / live client CPU: {ratio:.2f}")
    print(f"input tokens per call as sent (gpt-4o-mini tokenizer): mean {statistics.mean(tokens):.0f}, "
          + ", ".join(f"{c} {statistics.mean(v):.0f}" for c, v in sorted(by_construct.items())))
    print(f"bytes per batch input line: {input_bytes:.0f}; per judgment record: {record_bytes:.0f}")


if __name__ == "__main__":
    main()
