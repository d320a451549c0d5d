"""The two opt-in additions to a judge run — the prompt's attachment (negative-control outcome) and the
terminal sample's empathy (selection on replying) — planned with the sample, and scored end to end by
the real embedded judge (SmolLM2 on llama.cpp): 4 calls, about 2–6 s each."""

from __future__ import annotations

import time

import pandas as pd

from empathy_study import judge, study
from empathy_study.study.workspace import Workspace
from tests.judge.conftest import sample_frame, write_study

PANEL = """
[[judges]]
name = "smollm2"
model = "local/smollm2"
concurrency = 1
"""


def _study(tmp_path, negative_control: bool):
    sample = sample_frame(["You're the only one who listens to me. I had an awful day at work."])
    sample["prev_prompt"] = ["Can you help me write an email to my boss?"]
    sample["prev_response"] = ["Of course — what would you like the email to say?"]
    root = write_study(tmp_path / "study", sample, PANEL,
                       judge_toml=f"swap_check_pairs = 0\nnegative_control = {str(negative_control).lower()}\n")
    terminal = sample_frame(["My dog died this morning and I can't stop crying."]).drop(
        columns=["reply", "stratum", "topic", "inclusion_prob"])
    terminal["pair_id"] = ["t000"]
    terminal["prev_prompt"], terminal["prev_response"] = "", ""
    terminal.to_parquet(root / "terminal_pairs.parquet")
    return Workspace(root)


def test_the_checks_are_opt_in_and_planned_with_the_sample(tmp_path):
    ws = _study(tmp_path, negative_control=False)
    assert study.plan_judging(ws).calls == 2  # empathy and attachment of the one sampled pair: nothing more by default
    drawn = study.draw_terminal_sample(ws, 1, seed=0)
    sampled = pd.read_parquet(ws.terminal_sample)
    assert drawn.rows == 1 and sampled["inclusion_prob"].tolist() == [1.0] and "reply" not in sampled.columns
    items = study.plan_judging(ws).plans[0].items
    assert sorted((i.pair_id, i.construct) for i in items) == [("p000", "attachment"), ("p000", "empathy"),
                                                                ("t000", "empathy")]  # no attachment without a reply
    (ws.root / "study.toml").write_text((ws.root / "study.toml").read_text().replace(
        "negative_control = false", "negative_control = true"))
    items = study.plan_judging(ws).plans[0].items
    control = [i for i in items if i.construct == "prompt_attachment"]
    assert [i.pair_id for i in control] == ["p000"]
    shown = control[0].messages[1]["content"]
    assert "only one who listens" in shown and "email to my boss" in shown  # the prompt and the exchange before it
    assert "I hear you" not in shown and "Thanks, that helps" not in shown  # never the response or the reply
    assert control[0].prompt_version == judge.load_rubric("prompt_attachment").version


def test_the_local_judge_scores_both_checks_end_to_end(tmp_path):
    ws = _study(tmp_path, negative_control=True)
    study.draw_terminal_sample(ws, 1, seed=0)
    planned = study.plan_judging(ws)
    assert planned.calls == 4 and planned.lines[0].cost_usd == 0.0  # dry run: the local judge costs nothing
    started = time.perf_counter()
    run = study.run_judges(ws)
    print(f"\n{run.summary.called} calls in {time.perf_counter() - started:.1f} s (server start included)")
    records = judge.JudgmentLog(ws.judgments).read().records
    assert sorted((r.pair_id, r.construct) for r in records) == [
        ("p000", "attachment"), ("p000", "empathy"), ("p000", "prompt_attachment"), ("t000", "empathy")]
    failed = [r.error for r in records if r.score is None]
    assert len(failed) <= 1, failed  # a tiny model may break the schema once; more means the rubric does not render
    assert study.plan_judging(ws).calls == len(failed)  # cached: only failures are asked again
    exported = study.export(ws)
    pairs = pd.read_parquet(ws.scored_pairs)
    assert {"prompt_attachment", "prompt_attachment_judges"} <= set(pairs.columns)
    by_construct = {(r.pair_id, r.construct): r.score for r in records}
    if by_construct[("p000", "prompt_attachment")] is not None:
        assert pairs["prompt_attachment"].tolist() == [by_construct[("p000", "prompt_attachment")]]
    assert exported.terminal == ws.scored_terminal_pairs
    terminal = pd.read_parquet(ws.scored_terminal_pairs)
    assert terminal["pair_id"].tolist() == ["t000"] and "attachment" not in terminal.columns
    if by_construct[("t000", "empathy")] is not None:
        assert terminal["empathy"].tolist() == [by_construct[("t000", "empathy")]]
        assert terminal["empathy_judges"].tolist() == [1]
    report = study.report_judges(ws, boot=20)  # the extra records leave the judge report to the study's constructs
    assert report["usage"][0]["calls"] == 4


def test_sample_terminal_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from empathy_study.study.cli import app

    ws = _study(tmp_path, negative_control=False)
    runner = CliRunner()
    result = runner.invoke(app, ["corpus", "sample-terminal", str(ws.root), "--n", "1"])
    assert result.exit_code == 0, result.output
    assert "sampled 1 of 1 terminal pairs" in result.output and ws.terminal_sample.exists()
    too_many = runner.invoke(app, ["corpus", "sample-terminal", str(ws.root), "--n", "5"])
    assert too_many.exit_code == 1 and too_many.output.count("error:") == 1 and "only 1" in too_many.output
    (ws.root / "terminal_pairs.parquet").unlink()
    missing = runner.invoke(app, ["corpus", "sample-terminal", str(ws.root), "--n", "1"])
    assert missing.exit_code == 1 and "empathy corpus build" in missing.output
