"""Fixtures for the judge tests: a fault-injecting OpenAI-compatible endpoint and tiny studies."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]


def start_fake(latency: float = 0.0) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "tests.support.fake_llm", "--latency", str(latency)],
                               cwd=REPO, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"fake endpoint did not start: {line!r}")
    return process, f"http://127.0.0.1:{int(line.split()[1])}"


@pytest.fixture
def fake_endpoint():
    process, url = start_fake()
    yield url
    process.kill()
    process.wait()


def fake_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/stats") as answer:
        return json.loads(answer.read())


def sample_frame(prompts: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "pair_id": [f"p{i:03d}" for i in range(len(prompts))], "conversation_id": [f"c{i}" for i in range(len(prompts))],
        "user_id": [f"u{i}" for i in range(len(prompts))], "model": "m", "turn_index": 1, "timestamp": None,
        "prompt": prompts, "response": [f"I hear you ({i})." for i in range(len(prompts))],
        "reply": [f"Thanks, that helps ({i})." for i in range(len(prompts))],
        "stratum": "all", "topic": "t0", "inclusion_prob": 0.5,
    })


def write_study(root: Path, sample: pd.DataFrame, judges_toml: str, judge_toml: str = "swap_check_pairs = 0\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    sample.to_parquet(root / "sample.parquet")
    (root / "study.toml").write_text(f"[judge]\n{judge_toml}\n{judges_toml}")
    return root
