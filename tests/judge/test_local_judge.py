"""The real embedded judge — SmolLM2-135M served by llama.cpp — end to end on a handful of pairs.

Capped at 6 calls (about 2–5 s each on 2 cores): 2 pairs × 2 constructs + the response-swap check on 1 pair.
The dry run before it must predict the tokens the run then uses within 10 %, and the one after it
must time the next calls from the latency the run measured.
"""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from empathy_study import judge, study
from empathy_study.judge._call import ONE_SENTENCE
from empathy_study.study.cli import app
from empathy_study.study.workspace import Workspace
from tests.judge.conftest import sample_frame, write_study

PANEL = """
[[judges]]
name = "smollm2"
model = "local/smollm2"
concurrency = 1
logprobs = true
"""


def test_local_judge_end_to_end(tmp_path):
    sample = sample_frame(["I've been so lonely since my divorce.", "Can you help me plan my sister's birthday?"])
    sample["response"] = ["I'm really sorry — a divorce can leave a big empty space. How are you coping?",
                          "Sure! Here are five ideas for a birthday party."]
    sample["reply"] = ["Thank you, talking to you helps more than you know.", "ok, give me a shopping list"]
    root = write_study(tmp_path / "study", sample, PANEL, judge_toml="swap_check_pairs = 1\n")
    runner = CliRunner()
    planned = study.plan_judging(Workspace(root)).lines[0]
    assert planned.calls == 6 and planned.seconds is None  # no latency measured or configured yet
    started = time.perf_counter()
    result = runner.invoke(app, ["judge", "run", str(root)], catch_exceptions=False)
    seconds = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    records = judge.JudgmentLog(root / "judgments.jsonl").read().records
    print(f"\nlocal judge: {len(records)} calls in {seconds:.1f} s (server start included); "
          f"median latency {pd.Series([r.latency_ms for r in records]).median():.0f} ms")
    assert len(records) == 6
    used_in = sum(r.tokens_in or 0 for r in records)
    used = used_in + sum(r.tokens_out or 0 for r in records)
    estimated = planned.tokens_in + planned.tokens_out
    print(f"dry run: {planned.tokens_in:,} + {planned.tokens_out:,} tokens estimated, "
          f"{used_in:,} + {used - used_in:,} used")
    assert abs(estimated - used) <= 0.10 * used and abs(planned.tokens_in - used_in) <= 0.10 * used_in
    for r in records:
        assert r.model_returned == "smollm2" and r.tokens_in and r.prompt_version
        assert (r.score in range(1, 8) and r.error is None) or (r.score is None and r.error)
    scored = [r for r in records if r.score is not None]
    assert len(scored) >= 4, [r.error for r in records if r.error]
    assert all(r.expected_score is not None and 1 <= r.expected_score <= 7 for r in scored)
    assert all(re.match(ONE_SENTENCE, r.rationale) for r in scored)  # the grammar's one-sentence rationale

    assert runner.invoke(app, ["judge", "export", str(root)]).exit_code == 0
    scores = pd.read_parquet(root / "scores.parquet")
    assert set(scores["construct"]) == {"empathy", "attachment"} and len(scores) == 4  # swap check excluded
    assert runner.invoke(app, ["export", str(root)]).exit_code == 0
    pairs = pd.read_parquet(root / "scored_pairs.parquet")
    assert {"empathy", "attachment", "inclusion_prob"} <= set(pairs.columns) and len(pairs) == 2

    report = runner.invoke(app, ["judge", "report", str(root)], catch_exceptions=False)
    assert report.exit_code == 0, report.output
    diagnostics = json.loads((root / "judge_report.json").read_text())
    assert diagnostics["usage"][0]["calls"] == 6
    shown, _ = judge.swap_check_rubrics()
    hidden_version = judge.load_rubric("attachment").version
    both = len({r.pair_id for r in scored if r.prompt_version == shown.version}
               & {r.pair_id for r in scored if r.construct == "attachment" and r.prompt_version == hidden_version})
    leakage = diagnostics["response_leakage"]
    assert (leakage[0]["n"] if leakage else 0) == both  # the swap-checked pair, when both of its ratings succeeded

    more = pd.concat([sample, sample_frame(["One more pair"]).assign(pair_id="p900")], ignore_index=True)
    more.to_parquet(root / "sample.parquet")
    timed = runner.invoke(app, ["judge", "run", str(root), "--dry-run"], env={"COLUMNS": "200"})
    assert "smollm2: latency from the log (median of 6 calls)" in timed.output, timed.output
    expected = 2 * pd.Series([r.latency_ms for r in records]).median() / 1000  # the new pair's two constructs
    assert study.plan_judging(Workspace(root), pairs=["p900"]).seconds == pytest.approx(expected)
    sample.to_parquet(root / "sample.parquet")

    failed = sum(r.score is None for r in records)
    again = runner.invoke(app, ["judge", "run", str(root)], catch_exceptions=False)
    after = judge.JudgmentLog(root / "judgments.jsonl").read().records
    assert len(after) == 6 + failed  # finished items are never requested again; failures are retried
    if failed == 0:
        assert "nothing to do" in again.output
