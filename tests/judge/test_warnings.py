"""Results that warn: a judge whose scores never vary, or whose rationales are not sentences, is flagged
in the run's summary and in the judge report, whatever its agreement figures look like."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from empathy_study import judge, study
from empathy_study.study.cli import app
from tests.judge.conftest import sample_frame, write_study
from tests.judge.test_log import record

runner = CliRunner()

# Rationales SmolLM2-135M wrote in a demo run (its scores: 1 for nearly every pair).
SMOLLM2_NOT_SENTENCES = ["{", "][", "Development Officer", "{ { json_schema: [Module 1, Description: "]
SENTENCES = ["I love the sentiment, but I also want to make it a little more informal.",
             "The reply thanks the assistant warmly and asks to keep talking.", "No feelings are expressed at all."]


@pytest.mark.parametrize("text", SMOLLM2_NOT_SENTENCES + ["", "fake judgment", "7 7 7 7", "<think>"])
def test_not_sentences(text):
    assert not judge.is_sentence(text)


@pytest.mark.parametrize("text", SENTENCES)
def test_sentences(text):
    assert judge.is_sentence(text)


def frame(scores: list[int], rationales: list[str], who: str = "j", construct: str = "empathy"):
    return judge.records_frame([record(f"p{i:03d}", score=s).model_copy(update={"rationale": r, "judge": who,
                                                                              "construct": construct})
                                for i, (s, r) in enumerate(zip(scores, rationales))])


def test_constant_scores_and_non_sentences_are_flagged_apart():
    good = frame([1, 4, 6, 2, 5, 7], SENTENCES * 2, who="good")
    constant = frame([1] * 6, SENTENCES * 2, who="constant")
    babble = frame([1, 4, 6, 2, 5, 7], SMOLLM2_NOT_SENTENCES + SENTENCES[:2], who="babble")
    found = judge.judge_warnings(pd.concat([good, constant, babble]))
    kinds = {(w["judge"], w["kind"]) for w in found}
    assert kinds == {("constant", "constant_scores"), ("babble", "not_sentences")}
    assert "every one of its 6 empathy scores a 1" in next(w["message"] for w in found if w["judge"] == "constant")
    assert judge.judge_warnings(frame([1] * 4, SENTENCES + SENTENCES[:1])) == []  # too few to say


def test_the_run_summary_and_the_report_print_them(tmp_path, fake_endpoint, monkeypatch):
    """The fake endpoint's rationale, "fake judgment", is no sentence: the run says so."""
    monkeypatch.setenv("FAKE_JUDGE_KEY", "sk-test")
    panel = (f'[[judges]]\nname = "fake"\nmodel = "openai/fake"\napi_base = "{fake_endpoint}/v1"\n'
             'api_key_env = "FAKE_JUDGE_KEY"\n')
    root = write_study(tmp_path / "study", sample_frame([f"plain pair {i}" for i in range(4)]), panel)
    run = runner.invoke(app, ["judge", "run", str(root)], env={"COLUMNS": "300"})
    assert run.exit_code == 0, run.output
    assert "warning: 4 of 4 empathy rationales of fake are not sentences (e.g. 'fake judgment')" in run.output
    # A judge that gives every pair a 1: write its log, then read the report.
    versions = {c: r.version for c, r in judge.study_rubrics(["prompt", "reply"]).items()}
    (root / "judgments.jsonl").unlink()
    judge.JudgmentLog(root / "judgments.jsonl").append([
        record(f"p{i:03d}", score=1).model_copy(update={
            "construct": c, "judge": "fake", "model": "openai/fake", "prompt_version": versions[c],
            "rationale": "The reply shows no attachment to the assistant at all."}) for i in range(4) for c in versions])
    (root / "sample.parquet").unlink()
    sample_frame([f"plain pair {i}" for i in range(5)]).to_parquet(root / "sample.parquet")
    judge.JudgmentLog(root / "judgments.jsonl").append([record("p004", score=1).model_copy(update={
        "construct": c, "judge": "fake", "model": "openai/fake", "prompt_version": versions[c],
        "rationale": "Nothing in it speaks of the assistant."}) for c in versions])
    report = runner.invoke(app, ["judge", "report", str(root)], env={"COLUMNS": "300"})
    assert report.exit_code == 0, report.output
    assert "fake gave every one of its 5 empathy scores a 1" in report.output
    assert "fake gave every one of its 5 attachment scores a 1" in report.output


def judged_log(root, judge_name: str, model: str, scores: list[int], rationale: str = SENTENCES[1]) -> None:
    """A log of `judge_name` scoring pairs p000… with `scores` on both constructs, under the current rubrics."""
    versions = {c: r.version for c, r in judge.study_rubrics(["prompt", "reply"]).items()}
    judge.JudgmentLog(root / "judgments.jsonl").append([
        record(f"p{i:03d}", score=s).model_copy(update={"construct": c, "judge": judge_name, "model": model,
                                                        "prompt_version": versions[c], "rationale": rationale})
        for i, s in enumerate(scores) for c in versions])


def test_a_panel_of_the_embedded_judge_alone_is_a_smoke_test_whatever_its_scores():
    """Found in a first pilot: the default panel led to an estimate with no treated pair and nothing said why.
    The embedded judge alone is a smoke test even where its scores happen to vary; the note shows the
    study.toml lines of a hosted judge and of an OpenAI-compatible server, and the dry run that prices them."""
    note = judge.study_judge_note([judge.JudgeConfig(name="smollm2", model="local/smollm2")], [], "my-study")
    assert note is not None and "smollm2 (local/smollm2) is a smoke test, not a study" in note
    assert 'api_key_env = "OPENAI_API_KEY"' in note and 'api_base = "http://127.0.0.1:8000/v1"' in note
    assert "llama-server -m FILE.gguf" in note and "vllm serve MODEL" in note
    assert "`empathy judge run my-study --dry-run` prints the calls, tokens and cost" in note
    hosted = judge.JudgeConfig(name="gpt", model="openai/gpt-4o-mini", api_key_env="OPENAI_API_KEY")
    assert judge.study_judge_note([hosted], [], "my-study") is None
    assert judge.study_judge_note([hosted, judge.JudgeConfig(name="smollm2", model="local/smollm2")], [],
                                  "my-study") is None  # an embedded judge beside a real one: only if it is flagged


def test_judge_run_ends_with_what_makes_a_study_when_scores_never_vary(tmp_path, fake_endpoint, monkeypatch):
    monkeypatch.setenv("FAKE_JUDGE_KEY", "sk-test")
    panel = (f'[[judges]]\nname = "fake"\nmodel = "openai/fake"\napi_base = "{fake_endpoint}/v1"\n'
             'api_key_env = "FAKE_JUDGE_KEY"\n')
    root = write_study(tmp_path / "study", sample_frame([f"plain pair {i}" for i in range(6)]), panel)
    judged_log(root, "fake", "openai/fake", [1] * 5)  # five pairs judged 1 already; the run judges the sixth
    run = runner.invoke(app, ["judge", "run", str(root)], env={"COLUMNS": "300"})
    assert run.exit_code == 0, run.output
    said = " ".join(run.output.split())
    assert "fake: scores that (nearly) never vary put (nearly) every pair in one arm" in said
    assert f"To make a study, replace that [[judges]] table in {root}/study.toml" in said
    assert 'api_key_env = "OPENAI_API_KEY"' in run.output and "api_base =" in run.output
    assert f"`empathy judge run {root} --dry-run` prints the calls, tokens and cost" in said


def test_export_says_and_records_that_the_embedded_judge_is_a_smoke_test(tmp_path):
    root = write_study(tmp_path / "study", sample_frame([f"plain pair {i}" for i in range(6)]),
                       '[[judges]]\nname = "smollm2"\nmodel = "local/smollm2"\n')
    judged_log(root, "smollm2", "local/smollm2", [1, 2, 5, 6, 3, 7])  # scores that vary, rationales that read well
    exported = runner.invoke(app, ["export", str(root)], env={"COLUMNS": "300"})
    assert exported.exit_code == 0, exported.output
    assert "smollm2 (local/smollm2) is a smoke test, not a study" in " ".join(exported.output.split())
    _, recorded = study.read_scored_pairs(root / "scored_pairs.parquet")
    assert recorded["judge_warnings"] == []
    assert "is a smoke test, not a study" in recorded["panel_note"] and "api_key_env" in recorded["panel_note"]
