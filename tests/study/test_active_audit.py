"""An active blind audit through `empathy annotate push`: each push that finds the planned labels short
of `audit_labels` draws a batch, with every sampled pair's probability on record before anyone labels
it, and `empathy export` hands the correction each pair's probability of ever being drawn.

The judges' scores and the labels are made up here by the test (simulated), not human annotations."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from empathy_study import annotation, causal, judge, study
from empathy_study.study.audit_design import audit_batches_path, read_batches
from empathy_study.study.cli import app
from empathy_study.study.labels import gold_columns
from empathy_study.study.workspace import Workspace
from tests.judge.conftest import sample_frame
from tests.judge.test_log import record

runner = CliRunner()
DOWN = "http://127.0.0.1:9"  # nothing listens: the push draws its batch, then fails to reach the server
N = 200
DISAGREE = np.arange(N) % 5 == 0  # the judges are three points apart on every fifth pair (k moves toward 4)


def active_study(root, toml: str) -> Workspace:
    root.mkdir(parents=True)
    sample_frame([f"pair {i}" for i in range(N)]).to_parquet(root / "sample.parquet")
    (root / "study.toml").write_text(
        f'[study]\nname = "active"\n[causal]\nmin_arm = 5\n[annotation]\naudit = "active"\n{toml}\n'
        '[[judges]]\nname = "j"\nmodel = "openai/j"\n[[judges]]\nname = "k"\nmodel = "openai/k"\n')
    (root / "annotation.json").write_text(json.dumps({"salt": "s", "annotators": [{"annotator": "annotator-1",
                                                                                  "url": DOWN}]}))
    versions = {c: r.version for c, r in judge.study_rubrics(["prompt", "reply"]).items()}
    empathy = np.where(np.arange(N) % 2 == 0, 6, 2)  # half treated, half control by the panel
    judge.JudgmentLog(root / "judgments.jsonl").append([
        record(f"p{i:03d}", score=int(s + (3 if s == 2 else -3) * (name == "k") * DISAGREE[i] if c == "empathy" else 3)
               ).model_copy(update={"construct": c, "judge": name, "model": f"openai/{name}",
                                    "prompt_version": versions[c], "rationale": "Names the feeling."})
        for i, s in enumerate(empathy) for c in versions for name in ("j", "k")])
    return Workspace(root)


def push(root):
    return runner.invoke(app, ["annotate", "push", str(root)], env={"COLUMNS": "400", "LABEL_STUDIO_API_KEY": "0" * 40})


def set_labels(ws: Workspace, audit_labels: int) -> None:
    text = ws.root.joinpath("study.toml").read_text()
    ws.root.joinpath("study.toml").write_text(text.replace("audit_labels = 40", f"audit_labels = {audit_labels}"))


def blind_labels(ws: Workspace, pairs, error) -> None:
    """Labels for `pairs`: judge j's empathy, and the judges' attachment (3) off by `error(i)` (simulated)."""
    versions = ws.config().prompt_versions()
    rows = [{"pair_id": p, "construct": c, "annotator": "annotator-1", "score": float(3 + error(p) if c == "attachment"
             else 6 if int(p[1:]) % 2 == 0 else 2), "mode": "blind", "annotation_id": n, "updated_at": pd.Timestamp("2026-01-01", tz="UTC"),
             "prompt_version": versions[c]} for n, (p, c) in enumerate((p, c) for p in pairs for c in versions)]
    pd.DataFrame(rows).to_parquet(ws.labels)


def test_batches_spend_the_budget_where_the_judges_disagree_and_record_it_first(tmp_path):
    ws = active_study(tmp_path / "s", "audit_labels = 40\nmin_audit_prob = 0.05")
    result = push(ws.root)
    assert result.exit_code == 1 and f"cannot reach Label Studio at {DOWN}" in result.output  # drawn, then the server
    first = read_batches(ws)
    assert len(first) == N and set(first["batch"]) == {1}
    assert abs(first["probability"].sum() - 40) < 1e-6
    assert first["probability"].min() >= 0.05 - 1e-12
    p = first.set_index("pair_id")["probability"]
    ids = p.index.to_numpy()
    disagree = pd.Series(DISAGREE, index=[f"p{i:03d}" for i in range(N)]).reindex(ids).to_numpy()
    assert p[disagree].mean() > 2 * p[~disagree].mean()  # the budget goes where the judges disagree
    recorded = json.loads(ws.annotation_state.read_text())["audit"]
    assert recorded["design"] == "active" and [b["batch"] for b in recorded["batches"]] == [1]
    assert recorded["batches"][0]["labels"] == 40 and "disagreement" in recorded["batches"][0]["need_from"]

    assert push(ws.root).exit_code == 1 and len(read_batches(ws)) == N  # the budget is planned: no new batch

    drawn = first.loc[first["drawn"], "pair_id"].tolist()
    # The labelled pairs show large attachment errors on the odd-numbered pairs (the panel's control
    # arm), not where the judges disagree: the next batch's error model follows the labels.
    blind_labels(ws, drawn, lambda pid: 2.5 if int(pid[1:]) % 2 == 1 else 0.0)
    set_labels(ws, 80)
    push(ws.root)
    both = read_batches(ws)
    assert set(both["batch"]) == {1, 2}
    second = both[both["batch"] == 2].set_index("pair_id")["probability"]
    recorded = json.loads(ws.annotation_state.read_text())["audit"]["batches"]
    assert len(recorded) == 2 and "model of the judges' squared errors" in recorded[1]["need_from"]
    undrawn = ~second.index.isin(drawn)
    assert abs(second[undrawn].sum() - 40) < 1e-6  # the pairs drawn before cost no new label
    odd = np.array([int(pid[1:]) % 2 == 1 for pid in second.index])
    assert second[odd].mean() > 2 * second[~odd].mean()

    sample = study.load_sample(ws)
    gold = gold_columns(ws, sample, ws.config().prompt_versions(), ws.config().annotation)
    expected = 1 - (1 - p.reindex(sample["pair_id"]).to_numpy()) * (1 - second.reindex(sample["pair_id"]).to_numpy())
    assert np.allclose(gold["gold_prob"], expected)
    ever = set(both.loc[both["drawn"], "pair_id"])
    assert set(gold.loc[gold["gold_drawn"] == 1, "pair_id"]) == ever
    assert np.allclose(expected, annotation.ever_drawn(np.vstack([p.reindex(sample["pair_id"]),
                                                                  second.reindex(sample["pair_id"])])))


def test_pairs_no_batch_covered_stop_the_export_and_a_switch_back_to_uniform_is_refused(tmp_path):
    ws = active_study(tmp_path / "s", "audit_labels = 40")
    push(ws.root)
    assert audit_batches_path(ws).exists()
    sample = study.load_sample(ws)
    grown = pd.concat([sample, sample.head(3).assign(pair_id=["new-1", "new-2", "new-3"])], ignore_index=True)
    grown.to_parquet(ws.sample)
    blind_labels(ws, sample["pair_id"].head(2), lambda pid: 0.0)
    result = runner.invoke(app, ["export", str(ws.root)])
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "3 sampled pairs are in no batch of the active audit" in said
    again = push(ws.root)
    assert again.exit_code == 1 and "raise [annotation] audit_labels" in " ".join(again.output.split())
    text = ws.root.joinpath("study.toml").read_text().replace('audit = "active"', 'audit = "uniform"')
    ws.root.joinpath("study.toml").write_text(text)
    back = push(ws.root)
    assert back.exit_code == 1 and "cannot continue it" in " ".join(back.output.split())


def test_a_uniform_audit_already_pushed_becomes_the_first_batch(tmp_path):
    ws = active_study(tmp_path / "s", "audit_labels = 60")
    text = ws.root.joinpath("study.toml").read_text().replace('audit = "active"', 'audit = "uniform"\naudit_rate = 0.15')
    ws.root.joinpath("study.toml").write_text(text)
    push(ws.root)  # a uniform push (the server is down, but the push is on record)
    state = json.loads(ws.annotation_state.read_text())
    assert state["audit"] == {"design": "uniform", "rate": 0.15, "seed": 0} and state["blind"] is False
    state["pushed"] = state["blind"] = True  # as a push that reached the server records it
    ws.annotation_state.write_text(json.dumps(state))
    ws.root.joinpath("study.toml").write_text(text.replace('audit = "uniform"', 'audit = "active"'))
    push(ws.root)
    batches = read_batches(ws)
    first = batches[batches["batch"] == 1]
    assert np.allclose(first["probability"], 0.15)
    assert first["drawn"].to_numpy().tolist() == annotation.audit_draw(first["pair_id"], 0.15, 0).tolist()
    undrawn = ~batches[batches["batch"] == 2]["pair_id"].isin(first.loc[first["drawn"], "pair_id"]).to_numpy()
    assert abs(batches[batches["batch"] == 2]["probability"].to_numpy()[undrawn].sum() - (60 - 0.15 * N)) < 1e-6


def test_the_last_estimates_weights_send_the_next_batch_where_an_error_costs_most(tmp_path):
    """estimates/audit_need.parquet (written by `empathy estimate`): a pair whose arm has a propensity
    near 0 carries a large inverse-propensity weight into the correction, so its label is worth more."""
    ws = active_study(tmp_path / "s", "audit_labels = 40\nmin_audit_prob = 0.02")
    ids = study.load_sample(ws)["pair_id"]
    heavy = np.arange(N) % 7 == 0
    (ws.root / "estimates").mkdir()
    pd.DataFrame({"pair_id": ids, "weight": np.where(heavy, 12.0, 1.5)}).to_parquet(ws.root / "estimates" /
                                                                                    "audit_need.parquet")
    push(ws.root)
    p = read_batches(ws).set_index("pair_id")["probability"].reindex(ids).to_numpy()
    agree = ~DISAGREE
    assert p[heavy & agree].mean() > 4 * p[~heavy & agree].mean()
    recorded = json.loads(ws.annotation_state.read_text())["audit"]["batches"][0]
    assert "inverse-propensity weight" in recorded["need_from"]


def test_batches_and_their_records_written_apart_are_refused_not_mixed(tmp_path):
    """A restored or older annotation.json beside a newer audit_batches.parquet: the weights would be
    wrong, so push and export stop and say why."""
    ws = active_study(tmp_path / "s", "audit_labels = 40")
    before = ws.annotation_state.read_text()
    push(ws.root)
    assert read_batches(ws)["batch"].unique().tolist() == [1]
    ws.annotation_state.write_text(before)  # the state as it was before the batch
    again = push(ws.root)
    said = " ".join(again.output.split())
    assert again.exit_code == 1 and "holds audit batches [1] but annotation.json records none" in said
    assert read_batches(ws)["batch"].unique().tolist() == [1]  # nothing appended


def test_plan_forecasts_what_an_active_batch_would_buy_while_the_audit_is_uniform(tmp_path):
    """`annotate plan` under a uniform audit: beside the uniform pairs the target width needs, the pairs an
    active batch (the one `push` would draw) is forecast to need for the same audit variance, from the
    labelled pairs' residuals in estimates/audit_need.parquet. The estimate's files are written by the
    test here (SIMULATED residuals: large on the pairs whose arm weight is large)."""
    ws = active_study(tmp_path / "s", "audit_labels = 40")
    text = ws.root.joinpath("study.toml").read_text().replace('audit = "active"', 'audit = "uniform"\naudit_rate = 0.3')
    ws.root.joinpath("study.toml").write_text(text)
    push(ws.root)
    ids = study.load_sample(ws)["pair_id"]
    drawn = annotation.audit_draw(ids, 0.3, 0)
    blind_labels(ws, ids[drawn], lambda p: 0)
    heavy = np.arange(N) % 7 == 0
    estimates = ws.root / "estimates"
    estimates.mkdir()
    residual = np.where(drawn, np.where(heavy, 3.0, 0.2), np.nan)
    pd.DataFrame({"pair_id": ids, "weight": np.where(heavy, 12.0, 1.5), "residual": residual}).to_parquet(
        estimates / "audit_need.parquet")
    corrected = {"method": "dr_gold_corrected", "estimand": "ATE", "weighted": False, "estimate": 0.4}
    (estimates / "estimates.json").write_text(json.dumps({"estimates": [corrected], "gold": {
        "plan": {"variance": 0.04, "audit_variance": 0.03, "audited": int(drawn.sum()), "pairs": N},
        "design": {"probabilities_vary": False}}}))
    uniform = causal.plan_audit(0.04, 0.03, int(drawn.sum()), N, target_width=0.6)
    result = runner.invoke(app, ["annotate", "plan", str(ws.root), "--ci-width", "0.6"], env={"COLUMNS": "400"})
    said = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert f"about {uniform.more:,} more audited pairs" in said
    forecast = re.search(r'under an active design \(\[annotation\] audit = "active"\): about (\d+) more', said)
    assert forecast and 0 < int(forecast.group(1)) < uniform.more, said
    assert f"forecast from the {int(drawn.sum()):,} labelled pairs' residuals" in said
    print(f"\n{said}")
    pd.DataFrame({"pair_id": ids, "weight": 1.5}).to_parquet(estimates / "audit_need.parquet")  # an older estimate
    older = " ".join(runner.invoke(app, ["annotate", "plan", str(ws.root), "--ci-width", "0.6"]).output.split())
    assert "no forecast" in older and "predates the residuals" in older


def test_a_raised_audit_rate_is_the_rate_the_next_push_draws_and_records(tmp_path):
    """A uniform audit pushed at 0.15, then audit_rate raised to 0.3: the next push draws at 0.3 (it used
    to draw at the recorded 0.15 and record 0.3, so the record no longer described the tasks pushed).
    Refused here as too small for min_arm, its message shows the rate it drew at."""
    ws = active_study(tmp_path / "s", "audit_labels = 60")
    text = ws.root.joinpath("study.toml").read_text().replace('audit = "active"', 'audit = "uniform"\naudit_rate = 0.15')
    ws.root.joinpath("study.toml").write_text(text)
    push(ws.root)
    assert json.loads(ws.annotation_state.read_text())["audit"]["rate"] == 0.15
    ws.root.joinpath("study.toml").write_text(text.replace("audit_rate = 0.15", "audit_rate = 0.3")
                                              .replace("min_arm = 5", "min_arm = 150"))
    said = " ".join(push(ws.root).output.split())
    drawn = int(annotation.audit_draw(study.load_sample(ws)["pair_id"], 0.3, 0).sum())
    assert f"the blind audit drew {drawn} of the {N} sampled pairs (audit_rate 0.3)" in said, said


def test_adding_an_annotator_keeps_the_rate_the_audit_was_pushed_at(tmp_path):
    """`add-annotator` saves annotation.json (AnnotationState.save): the uniform audit's record stays the
    rate its tasks were pushed at, whatever study.toml says now — an active design's batch 1 is read
    from it."""
    from empathy_study.study.annotate import AnnotationState

    ws = active_study(tmp_path / "s", "audit_labels = 60")
    text = ws.root.joinpath("study.toml").read_text().replace('audit = "active"', 'audit = "uniform"\naudit_rate = 0.15')
    ws.root.joinpath("study.toml").write_text(text)
    push(ws.root)
    ws.root.joinpath("study.toml").write_text(text.replace("audit_rate = 0.15", "audit_rate = 0.4"))
    state = AnnotationState.load(ws)
    state.annotators.append({"annotator": "annotator-2", "url": "http://127.0.0.1:10"})
    state.save("http://127.0.0.1:8080")
    assert json.loads(ws.annotation_state.read_text())["audit"] == {"design": "uniform", "rate": 0.15, "seed": 0}


def test_a_lower_rate_or_another_seed_after_a_blind_push_is_refused(tmp_path):
    """Blind tasks already on the annotators' servers at audit_rate 0.3: a push at 0.15, or under another
    seed, would record a draw without some of them, so it stops with one error line."""
    ws = active_study(tmp_path / "s", "audit_labels = 60")
    text = ws.root.joinpath("study.toml").read_text().replace('audit = "active"', 'audit = "uniform"\naudit_rate = 0.3')
    ws.root.joinpath("study.toml").write_text(text)
    push(ws.root)
    state = json.loads(ws.annotation_state.read_text())
    state["pushed"] = state["blind"] = True  # as a push that reached the server records it
    ws.annotation_state.write_text(json.dumps(state))
    for changed in (text.replace("audit_rate = 0.3", "audit_rate = 0.15"),
                    text.replace("audit_rate = 0.3", "audit_rate = 0.3\naudit_seed = 7")):
        ws.root.joinpath("study.toml").write_text(changed)
        said = " ".join(push(ws.root).output.split())
        assert said.startswith("error:") and "only raise the rate" in said, said
    assert json.loads(ws.annotation_state.read_text())["audit"] == {"design": "uniform", "rate": 0.3, "seed": 0}
