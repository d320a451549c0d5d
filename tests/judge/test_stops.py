"""Runs that must stop, and say why: a provider that cannot be reached whatever sets its address,
a run in which every call failed, and Ctrl-C (once: finish what is in flight; twice: now) — each
ends with one line, a non-zero exit, and a log from which a re-run resumes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest
from typer.testing import CliRunner

from empathy_study import judge, study
from empathy_study.study.cli import app
from empathy_study.study.workspace import Workspace
from tests.judge.conftest import REPO, sample_frame, start_fake, write_study

runner = CliRunner()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("model", "variable", "key", "path"), [
    ("openai/gpt-4o-mini", "OPENAI_BASE_URL", "OPENAI_API_KEY", "/v1"),
    ("openai/gpt-4o-mini", "OPENAI_API_BASE", "OPENAI_API_KEY", "/v1"),
    ("anthropic/claude-3-5-haiku-20241022", "ANTHROPIC_API_BASE", "ANTHROPIC_API_KEY", ""),
])
def test_a_provider_that_cannot_be_reached_stops_the_run_without_api_base(tmp_path, monkeypatch, model, variable,
                                                                          key, path):
    """No api_base in study.toml: the provider's own environment variable points at a closed port."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    address = f"http://127.0.0.1:{closed_port()}{path}"
    monkeypatch.setenv(variable, address)
    monkeypatch.setenv(key, "test-key-not-used-anywhere")
    panel = f'[[judges]]\nname = "hosted"\nmodel = "{model}"\nretries = 1\nconcurrency = 2\n'
    root = write_study(tmp_path / "study", sample_frame([f"I feel alone {i}" for i in range(12)]), panel)
    started = time.perf_counter()
    result = runner.invoke(app, ["judge", "run", str(root)])
    print(f"\nstopped in {time.perf_counter() - started:.1f} s")
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith(("starting", "judging"))]
    assert result.exit_code == 1, result.output
    assert lines[-1].startswith("error: judge hosted: cannot reach") and f"${variable} = {address}" in lines[-1], lines
    records = judge.JudgmentLog(root / "judgments.jsonl").read().records
    assert len(records) < 24  # stopped: not one logged failure per item (12 pairs × 2 constructs)


def test_a_run_in_which_every_call_failed_exits_non_zero(tmp_path, fake_endpoint, monkeypatch):
    monkeypatch.setenv("FAKE_JUDGE_KEY", "sk-test")
    panel = (f'[[judges]]\nname = "fake"\nmodel = "openai/fake"\napi_base = "{fake_endpoint}/v1"\n'
             'api_key_env = "FAKE_JUDGE_KEY"\nretries = 0\n')
    root = write_study(tmp_path / "study", sample_frame([f"FAULT:score9 pair {i}" for i in range(3)]), panel)
    result = runner.invoke(app, ["judge", "run", str(root)])
    assert result.exit_code == 1, result.output
    assert "error: every one of the 6 calls failed, e.g. invalid output" in result.output
    (root / "sample.parquet").unlink()
    sample_frame([f"FAULT:score9 pair {i}" if i < 2 else f"plain {i}" for i in range(3)]).to_parquet(
        root / "sample.parquet")
    mixed = runner.invoke(app, ["judge", "run", str(root)])  # one pair now scores: the run measured something
    assert mixed.exit_code == 0, mixed.output


def start_run(root, extra_env: dict) -> subprocess.Popen:
    command = [sys.executable, "-c", "from empathy_study.study.cli import app; app(prog_name='empathy')",
               "judge", "run", str(root)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=extra_env)


def wait_for_records(path, n: int, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and len(judge.JudgmentLog(path).read().records) >= n:
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} records after {seconds} s")


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_says_how_far_it_got_and_a_rerun_resumes(tmp_path, monkeypatch, presses):
    monkeypatch.setenv("FAKE_JUDGE_KEY", "sk-test")
    process_fake, url = start_fake(latency=0.4)
    try:
        panel = (f'[[judges]]\nname = "fake"\nmodel = "openai/fake"\napi_base = "{url}/v1"\n'
                 'api_key_env = "FAKE_JUDGE_KEY"\nconcurrency = 1\n')
        root = write_study(tmp_path / "study", sample_frame([f"plain pair {i}" for i in range(15)]), panel)
        run = start_run(root, dict(os.environ))
        wait_for_records(root / "judgments.jsonl", 3, run)
        for _ in range(presses):
            run.send_signal(signal.SIGINT)
            time.sleep(0.05)
        out, err = run.communicate(timeout=60)
        logged = judge.JudgmentLog(root / "judgments.jsonl").read().records
        assert run.returncode == 130, (out, err)
        message = " ".join(err.split())
        assert f"interrupted after {len(logged)} of 30 calls" in message, message
        assert "again to resume" in message and "Traceback" not in err
        if presses == 1:
            assert "stopping: no new calls start" in message
        assert 3 <= len(logged) < 30
        resumed = study.run_judges(Workspace(root))
        assert resumed.summary.called == 30 - len(logged)
        final = judge.JudgmentLog(root / "judgments.jsonl").read().records
        assert Counter(r.cache_key() for r in final).most_common(1)[0][1] == 1  # nothing judged twice
        assert len(final) == 30 and all(r.score is not None for r in final)
    finally:
        process_fake.kill()
        process_fake.wait()
