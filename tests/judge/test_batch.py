"""Batch judging against a fake files/batches endpoint: submit, poll, collect into the same log —
every item once, failures with their reasons, cost at the batch price — and a run killed between
creating a batch and recording it neither loses nor duplicates the batch."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from empathy_study import judge, study
from empathy_study.study.workspace import Workspace
from tests.judge.conftest import REPO, sample_frame, write_study

SECRET = "sk-batch-SECRET-0123456789"
PRICE_IN, PRICE_OUT = 0.25, 1.0  # USD per million tokens: this batch judge's batch prices


@pytest.fixture
def fake_batches():
    process = subprocess.Popen([sys.executable, "-m", "tests.support.fake_batch", "--polls", "1"], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    assert line.startswith("PORT "), line
    yield f"http://127.0.0.1:{int(line.split()[1])}"
    process.kill()
    process.wait()


def stats(url: str) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"{url}/stats") as answer:
        return json.loads(answer.read())


def batch_study(tmp_path, url: str, prompts: list[str], monkeypatch, extra: str = "") -> Workspace:
    monkeypatch.setenv("FAKE_BATCH_KEY", SECRET)
    toml = f"""
[[judges]]
name = "batcher"
model = "openai/fake"
api_base = "{url}/v1"
api_key_env = "FAKE_BATCH_KEY"
batch = true
input_cost_per_million = {PRICE_IN}
output_cost_per_million = {PRICE_OUT}
{extra}"""
    return Workspace(write_study(tmp_path / "study", sample_frame(prompts), toml))


def ledger_events(ws: Workspace) -> list[dict]:
    return [json.loads(line) for line in (ws.root / judge.BATCHES_FILE).read_text().splitlines()]


def expected_score(messages: list[dict]) -> int:
    """The fake's answer for a request: computed from the request as sent (read back from the input file)."""
    return 1 + int(hashlib.sha1(messages[-1]["content"].encode()).hexdigest(), 16) % 7


def test_submit_poll_collect_and_retry_failures(tmp_path, fake_batches, monkeypatch):
    prompts = ["I feel lonely today", "FAULT:400 please", "FAULT:score9 now", "FAULT:broken here", "a plain day"]
    ws = batch_study(tmp_path, fake_batches, prompts, monkeypatch)
    plan = study.plan_judging(ws)
    line = plan.lines[0]
    assert line.batch and line.batches == 1 and line.calls == 10 and line.seconds is None
    assert line.cost_usd == pytest.approx((line.tokens_in * PRICE_IN + line.tokens_out * PRICE_OUT) / 1e6)

    first = study.run_judges(ws)  # submits and returns
    assert first.summary is None and len(first.batches.submitted) == 1
    assert not ws.judgments.exists()
    seen = stats(fake_batches)
    assert len(seen["batches"]) == 1 and len(seen["batches"][0]["custom_ids"]) == 10
    assert seen["batches"][0]["metadata"]["empathy_batch"] == first.batches.submitted[0].key
    assert [e["event"] for e in ledger_events(ws)] == ["prepared", "uploaded", "submitted"]
    assert study.plan_judging(ws).plans[0].in_batch == 10  # in flight: planned for nobody

    second = study.run_judges(ws)  # polls: still in progress, nothing new submitted
    assert [b.status for b in second.batches.pending] == ["in_progress"] and not second.batches.submitted
    assert len(stats(fake_batches)["batches"]) == 1 and not ws.judgments.exists()

    third = study.run_judges(ws)  # completed: collected; the failures go out again in a new batch
    assert len(third.batches.collected) == 1 and third.batches.records == 10
    records = judge.JudgmentLog(ws.judgments).read().records
    assert len(records) == 10 and len({r.cache_key() for r in records}) == 10
    sent = {json.loads(line)["custom_id"]: json.loads(line)["body"]
            for line in third.batches.collected[0].path.read_text().splitlines()}
    by_id = {judge._batch.custom_id(judge._call.WorkItem(r.pair_id, r.construct, r.sample_index, r.prompt_version, [],
                                                         (1, 2, 3, 4, 5, 6, 7))): r for r in records}
    assert set(by_id) == set(sent)
    failed = {r.pair_id: r.error for r in records if r.score is None}
    assert set(failed) == {"p001", "p002", "p003"}
    assert all("HTTP 400" in failed["p001"] for _ in [0]) and "invalid output" in failed["p002"]
    assert "invalid output" in failed["p003"]
    for custom, record in by_id.items():
        if record.score is not None:
            assert record.score == expected_score(sent[custom]["messages"])
            assert record.model_returned == "fake-batch-model-v1" and record.latency_ms is None
            assert record.cost_usd == pytest.approx((100 * PRICE_IN + 20 * PRICE_OUT) / 1e6)
    submitting_run = first.batches.submitted[0].run_id
    assert {r.run_id for r in records} == {submitting_run}
    assert submitting_run in {run["run_id"] for run in judge.JudgmentLog(ws.judgments).runs()}
    assert SECRET not in ws.judgments.read_text() + (ws.root / judge.BATCHES_FILE).read_text()
    retry = stats(fake_batches)["batches"]
    assert len(retry) == 2 and len(retry[1]["custom_ids"]) == 6  # three pairs × two constructs, sent once more
    assert {json.loads(c)[0] for c in retry[1]["custom_ids"]} == {"p001", "p002", "p003"}

    study.run_judges(ws)
    study.run_judges(ws)  # the retry batch completes; the failures fail again and go out a third time
    records = judge.JudgmentLog(ws.judgments).read().records
    assert len(records) == 16 and sum(r.score is not None for r in records) == 4
    submitted = [c for b in stats(fake_batches)["batches"] for c in b["custom_ids"]]
    ok_ids = {custom for custom, r in by_id.items() if r.score is not None}
    assert all(submitted.count(c) == 1 for c in ok_ids)  # a finished item is never sent again


def test_expired_batch_keeps_what_finished_and_records_the_rest(tmp_path, fake_batches, monkeypatch):
    ws = batch_study(tmp_path, fake_batches, ["one fine day", "FAULT:expire slow", "another day"], monkeypatch,
                     extra="")
    study.run_judges(ws)
    study.run_judges(ws)
    result = study.run_judges(ws)
    assert [b.collected["status"] for b in result.batches.collected] == ["expired"]
    records = judge.JudgmentLog(ws.judgments).read().records
    assert len(records) == 6
    expired = [r for r in records if r.pair_id == "p001"]
    assert len(expired) == 2 and all(r.score is None and "expired" in r.error for r in expired)
    assert all(r.score is not None for r in records if r.pair_id != "p001")


def test_a_batch_the_provider_lost_ends_as_failures_and_its_requests_go_out_again(tmp_path, fake_batches,
                                                                                  monkeypatch):
    """A 404 on retrieve (deleted, or a vLLM server restarted) must not block every later run."""
    import urllib.request

    ws = batch_study(tmp_path, fake_batches, ["first words", "second words"], monkeypatch)
    first = study.run_judges(ws)
    lost = first.batches.submitted[0].batch_id
    urllib.request.urlopen(urllib.request.Request(f"{fake_batches}/forget/{lost}", method="POST")).read()

    second = study.run_judges(ws)
    assert [b.collected["status"] for b in second.batches.collected] == ["missing"]
    records = judge.JudgmentLog(ws.judgments).read().records
    assert len(records) == 4 and all(r.score is None and lost in r.error and "404" in r.error for r in records)
    assert len(second.batches.submitted) == 1  # the same four requests, in a new batch
    study.run_judges(ws)
    study.run_judges(ws)
    records = judge.JudgmentLog(ws.judgments).read().records
    assert sum(r.score is not None for r in records) == 4 and len(records) == 8


class Killed(BaseException):
    """The process dying: not an exception any code path catches."""


def test_kill_between_submit_and_record_neither_loses_nor_duplicates(tmp_path, fake_batches, monkeypatch):
    ws = batch_study(tmp_path, fake_batches, ["first words", "second words"], monkeypatch)
    _, litellm = judge._call._libraries()
    real = litellm.acreate_batch

    async def create_then_die(*args, **kwargs):
        await real(*args, **kwargs)  # the provider has the batch ...
        raise Killed  # ... and the run dies before recording it

    monkeypatch.setattr(litellm, "acreate_batch", create_then_die)
    with pytest.raises(Killed):
        study.run_judges(ws)
    assert [e["event"] for e in ledger_events(ws)] == ["prepared", "uploaded"]
    assert len(stats(fake_batches)["batches"]) == 1
    monkeypatch.setattr(litellm, "acreate_batch", real)

    again = study.run_judges(ws)  # finds the batch at the provider instead of submitting it again
    assert len(again.batches.recovered) == 1 and not again.batches.submitted
    seen = stats(fake_batches)
    assert len(seen["batches"]) == 1 and len(seen["files"]) == 1
    assert ledger_events(ws)[-1] == {**ledger_events(ws)[-1], "event": "submitted", "batch_id": seen["batches"][0]["id"]}

    study.run_judges(ws)
    study.run_judges(ws)
    records = judge.JudgmentLog(ws.judgments).read().records
    assert len(records) == 4 and len({r.cache_key() for r in records}) == 4
    assert len(stats(fake_batches)["batches"]) == 1


def test_kill_before_create_submits_once(tmp_path, fake_batches, monkeypatch):
    ws = batch_study(tmp_path, fake_batches, ["only words"], monkeypatch)
    _, litellm = judge._call._libraries()
    real = litellm.acreate_batch

    async def die(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(litellm, "acreate_batch", die)
    with pytest.raises(Killed):
        study.run_judges(ws)
    monkeypatch.setattr(litellm, "acreate_batch", real)
    assert len(stats(fake_batches)["batches"]) == 0
    again = study.run_judges(ws)  # nothing at the provider: submitted now, with the file already uploaded
    assert len(again.batches.submitted) == 1
    seen = stats(fake_batches)
    assert len(seen["batches"]) == 1 and len(seen["files"]) == 1


def test_batch_price_is_litellms_batch_price():
    listed = judge.JudgeConfig(name="mini", model="openai/gpt-4o-mini", batch=True)
    _, litellm = judge._call._libraries()
    info = litellm.get_model_info("openai/gpt-4o-mini")
    assert judge.batch_price_per_token(listed) == (info["input_cost_per_token_batches"],
                                                   info["output_cost_per_token_batches"])
    assert judge.batch_price_per_token(judge.JudgeConfig(name="x", model="openai/unlisted-model", batch=True)) is None
    with pytest.raises(judge.JudgeError, match="embedded local model"):
        judge.batch_target(judge.JudgeConfig(name="s", model="local/smollm2", batch=True))


def test_cli_dry_run_then_submit_under_a_cost_cap(tmp_path, fake_batches, monkeypatch):
    from typer.testing import CliRunner

    from empathy_study.study.cli import app

    ws = batch_study(tmp_path, fake_batches, ["some words", "more words", "last words"], monkeypatch)
    runner = CliRunner()
    dry = runner.invoke(app, ["judge", "run", str(ws.root), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    said = " ".join(dry.output.split())
    assert "batch judge — 6 calls in 1 batch(es)" in said and "wall time" not in said
    assert not (ws.root / judge.BATCHES_FILE).exists() and stats(fake_batches)["batches"] == []
    plan = study.plan_judging(ws)
    per_item = [(item.estimated_tokens_in() * PRICE_IN + 256 * PRICE_OUT) / 1e6 for item in plan.plans[0].items]
    cap = sum(per_item[:4]) + per_item[4] / 2  # room for four items at their most, not five
    run = runner.invoke(app, ["judge", "run", str(ws.root), "--max-cost", repr(cap)])
    assert run.exit_code == 0, run.output
    said = " ".join(run.output.split())
    assert "2 batch item(s) not submitted" in said and "submitted now" in said
    assert len(stats(fake_batches)["batches"][0]["custom_ids"]) == 4


def test_input_files_stay_within_the_size_limit_and_the_dry_run_counts_them(tmp_path, monkeypatch):
    prompts = [("word " * (40 * (i % 5 + 1))).strip() for i in range(12)]
    ws = batch_study(tmp_path, "http://127.0.0.1:9", prompts, monkeypatch)
    plan = study.plan_judging(ws).plans[0]
    target = judge.batch_target(plan.judge)
    sizes = [len(json.dumps(judge._batch.request_line(plan.judge, target, item), separators=(",", ":"))) + 1
             for item in plan.items]
    monkeypatch.setattr(judge._batch, "MAX_BYTES", sum(sizes) // 3)
    made = judge.BatchLedger(ws.judgments).prepare(plan.judge, target, plan.items, run_id=None)
    assert all(batch.path.stat().st_size <= judge._batch.MAX_BYTES for batch in made)
    assert sum(batch.requests for batch in made) == len(plan.items) and len(made) >= 3
    counted = judge._batch.batch_count(plan.judge, plan.items)  # a lower bound: files are filled greedily
    assert counted <= len(made) <= counted + 1
