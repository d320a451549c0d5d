"""Fault injection against a fake OpenAI-compatible endpoint: every item ends as a valid judgment or a
recorded failure — none lost, none duplicated — and the key never reaches a file."""

from __future__ import annotations

from collections import Counter

import pytest
from typer.testing import CliRunner

from empathy_study import judge, study
from empathy_study.study.cli import app
from empathy_study.study.workspace import Workspace
from tests.judge.conftest import fake_stats, sample_frame, write_study

SECRET = "sk-test-SECRET-0123456789"
FAULTS = ["FAULT:429x2", "FAULT:500x1", "FAULT:brokenx1", "FAULT:score9", "FAULT:timeoutx1", "plain", "FAULT:429x1",
          "also plain"]


def judges_toml(url: str, extra: str = "") -> str:
    return f"""
[[judges]]
name = "fake"
model = "openai/fake"
api_base = "{url}/v1"
api_key_env = "FAKE_JUDGE_KEY"
concurrency = 8
retries = 3
timeout = 2
logprobs = true
input_cost_per_million = 1.0
output_cost_per_million = 2.0
{extra}"""


def run_study(root) -> tuple[int, judge.LogState]:
    """Run the study's panel; (calls made, the log afterwards)."""
    ws = Workspace(root)
    result = study.run_judges(ws)
    called = 0 if result.summary is None else sum(t.called for t in result.summary.tallies.values())
    return called, judge.JudgmentLog(ws.judgments).read()


def test_every_item_ends_valid_or_recorded(tmp_path, fake_endpoint, monkeypatch):
    monkeypatch.setenv("FAKE_JUDGE_KEY", SECRET)
    root = write_study(tmp_path / "study", sample_frame([f"I feel {f} today" for f in FAULTS]), judges_toml(fake_endpoint))
    called, state = run_study(root)
    items = {(p, c) for p in sample_frame(FAULTS)["pair_id"] for c in ("empathy", "attachment")}
    successes = Counter((r.pair_id, r.construct) for r in state.records if r.score is not None)
    failures = {(r.pair_id, r.construct): r.error for r in state.records if r.score is None}
    assert set(successes) | set(failures) == items  # none lost
    assert all(n == 1 for n in successes.values())  # none duplicated
    score9 = {k: v for k, v in failures.items() if k[0] == "p003"}
    assert len(score9) == 2 and all("invalid output" in v for v in score9.values())
    assert set(failures) == set(score9), failures  # transient faults were retried to success
    ok = [r for r in state.records if r.score is not None]
    assert all(1 <= r.score <= 7 and r.model_returned == "fake-model-v1" for r in ok)
    assert all(r.expected_score == pytest.approx(4.332, abs=0.01) for r in ok)
    # Re-asked answers cost every completion that was made: usage accumulates over attempts.
    assert all(r.tokens_in % 100 == 0 and r.cost_usd == pytest.approx(r.tokens_in * 1e-6 + r.tokens_out * 2e-6)
               for r in state.records if r.tokens_in)
    assert all(r.cost_usd and r.tokens_in == 200 for r in state.records if r.score is None)  # score 9 twice
    assert called == len(state.records)
    for path in root.iterdir():
        assert SECRET not in path.read_text(errors="replace"), path


def test_second_run_requests_only_what_failed(tmp_path, fake_endpoint, monkeypatch):
    monkeypatch.setenv("FAKE_JUDGE_KEY", SECRET)
    root = write_study(tmp_path / "study", sample_frame(FAULTS), judges_toml(fake_endpoint),
                       judge_toml="swap_check_pairs = 0\nmax_attempts = 2\n")
    run_study(root)
    before = fake_stats(fake_endpoint)["started"]
    called, _ = run_study(root)
    after = fake_stats(fake_endpoint)["started"]
    # Only the two score9 items are retried (max_attempts 2), each with one re-ask: 2 × 2 calls.
    assert called == 2 and after - before == 4
    called, _ = run_study(root)
    assert called == 0 and fake_stats(fake_endpoint)["started"] == after


def test_fallback_model_answers_when_the_primary_keeps_failing(tmp_path, fake_endpoint, monkeypatch):
    monkeypatch.setenv("FAKE_JUDGE_KEY", SECRET)
    toml = judges_toml(fake_endpoint).replace('model = "openai/fake"', 'model = "openai/always500"')
    toml += 'fallbacks = ["openai/fake"]\n'
    root = write_study(tmp_path / "study", sample_frame(["plain one", "plain two"]), toml.replace("retries = 3", "retries = 1"))
    _, state = run_study(root)
    assert all(r.score is not None and r.model_returned == "fake-model-v1" for r in state.records)
    assert all(r.model == "openai/always500" for r in state.records)  # the judge keeps its identity


def test_dry_run_calls_nothing_and_max_cost_stops_cleanly(tmp_path, fake_endpoint, monkeypatch):
    monkeypatch.setenv("FAKE_JUDGE_KEY", SECRET)
    root = write_study(tmp_path / "study", sample_frame([f"plain {i}" for i in range(20)]), judges_toml(fake_endpoint))
    runner = CliRunner()
    dry = runner.invoke(app, ["judge", "run", str(root), "--dry-run"], catch_exceptions=False)
    assert dry.exit_code == 0 and "40" in dry.output and fake_stats(fake_endpoint)["started"] == 0
    # One call is estimated at ~(prompt/4 + 256) tokens: about 0.0008 USD; a cap of 0.004 allows a few.
    capped = runner.invoke(app, ["judge", "run", str(root), "--max-cost", "0.004"], catch_exceptions=False)
    assert capped.exit_code == 0 and "stopped before exceeding --max-cost" in capped.output
    state = judge.JudgmentLog(root / "judgments.jsonl").read()
    assert 0 < len(state.records) < 40
    assert sum(r.cost_usd for r in state.records) <= 0.004


def test_cli_errors_name_what_to_fix(tmp_path, fake_endpoint, monkeypatch):
    monkeypatch.delenv("FAKE_JUDGE_KEY", raising=False)
    root = write_study(tmp_path / "study", sample_frame(["plain"]), judges_toml(fake_endpoint))
    runner = CliRunner()
    missing_key = runner.invoke(app, ["judge", "run", str(root)])
    assert missing_key.exit_code == 1 and "FAKE_JUDGE_KEY" in missing_key.output
    (root / "study.toml").write_text('[[judges]]\nname = "x"\nmodel = "nosuchprovider/model-x"\n')
    unknown = runner.invoke(app, ["judge", "run", str(root)])
    assert unknown.exit_code == 1 and "does not know the model" in unknown.output
    (root / "study.toml").write_text('[[judges]]\nname = "x"\nmodel = "openai/fake"\napi_key_env = "sk-abc def"\n')
    bad_env = runner.invoke(app, ["judge", "run", str(root)])
    assert bad_env.exit_code == 1 and "api_key_env" in bad_env.output
    (root / "sample.parquet").unlink()
    (root / "study.toml").write_text("")
    no_sample = runner.invoke(app, ["judge", "run", str(root)])
    assert no_sample.exit_code == 1 and "empathy corpus sample" in no_sample.output


@pytest.mark.parametrize("fault", ["rejected key", "unknown model"])
def test_a_provider_refusing_every_call_stops_the_run_in_one_line(tmp_path, fake_endpoint, monkeypatch, fault):
    """A wrong key or model would fail every item alike: stop at once instead of logging a failure each."""
    toml = judges_toml(fake_endpoint).replace("concurrency = 8", "concurrency = 2")
    if fault == "rejected key":
        monkeypatch.setenv("FAKE_JUDGE_KEY", SECRET + "-REJECTED")
    else:
        monkeypatch.setenv("FAKE_JUDGE_KEY", SECRET)
        toml = toml.replace('model = "openai/fake"', 'model = "openai/nosuchmodel"')
    root = write_study(tmp_path / "study", sample_frame([f"plain {i}" for i in range(30)]), toml)
    before = fake_stats(fake_endpoint)["started"]
    result = CliRunner().invoke(app, ["judge", "run", str(root)])
    expected = "rejected the key in $FAKE_JUDGE_KEY (HTTP 401)" if fault == "rejected key" else "does not serve model"
    assert result.exit_code == 1 and expected in result.output, result.output
    assert SECRET not in result.output and "Traceback" not in result.output
    assert fake_stats(fake_endpoint)["started"] - before <= 4  # the calls in flight, not one per item (60)
    assert not (root / "judgments.jsonl").exists() or SECRET not in (root / "judgments.jsonl").read_text()


def test_unreachable_api_base_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_JUDGE_KEY", SECRET)
    root = write_study(tmp_path / "study", sample_frame(["plain"]),
                       judges_toml("http://127.0.0.1:9").replace("retries = 3", "retries = 1"))
    result = CliRunner().invoke(app, ["judge", "run", str(root)])
    assert result.exit_code == 1 and "cannot reach http://127.0.0.1:9/v1" in result.output
    assert SECRET not in result.output


def test_a_run_reads_the_configuration_the_log_and_the_batch_ledger_once(tmp_path, fake_endpoint, monkeypatch):
    monkeypatch.setenv("FAKE_JUDGE_KEY", SECRET)
    root = write_study(tmp_path / "study", sample_frame(["plain one", "plain two"]), judges_toml(fake_endpoint))
    counts = Counter()

    def counted(owner, name):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            counts[f"{owner.__name__}.{name}"] += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)

    counted(Workspace, "config")
    counted(judge.JudgmentLog, "read")
    counted(judge.JudgmentLog, "frame")
    counted(judge.BatchLedger, "__init__")
    result = study.run_judges(Workspace(root))
    assert result.summary is not None and result.summary.ok == 4
    assert counts == {"Workspace.config": 1, "JudgmentLog.read": 1, "BatchLedger.__init__": 1}, counts
