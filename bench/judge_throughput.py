"""Judge client throughput against a local fake endpoint with a fixed 100 ms latency.

In one script, against the same endpoint: a bare aiohttp client makes N calls at concurrency C;
then the study library's judge run (instructor + LiteLLM, logging every call) makes N calls at the same
concurrency. Reports calls/s of each, their ratio, and the runner's CPU ms per judgment; then a
fully cached re-run of 10k items (0 calls expected). `--profile` prints the runner's top functions.
Usage: python bench/judge_throughput.py [--calls 2000] [--concurrency 64] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from empathy_study import judge, study  # noqa: E402


def start_endpoint(latency: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "tests.support.fake_llm", "--latency", str(latency)],
                               cwd=REPO, stdout=subprocess.PIPE, text=True)
    return process, f"http://127.0.0.1:{int(process.stdout.readline().split()[1])}"


def messages(i: int) -> list[dict]:
    rubric = judge.load_rubric("empathy")
    return judge.render_messages(rubric, {"prompt": f"I feel lonely tonight ({i})", "response": "I'm here with you."})


async def bare_client(url: str, calls: int, concurrency: int) -> float:
    body = [json.dumps({"model": "fake", "messages": messages(i)}) for i in range(calls)]
    queue = list(range(calls))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker():
            while queue:
                i = queue.pop()
                async with session.post(f"{url}/v1/chat/completions", data=body[i],
                                        headers={"Content-Type": "application/json"}) as answer:
                    json.loads(await answer.read())
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return calls / (time.perf_counter() - start)


async def litellm_alone(url: str, calls: int, concurrency: int, priced: bool) -> float:
    """LiteLLM's own ceiling on this machine: plain acompletion calls, no validation, no log.

    `priced` gives the prices with each call, as the runner does; without them LiteLLM looks the
    model up in its price list after every call."""
    from empathy_study.judge._call import _libraries

    _, litellm = _libraries()
    queue, body = list(range(calls)), messages(0)
    prices = {"input_cost_per_token": 0.15e-6, "output_cost_per_token": 0.6e-6} if priced else {}

    async def worker():
        while queue:
            queue.pop()
            await litellm.acompletion(model="openai/fake", api_base=f"{url}/v1", api_key="bench-key",
                                      messages=body, num_retries=0, **prices)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (time.perf_counter() - start)


def sample(n: int) -> pd.DataFrame:
    return pd.DataFrame({"pair_id": [f"p{i:06d}" for i in range(n)], "conversation_id": [f"c{i}" for i in range(n)],
                         "user_id": [f"u{i}" for i in range(n)], "model": "m", "turn_index": 1, "timestamp": None,
                         "prompt": [f"I feel lonely tonight ({i})" for i in range(n)],
                         "response": "I'm here with you.", "reply": "thank you"})


def bench_study(root: Path, items: int, url: str, concurrency: int) -> study.Workspace:
    """A study whose panel is one judge at the fake endpoint; attachment off the table so every call is empathy."""
    root.mkdir(parents=True, exist_ok=True)
    sample(items).to_parquet(root / "sample.parquet")
    (root / "study.toml").write_text(f"""[judge]
swap_check_pairs = 0
[[judges]]
name = "fake"
model = "openai/fake"
api_base = "{url}/v1"
concurrency = {concurrency}
retries = 2
input_cost_per_million = 0.15
output_cost_per_million = 0.6
""")
    return study.Workspace(root)


def runner(url: str, calls: int, concurrency: int, log_dir: Path, profile: bool) -> tuple[float, float]:
    """The study library's judge run, exactly as `empathy judge run` makes it (calls / 2 pairs × 2 constructs)."""
    ws = bench_study(log_dir, calls // 2, url, concurrency)
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    result = study.run_judges(ws)
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(int(os.environ.get("PROFILE_LINES", "15")))
    wall = time.perf_counter() - start
    made = 2 * (calls // 2)
    assert result.summary.tallies["fake"].ok == made, result.summary
    return made / wall, 1000 * (time.process_time() - cpu) / made


def cached_rerun(log_dir: Path, items: int) -> tuple[int, float]:
    """A log where every item is finished: the run must plan and make zero calls."""
    ws = bench_study(log_dir / "cached", items, "http://127.0.0.1:9", 8)
    config = ws.config()
    versions = config.prompt_versions()
    judge.JudgmentLog(ws.judgments).append([
        judge.JudgmentRecord(pair_id=f"p{i:06d}", construct=construct, judge="fake", model="openai/fake",
                             model_returned="fake", prompt_version=versions[construct], sample_index=0,
                             temperature=0.0, score=4, expected_score=None, rationale="r", tokens_in=1, tokens_out=1,
                             cost_usd=0.0, latency_ms=1.0, error=None, created_at="2026-01-01T00:00:00Z")
        for i in range(items) for construct in versions])
    start = time.perf_counter()
    result = study.run_judges(ws)
    return result.plan.calls, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all clients, interleaved; medians reported")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    process, url = start_endpoint(args.latency)
    rounds: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # Warm both clients up first: the endpoint, and LiteLLM's lazy imports on its first calls.
            asyncio.run(bare_client(url, 200, args.concurrency))
            runner(url, 200, args.concurrency, Path(tmp) / "warm-up", False)
            # This VM's speed drifts by ±15 % over a minute: each round runs every client once, so
            # the ratios compare clients under the same conditions, and their medians are reported.
            for i in range(args.rounds):
                bare = asyncio.run(bare_client(url, args.calls, args.concurrency))
                alone = asyncio.run(litellm_alone(url, args.calls, args.concurrency, priced=False))
                alone_priced = asyncio.run(litellm_alone(url, args.calls, args.concurrency, priced=True))
                ours, cpu_ms = runner(url, args.calls, args.concurrency, Path(tmp) / f"round-{i}",
                                      args.profile and i == 0)
                rounds.append({"bare": bare, "alone": alone / bare, "alone_priced": alone_priced / bare,
                               "runner": ours / bare, "cpu_ms": cpu_ms})
                print(f"round {i + 1}: runner/bare {ours / bare:.3f}, litellm alone/bare {alone / bare:.3f} "
                      f"(priced {alone_priced / bare:.3f}), runner CPU {cpu_ms:.1f} ms/judgment", flush=True)
            calls, seconds = cached_rerun(Path(tmp), 5_000)
    finally:
        process.kill()

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    print(f"{args.calls:,} calls at concurrency {args.concurrency}, endpoint latency {1000 * args.latency:.0f} ms; "
          f"medians of {args.rounds} rounds")
    print(f"  bare aiohttp client : {median('bare'):6.0f} calls/s")
    print(f"  litellm.acompletion alone (no validation, no log): ratio {median('alone'):.3f}, "
          f"with prices given {median('alone_priced'):.3f}")
    print(f"  panel runner (instructor + LiteLLM, validated, logged): ratio {median('runner'):.3f}   (target ≥ 0.2)")
    print(f"  runner CPU per judgment: {median('cpu_ms'):.1f} ms")
    print(f"cached re-run of 10,000 finished items (5,000 pairs × 2 constructs): {calls} calls in {seconds:.2f} s "
          "(target 0 calls, < 5 s)")


if __name__ == "__main__":
    main()
