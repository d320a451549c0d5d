"""The calibration stage: study rubric copies, held-out fits, the lock, and the round trip
lock → export → the exact scores `empathy estimate` reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from empathy_study import annotation, judge, study
from empathy_study.study import calibrate
from empathy_study.study.export import validation_note
from empathy_study.study.provenance import read_scored_pairs
from empathy_study.study.workspace import StudyError, Workspace
from tests.study.conftest import make_simulated


def edited_rubric(study_dir: Workspace, construct: str, marker: str) -> str:
    text = calibrate.rubric_text(study_dir, construct)
    return text.replace('instruction = """\n', f'instruction = """\n{marker}\n', 1)


def test_a_study_copy_of_a_rubric_replaces_the_packaged_one_for_judge_and_annotators(simulated_study):
    packaged = simulated_study.config().prompt_versions()
    rubric = calibrate.save_rubric(simulated_study, "empathy", edited_rubric(simulated_study, "empathy", "MARKER-42."))
    config = simulated_study.config()
    assert rubric.version == config.prompt_versions()["empathy"] != packaged["empathy"]
    assert config.prompt_versions()["attachment"] == packaged["attachment"]
    assert "MARKER-42." in annotation.label_config(config.rubrics()["empathy"])  # what annotators see
    first = pd.read_parquet(simulated_study.sample)["pair_id"].iloc[0]
    plan = study.plan_judging(simulated_study, pairs=[first], judges=["sim-low"])  # what the judge is sent
    empathy_items = [i for i in plan.plans[0].items if i.construct == "empathy"]
    assert empathy_items and all("MARKER-42." in i.messages[0]["content"] for i in empathy_items)
    assert {i.prompt_version for i in empathy_items} == {rubric.version}
    # the packaged rubric is untouched for every other study
    assert judge.load_rubric("empathy").version == packaged["empathy"]


def test_the_response_swap_check_reads_the_study_copy_of_attachment(simulated_study):
    packaged_shown, _ = judge.swap_check_rubrics()
    calibrate.save_rubric(simulated_study, "attachment", edited_rubric(simulated_study, "attachment", "MARKER-7."))
    toml = simulated_study.config_path.read_text()
    simulated_study.config_path.write_text(toml.replace("swap_check_pairs = 0", "swap_check_pairs = 3"))
    plan = study.plan_judging(simulated_study, judges=["sim-low"])  # the whole sample: the swap check included
    shown, swapped = judge.swap_check_rubrics(simulated_study.config().rubrics_dir)
    assert shown.version != packaged_shown.version and swapped.version == shown.version + "+swapped"
    swap_items = [i for i in plan.plans[0].items if i.prompt_version in (shown.version, swapped.version)]
    assert swap_items and all("MARKER-7." in i.messages[0]["content"] for i in swap_items)
    assert not [i for i in plan.plans[0].items if i.prompt_version.startswith(packaged_shown.version)]


def test_an_invalid_rubric_edit_is_refused_and_names_the_problem(simulated_study):
    text = calibrate.rubric_text(simulated_study, "empathy")
    with pytest.raises(StudyError, match="not a valid rubric"):
        calibrate.save_rubric(simulated_study, "empathy", text.replace("[levels]", "[levelz]"))
    with pytest.raises(StudyError, match="not a valid rubric"):
        calibrate.save_rubric(simulated_study, "empathy", text + "\n = broken")
    assert not simulated_study.rubric_copy("empathy").exists()
    simulated_study.rubrics.mkdir()
    simulated_study.rubric_copy("empathy").write_text("construct = 'empathy'\n")
    with pytest.raises(judge.JudgeError, match="rubrics/empathy.toml is not a valid rubric"):
        simulated_study.config().rubrics()


def test_the_overview_has_every_judge_and_rubric_version_and_the_panel(simulated_study):
    data = calibrate.load(simulated_study)
    found = calibrate.overview(data, "empathy")
    rows = {(r.rater, r.version) for r in found.rows}
    current = data.versions["empathy"]
    assert rows == {("sim-low", current), ("sim-low", "simulated-older"), ("sim-ones", current),
                    ("sim-noisy", current), ("panel", current)}
    gold = data.gold("empathy")
    assert len(gold.annotators) == 4 and found.ceiling["alpha"] is not None
    low = next(r for r in found.rows if r.rater == "sim-low" and r.current)
    assert low.figures["n"] == len(gold.units) and low.figures["bias"] < -0.8  # it reads about 1.2 low
    assert low.pairs_scored == len(data.sample) and low.fail_rate == 0.0
    older = next(r for r in found.rows if r.version == "simulated-older")
    assert older.pairs_scored == len(gold.units)  # the older rubric was run on the gold pairs only


def test_calibration_is_judged_on_held_out_folds_and_fixes_a_biased_judge(simulated_study):
    data = calibrate.load(simulated_study)
    fitted = calibrate.fit(data, "empathy", ["sim-low"], how="mean", seed=0)
    assert fitted.before["sim-low"]["mae"] > 1.0 > fitted.after["sim-low"]["mae"]
    assert abs(fitted.after["sim-low"]["bias"]) < 0.3
    # held out: the panel's after-figures are those of the cross-fitted predictions, not of the final map
    gold = data.gold("empathy")
    in_sample = fitted.cross.final.predict(
        data.judge_vector("empathy", "sim-low", fitted.version, fitted.units)[:, None])
    keep = [gold.units.index(u) for u in fitted.units]
    expected = annotation.calibration.rater_figures(fitted.cross.held_out, gold.humans[:, keep], 5, 3)
    assert fitted.after["panel"]["mae"] == pytest.approx(expected["mae"])
    assert not np.allclose(in_sample, fitted.cross.held_out)
    # the small judge that answers 1 everywhere ranks pairs through its expected score
    flat = calibrate.fit(data, "empathy", ["sim-ones"], source="score")
    ranked = calibrate.fit(data, "empathy", ["sim-ones"], source="expected_score")
    assert ranked.after["sim-ones"]["mae"] < flat.after["sim-ones"]["mae"]
    with pytest.raises(StudyError, match="choose at least one judge"):
        calibrate.fit(data, "empathy", [])


def scores_by_hand(study_dir: Workspace, construct: str, lock: dict) -> pd.Series:
    """The lock applied without the library: each judge's mean score under its locked rubric version,
    through its map, then the locked aggregate where every locked judge has a value."""
    entry = lock["constructs"][construct]
    records = [json.loads(line) for line in study_dir.judgments.read_text().splitlines()[1:]]
    frame = pd.DataFrame(records)
    columns = {}
    for locked in entry["judges"]:
        own = frame[(frame["construct"] == construct) & (frame["judge"] == locked["name"])
                    & (frame["prompt_version"] == locked["rubric_version"]) & frame["score"].notna()]
        value = own.groupby("pair_id")[locked["source"]].mean()
        columns[locked["name"]] = pd.Series(np.interp(value, locked["map"]["x"], locked["map"]["y"]), index=value.index)
    wide = pd.DataFrame(columns).dropna()
    weights = entry["aggregate"]["weights"]
    if entry["aggregate"]["how"] == "weights":
        return sum(wide[name] * w for name, w in weights.items())
    return wide.median(axis=1) if entry["aggregate"]["how"] == "median" else wide.mean(axis=1)


def test_lock_export_estimate_round_trip(tmp_path):
    ws = make_simulated(tmp_path / "study", n=300, gold=100)
    before = study.export(ws)
    assert "never validated" in validation_note(before.record) and "empathy_raw" not in before.table
    data = calibrate.load(ws)
    calibrate.lock(data, calibrate.fit(data, "empathy", ["sim-low", "sim-ones", "sim-noisy"], source="expected_score",
                                       how="weights"), boot=50)
    calibrate.lock(data, calibrate.fit(data, "attachment", ["sim-low", "sim-noisy"], how="median"), boot=50)
    lock = json.loads(ws.calibration.read_text())
    assert lock["simulated"] is True and lock["constructs"]["empathy"]["evidence"]["simulated"] is True
    assert lock["constructs"]["empathy"]["evidence"]["after_held_out"]["panel"]["ci"] is not None

    exported = study.export(ws)
    table, recorded = read_scored_pairs(ws.scored_pairs)  # what `empathy estimate` reads
    for construct in ("empathy", "attachment"):
        expected = scores_by_hand(ws, construct, lock).reindex(table["pair_id"]).to_numpy()
        assert np.allclose(table[construct].to_numpy(), expected, equal_nan=True)
        assert table[construct].notna().all()  # every locked judge scored every pair
        assert np.allclose(table[f"{construct}_raw"], before.table[construct])  # the raw mean kept beside it
        assert recorded["validated"][construct]["judges"][0]["rubric_version"] == data.versions[construct]
    assert exported.record["validated"]["empathy"]["aggregate"]["how"] == "weights"
    note = validation_note(recorded)
    assert note.startswith("scores: empathy validated") and "SIMULATED" in note

    result = study.estimate(ws.scored_pairs, ws.estimates, study.estimate_config(ws, {"bootstrap": 50}))
    assert result.provenance["validation"] == note
    rule = study.estimate_config(ws, {})
    assert result.counts["treated"] == int(((table["empathy"] >= rule.treat_high) & table["attachment"].notna()).sum())
    assert result.counts["treated"] != int((before.table["empathy"] >= rule.treat_high).sum())


def test_export_refuses_a_lock_whose_judge_left_the_panel(simulated_study):
    data = calibrate.load(simulated_study)
    calibrate.lock(data, calibrate.fit(data, "empathy", ["sim-low"]), boot=0)
    text = simulated_study.config_path.read_text().replace('model = "simulated/sim-low"', 'model = "simulated/other"')
    simulated_study.config_path.write_text(text)
    with pytest.raises(StudyError, match="names judge sim-low"):
        study.export(simulated_study)
    simulated_study.calibration.unlink()  # what the error says to do, short of locking again
    assert study.export(simulated_study).record["validated"] == {"empathy": None, "attachment": None}


def test_the_parsed_log_is_reused_and_extended_only_by_what_was_appended(simulated_study):
    first = calibrate.judgments_frame(simulated_study)
    assert (simulated_study.root / ".cache" / "judgments.parquet").exists()
    extra = judge.JudgmentRecord(**{**first.iloc[0].to_dict(), "sample_index": 1, "model_returned": None,
                                    "tokens_in": None, "tokens_out": None, "latency_ms": None,
                                    "created_at": "2026-01-02T00:00:00+00:00"})
    judge.JudgmentLog(simulated_study.judgments).append([extra])
    second = calibrate.judgments_frame(simulated_study)
    assert len(second) == len(first) + 1 and second.iloc[-1]["sample_index"] == 1
    # a log rewritten in place (not appended to) is parsed again from the start
    lines = simulated_study.judgments.read_text().splitlines(keepends=True)
    simulated_study.judgments.write_text("".join(lines[:1] + lines[2:]))
    third = calibrate.judgments_frame(simulated_study)
    assert len(third) == len(first)


def test_a_simulated_study_says_so_everywhere(simulated_study):
    labels = pd.read_parquet(simulated_study.labels)
    assert labels["simulated"].all() and labels["annotator"].str.startswith("simulated-annotator-").all()
    assert json.loads(simulated_study.simulation.read_text())["simulated"] is True
    records = judge.JudgmentLog(simulated_study.judgments).read().records
    assert all(r.rationale.startswith("SIMULATED") and r.model.startswith("simulated/") for r in records)
    assert pd.read_parquet(simulated_study.sample)["simulated"].all()
    data = calibrate.load(simulated_study)
    calibrate.lock(data, calibrate.fit(data, "empathy", ["sim-low"]), boot=0)
    assert json.loads(simulated_study.calibration.read_text())["constructs"]["empathy"]["evidence"]["simulated"] is True
