"""kill -9 in the middle of a judge run, then resume: nothing lost, finished items never asked again,
and the only repeats are the calls that were in flight at the kill (counted at the endpoint)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from empathy_study import judge
from tests.judge.conftest import fake_stats, sample_frame, start_fake, write_study

CONCURRENCY = 4


@pytest.fixture
def slow_endpoint():
    process, url = start_fake(latency=0.3)
    yield url
    process.kill()
    process.wait()


def run_cli(root: Path, env: dict) -> subprocess.Popen:
    empathy = Path(sys.executable).with_name("empathy")
    return subprocess.Popen([str(empathy), "judge", "run", str(root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kill_and_resume(tmp_path, slow_endpoint):
    toml = f"""
[[judges]]
name = "fake"
model = "openai/fake"
api_base = "{slow_endpoint}/v1"
api_key_env = "FAKE_JUDGE_KEY"
concurrency = {CONCURRENCY}
"""
    root = write_study(tmp_path / "study", sample_frame([f"I feel alone, day {i}" for i in range(30)]), toml)
    env = {**os.environ, "FAKE_JUDGE_KEY": "k"}
    log_path = root / judge.LOG_FILE
    first = run_cli(root, env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log_path.exists() and len(log_path.read_text().splitlines()) >= 12:
            break
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(0.5)  # let calls already received by the endpoint be counted
    logged_at_kill = len(judge.JudgmentLog(log_path).read().records)
    started_at_kill = fake_stats(slow_endpoint)["started"]
    assert 10 <= logged_at_kill < 60, "the kill landed mid-run"

    second = run_cli(root, env)
    assert second.wait(timeout=120) == 0
    state = judge.JudgmentLog(log_path).read()
    successes = Counter((r.pair_id, r.construct) for r in state.records if r.score is not None)
    assert len(successes) == 60 and set(successes.values()) == {1}  # nothing lost, nothing twice
    calls = fake_stats(slow_endpoint)["calls"]
    repeats = sum(n - 1 for n in calls.values())
    in_flight = started_at_kill - logged_at_kill
    print(f"\nlogged at kill {logged_at_kill}, in flight {in_flight}, repeated calls {repeats}")
    assert repeats == in_flight <= CONCURRENCY
