"""Scores belong to the panel that made them: a judge is its name, model, temperature and rubric
version — not its address, port or speed."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from empathy_study import judge, study
from tests.judge.conftest import sample_frame, start_fake, write_study

PAIRS = 6


def judge_table(name: str, url: str, model: str = "openai/fake", concurrency: int = 4, **extra) -> str:
    lines = [f'name = "{name}"', f'model = "{model}"', f'api_base = "{url}/v1"', 'api_key_env = "FAKE_JUDGE_KEY"',
             f"concurrency = {concurrency}", "input_cost_per_million = 1.0", "output_cost_per_million = 2.0"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    return "[[judges]]\n" + "\n".join(lines) + "\n"


@pytest.fixture
def two_endpoints():
    started = [start_fake(), start_fake()]
    yield [url for _, url in started]
    for process, _ in started:
        process.kill()
        process.wait()


@pytest.fixture
def judged(tmp_path, two_endpoints, monkeypatch):
    """A study judged by two judges, a and b, on the first endpoint."""
    monkeypatch.setenv("FAKE_JUDGE_KEY", "k")
    url = two_endpoints[0]
    root = write_study(tmp_path / "study", sample_frame([f"plain {i}" for i in range(PAIRS)]),
                       judge_table("a", url) + judge_table("b", url, temperature=0.5))
    result = study.run_judges(study.Workspace(root))
    assert sum(t.ok for t in result.summary.tallies.values()) == PAIRS * 2 * 2
    return root


def rewrite_panel(root, text: str) -> study.Workspace:
    (root / "study.toml").write_text("[judge]\nswap_check_pairs = 0\n" + text)
    return study.Workspace(root)


def test_a_removed_judge_leaves_the_panel(judged, two_endpoints):
    both = study.export(study.Workspace(judged)).table.set_index("pair_id")
    ws = rewrite_panel(judged, judge_table("a", two_endpoints[0]))
    alone = study.export(ws).table.set_index("pair_id")
    scores = study.export_scores(ws).scores
    a = scores[scores["construct"] == "empathy"].set_index("pair_id")["score"]
    assert set(scores["judge"]) == {"a"}
    pd.testing.assert_series_equal(alone["empathy"], a.reindex(alone.index), check_names=False)
    assert (alone["empathy_judges"] == 1).all() and (both["empathy_judges"] == 2).all()
    record = study.export(ws).record
    assert record["scores_from"] == {"empathy": {"a": PAIRS}, "attachment": {"a": PAIRS}}


def test_a_judge_pointed_at_another_model_is_judged_again(judged, two_endpoints):
    url = two_endpoints[0]
    ws = rewrite_panel(judged, judge_table("a", url, model="openai/fake-v2") + judge_table("b", url, temperature=0.5))
    plan = study.plan_judging(ws)
    calls = {line.judge: line.calls for line in plan.lines}
    assert calls == {"a": PAIRS * 2, "b": 0}
    exported = study.export(ws)
    assert exported.table["empathy"].isna().all()  # a's old model no longer speaks for the panel
    assert exported.record["scores_from"]["empathy"] == {"b": PAIRS}


@pytest.mark.parametrize("change", ["concurrency", "rpm", "port", "timeout"])
def test_how_a_judge_is_reached_changes_nothing(judged, two_endpoints, change):
    url = two_endpoints[1] if change == "port" else two_endpoints[0]  # the same fake, another port
    extra = {"concurrency": {"concurrency": 1}, "rpm": {"rpm": 30}, "port": {}, "timeout": {"timeout": 5}}[change]
    ws = rewrite_panel(judged, judge_table("a", url, **extra) + judge_table("b", two_endpoints[0], temperature=0.5))
    assert study.plan_judging(ws).calls == 0
    result = study.run_judges(ws)
    assert result.summary is None  # nothing was requested again
    assert study.export(ws).table["empathy"].notna().all()


def test_every_run_is_on_record(judged):
    runs = judge.JudgmentLog(study.Workspace(judged).judgments).runs()
    assert len(runs) == 1
    run = runs[0]
    assert {"litellm", "instructor", "empathy-study"} <= set(run["versions"])
    assert [j["name"] for j in run["panel"]] == ["a", "b"] and run["calls_planned"] == PAIRS * 2 * 2
    records = judge.JudgmentLog(study.Workspace(judged).judgments).read().records
    assert {r.run_id for r in records} == {run["run_id"]}
