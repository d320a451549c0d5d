"""The append-only log: a torn last line is tolerated, the next record starts on a fresh line."""

from __future__ import annotations

import pytest

from empathy_study import judge
from empathy_study.judge._call import expected_score
from empathy_study.judge._schema import JudgmentRecord


def record(pair_id: str, score=4, error=None) -> JudgmentRecord:
    return JudgmentRecord(pair_id=pair_id, construct="empathy", judge="j", model="m", model_returned="m",
                          prompt_version="v", sample_index=0, temperature=0.0, score=score, expected_score=None,
                          rationale="r", tokens_in=1, tokens_out=1, cost_usd=0.0, latency_ms=1.0, error=error,
                          created_at="2026-01-01T00:00:00Z")


def test_torn_last_line_is_tolerated_and_appending_starts_a_new_line(tmp_path):
    log = judge.JudgmentLog(tmp_path / "judgments.jsonl")
    log.append([record("a"), record("b")])
    with log.path.open("a") as handle:
        handle.write('{"pair_id": "c", "constr')  # a kill -9 mid-write
    state = judge.JudgmentLog(log.path).read()
    assert [r.pair_id for r in state.records] == ["a", "b"] and state.torn == 1
    judge.JudgmentLog(log.path).append([record("d")])
    state = judge.JudgmentLog(log.path).read()
    assert [r.pair_id for r in state.records] == ["a", "b", "d"] and state.torn == 1


def test_finished_and_failed_keys():
    state = judge._log.LogState(records=[record("a"), record("b", score=None, error="boom"),
                                         record("b", score=None, error="boom")])
    assert {k[0] for k in state.finished()} == {"a"}
    assert max(state.failures().values()) == 2


def test_a_foreign_file_is_refused(tmp_path):
    path = tmp_path / "judgments.jsonl"
    path.write_text("pair_id,score\n")
    with pytest.raises(judge.JudgeError, match="not an empathy-study judgment log"):
        judge.JudgmentLog(path).read()


def test_expected_score_from_top_logprobs():
    import math

    content = [{"token": t, "logprob": -0.1, "top_logprobs": []} for t in ('{"rationale": "x", "', 'score', '":', ' ')]
    content.append({"token": "4", "logprob": -0.5, "top_logprobs": [
        {"token": "4", "logprob": math.log(0.6)}, {"token": " 5", "logprob": math.log(0.3)},
        {"token": "abc", "logprob": math.log(0.1)}]})
    value = expected_score(type("L", (), {"content": content})())
    assert value == pytest.approx((4 * 0.6 + 5 * 0.3) / 0.9)
    assert expected_score(None) is None


def test_a_reader_never_meets_the_log_without_its_header(tmp_path, monkeypatch):
    """A run's first write creates the log; `empathy judge status`, or a test waiting on progress, may
    read it at any moment. At each step the writer takes, a reader sees no log or a whole one (a CI run
    caught a reader between the file's creation and its header)."""
    import os

    path = tmp_path / "judgments.jsonl"
    seen = []

    def reading_first(original):
        def step(*args):
            seen.append(len(judge.JudgmentLog(path).read().records))  # raises on a headerless log
            return original(*args)
        return step

    for name in ("link", "replace", "write", "open"):
        monkeypatch.setattr(os, name, reading_first(getattr(os, name)))
    log = judge.JudgmentLog(path)
    log.append([record("a")])
    log.append([record("b")])
    monkeypatch.undo()
    assert seen and seen[0] == 0 and seen[-1] == 1
    assert [r.pair_id for r in judge.JudgmentLog(path).read().records] == ["a", "b"]
