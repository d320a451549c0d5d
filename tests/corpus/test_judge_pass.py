"""The judge pass of the population filter: a binary rubric through the study's judge machinery
(schema per level set, log, cache, dry run, verdicts, funnel), and the sample drawn from its verdicts."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from empathy_study import corpus, judge
from empathy_study.judge._schema import SCALE_LEVELS, judgment_model
from empathy_study.study import Workspace, population
from empathy_study.study.cli import app
from tests.judge.conftest import fake_stats, start_fake


def test_the_socioemotional_rubric_is_binary_and_reads_the_preceding_exchange():
    rubric = judge.load_rubric("socioemotional")
    assert rubric.level_set == (0, 1)
    system, user = judge.render_messages(rubric, {"prev_prompt": "I lost my job today.", "prev_response": "I'm sorry.",
                                                  "prompt": "yeah", "response": "How are you holding up?",
                                                  "reply": "better now"})
    assert '"score" (0-1)' in system["content"] and "1 = Yes" in system["content"]
    assert "User's earlier message" in user["content"] and "I lost my job today." in user["content"]
    # the study's scales are unchanged: 1..7, answered with the same Judgment class as before
    empathy = judge.load_rubric("empathy")
    assert empathy.level_set == SCALE_LEVELS and judgment_model(empathy.level_set) is judge.Judgment
    assert '"score" (1-7)' in judge.render_messages(empathy, {"prompt": "a", "response": "b", "reply": "c"})[0]["content"]


def test_the_answer_schema_follows_the_rubric_levels():
    binary = judgment_model((0, 1))
    assert binary is judgment_model((0, 1))  # built once per level set
    assert binary.model_validate({"rationale": "r", "score": 0}).score == 0
    for wrong in (2, 7):
        with pytest.raises(ValidationError):
            binary.model_validate({"rationale": "r", "score": wrong})
    with pytest.raises(ValidationError):
        judge.Judgment.model_validate({"rationale": "r", "score": 0})
    assert binary.model_json_schema()["properties"]["score"]["enum"] == [0, 1]


def test_a_rubric_must_have_a_known_level_set():
    raw = judge.load_rubric("socioemotional").model_dump()
    with pytest.raises(ValidationError):
        judge.Rubric.model_validate({**raw, "levels": {0: "no", 1: "yes", 2: "maybe"}})


def _study(tmp_path, judges_toml: str = "") -> Workspace:
    prompts = ["FAULT:yes I miss my dad so much", "FAULT:no write a SQL query", "FAULT:yes you are my only friend",
               "FAULT:score9 how do I feel"]
    pairs = pd.DataFrame({
        "pair_id": [f"p{i}" for i in range(4)], "conversation_id": [f"c{i}" for i in range(4)],
        "user_id": "u", "model": "m", "turn_index": 2, "timestamp": None, "prompt": prompts,
        "response": "answer", "reply": "reply", "prev_response": "earlier answer", "prev_prompt": "earlier question",
        "language": "en", "country": None,
    })
    root = tmp_path / "study"
    root.mkdir()
    pairs.to_parquet(root / corpus.TURN_PAIRS_FILE)
    (root / "funnel.json").write_text(json.dumps({"source": "sharegpt", "stages": [
        {"name": "deduplicated", "rows": 4, "unit": "turn_pairs"}], "rejected": {"duplicate_pair": 0}}))
    (root / "study.toml").write_text("[judge]\nmax_attempts = 1\nvalidation_retries = 0\n" + judges_toml)
    return Workspace(root)


def test_classify_judges_the_candidates_writes_verdicts_and_counts(tmp_path):
    process, url = start_fake()
    try:
        ws = _study(tmp_path, f'[corpus]\nclassify_judges = ["fake"]\n\n[[judges]]\nname = "fake"\nmodel = "openai/fake"\n'
                              f'api_base = "{url}/v1"\nconcurrency = 2\ninput_cost_per_million = 0.15\n'
                              'output_cost_per_million = 0.6\n')
        runner = CliRunner()
        dry = runner.invoke(app, ["corpus", "classify", str(ws.root), "--dry-run"], catch_exceptions=False)
        assert dry.exit_code == 0 and "4 candidate pairs" in dry.output and fake_stats(url)["started"] == 0
        plan = population.plan_classify(ws)
        assert plan.calls == 4 and plan.lines[0].cost_usd_max > 0

        result = runner.invoke(app, ["corpus", "classify", str(ws.root)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        verdicts = pd.read_parquet(ws.root / population.VERDICTS_FILE).set_index("pair_id")
        assert verdicts.loc[["p0", "p1", "p2"], "verdict"].tolist() == [True, False, True]
        assert pd.isna(verdicts.loc["p3", "verdict"])  # a score outside the rubric's levels is a failure
        records = population.classify_log(ws).read().records
        assert {r.construct for r in records} == {"socioemotional"} and {r.score for r in records} == {0, 1, None}
        funnel = json.loads(ws.funnel.read_text())
        assert funnel["stages"][-1] == {"name": "judge_pass", "rows": 2, "unit": "turn_pairs"}
        assert funnel["judge_pass"]["kept"] == 2 and funnel["judge_pass"]["unjudged"] == 1
        assert funnel["rejected"]["judge_not_socioemotional"] == 1

        calls = fake_stats(url)["started"]
        again = population.classify(ws)  # cached: nothing is called again (the failure used its one attempt)
        assert again.summary is None and fake_stats(url)["started"] == calls
        assert (ws.root / population.CLASSIFY_DIR / judge.RUNS_FILE).exists()
    finally:
        process.kill()
        process.wait()

    # the sample is drawn from the pairs the judge pass kept
    population_pairs, note = population.population_pairs(ws, corpus.read_table(ws.turn_pairs))
    assert sorted(population_pairs["pair_id"]) == ["p0", "p2"] and note["kept"] == 2


def test_an_unknown_judge_is_named(tmp_path):
    ws = _study(tmp_path)
    with pytest.raises(judge.JudgeError, match="no judge named 'nosuch'"):
        population.plan_classify(ws, judges=["nosuch"])
    assert [j.model for j in population.classify_judges(ws)] == ["local/smollm2"]  # the default


def test_a_batch_judge_is_refused_for_the_live_pass(tmp_path):
    ws = _study(tmp_path, '[[judges]]\nname = "bulk"\nmodel = "openai/gpt-4o-mini"\nbatch = true\n')
    with pytest.raises(judge.JudgeError, match="'bulk' is a batch judge"):
        population.classify_judges(ws, ["bulk"])


def test_a_stale_verdict_file_is_refused(tmp_path):
    ws = _study(tmp_path)
    pd.DataFrame({"pair_id": ["p0"], "judges": [1], "yes": [1], "verdict": [True]}).to_parquet(
        ws.root / population.VERDICTS_FILE)
    with pytest.raises(population.StudyError, match="no judge-pass verdict"):
        population.population_pairs(ws, corpus.read_table(ws.turn_pairs))


def test_the_local_judge_classifies_two_pairs(tmp_path):
    """The embedded judge (SmolLM2 through llama.cpp) end to end: two calls."""
    ws = _study(tmp_path)
    result = population.classify(ws, pairs=["p1", "p2"])
    records = population.classify_log(ws).read().records
    assert len(records) == 2 and all(r.model == "local/smollm2" for r in records)
    assert all((r.score in (0, 1) and r.error is None) or (r.score is None and r.error) for r in records)
    assert all(r.expected_score is None or 0 <= r.expected_score <= 1 for r in records)
    assert not (ws.root / population.VERDICTS_FILE).exists()  # a measurement run (`pairs`) leaves the study alone
    assert result.counts["candidates"] == 2
