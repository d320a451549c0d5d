"""What a rubric edit does to gold, the scores and a lock (issue 24): the claim about a construct stays
under the rubric version the audit was labelled under until labels under the new version exist, then
moves — scores and gold together; a lock made under another version than the claim's is refused; a
lock needs held-out agreement above a floor, or an override it records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from empathy_study import judge, study
from empathy_study.shared import write_parquet
from empathy_study.study import calibrate
from empathy_study.study.export import validation_note
from empathy_study.study.lock import MIN_ALPHA
from empathy_study.study.workspace import StudyError
from tests.study.conftest import make_simulated
from tests.study.test_calibrate import edited_rubric


@pytest.fixture
def labelled(tmp_path):
    return make_simulated(tmp_path / "study", n=120, gold=40)


def judged_again(ws, construct: str, old: str, version: str, shift: float = 0.0) -> None:
    """The panel's judgments of `construct` under rubric `old` appended again under `version` (as a judge
    run after the edit writes them), each score moved by `shift` so that the two versions' scores differ."""
    records = [r for r in judge.JudgmentLog(ws.judgments).read().records
               if r.construct == construct and r.prompt_version == old]
    judge.JudgmentLog(ws.judgments).append([r.model_copy(update={
        "prompt_version": version, "score": int(np.clip(r.score + shift, 1, 7))}) for r in records])


def relabelled(ws, construct: str, version: str, pairs: int) -> list[str]:
    """Blind labels of the first `pairs` audit pairs made again under rubric `version`."""
    labels = pd.read_parquet(ws.labels)
    chosen = sorted(set(labels.loc[labels["construct"] == construct, "pair_id"]))[:pairs]
    again = labels[(labels["construct"] == construct) & labels["pair_id"].isin(chosen)].assign(
        prompt_version=version, score=lambda f: (8 - f["score"]).astype("Int64"))
    write_parquet(ws.labels, pd.concat([labels, again], ignore_index=True))
    return chosen


def test_a_rubric_edit_keeps_the_claim_on_the_labelled_version_until_labels_under_the_new_one_exist(labelled):
    ws = labelled
    before = study.export(ws)
    old = ws.config().prompt_versions()["empathy"]
    gold_before = before.table.set_index("pair_id")["empathy_gold"]
    assert gold_before.notna().sum() > 0

    new = calibrate.save_rubric(ws, "empathy", edited_rubric(ws, "empathy", "Weigh warmth above length.")).version
    judged_again(ws, "empathy", old, new, shift=1)  # `empathy judge run` under the new text
    after = study.export(ws)
    table = after.table.set_index("pair_id")
    # the gold does not vanish (it did: empathy_gold was written empty), and the scores stay beside it
    assert table["empathy_gold"].notna().sum() == gold_before.notna().sum()
    assert np.allclose(table["empathy_gold"], gold_before, equal_nan=True)
    assert np.allclose(table["empathy"], before.table.set_index("pair_id")["empathy"], equal_nan=True)
    assert before.record["rubric"]["empathy"] == {"scores": old, "gold": old, "current": old,
                                                  "labels_under_other_versions": 0}
    assert after.record["rubric"]["empathy"] == {"scores": old, "gold": old, "current": new,
                                                 "labels_under_other_versions": 0}
    assert after.record["prompt_versions"]["empathy"] == old  # the version of the scores in the file
    assert after.record["rubric"]["attachment"]["scores"] == after.record["rubric"]["attachment"]["current"]
    said = "\n".join(after.notes)
    assert "the rubric changed" in said and f"empathy annotate push {ws.root}" in said and new[:8] in said

    # labels under the new text arrive for some audit pairs: the claim moves, scores and gold together
    chosen = relabelled(ws, "empathy", new, pairs=12)
    moved = study.export(ws)
    table = moved.table.set_index("pair_id")
    assert moved.record["rubric"]["empathy"]["scores"] == moved.record["rubric"]["empathy"]["gold"] == new
    assert sorted(table.index[table["empathy_gold"].notna()]) == chosen
    shifted = before.table.set_index("pair_id")["empathy"]
    assert (table["empathy"] > shifted).any()  # the new version's (shifted) judgments, not the old ones
    assert any("not gold" in n for n in moved.notes)


def test_calibration_fits_judges_and_labels_of_one_rubric_version(labelled):
    ws = labelled
    old = ws.config().prompt_versions()["empathy"]
    new = calibrate.save_rubric(ws, "empathy", edited_rubric(ws, "empathy", "Weigh warmth above length.")).version
    judged_again(ws, "empathy", old, new)  # ctrl+r in the app: the judges run under the new text
    data = calibrate.load(ws)
    assert data.claims["empathy"] == old != data.versions["empathy"]
    fitted = calibrate.fit(data, "empathy", ["sim-low"])  # by default under the claim: the labelled version
    assert fitted.version == fitted.label_version == old
    # judges under the new text against labels under the old one: refused, not fitted as if current
    with pytest.raises(StudyError, match="no blind gold labels of empathy under rubric"):
        calibrate.fit(data, "empathy", ["sim-low"], version=new)
    # a lock under the old version is applied while the claim stays there …
    calibrate.lock(data, fitted, boot=0)
    assert study.export(ws).record["validated"]["empathy"]["label_version"] == old
    # … and refused once labels under the new version move the claim: never both claims at once
    relabelled(ws, "empathy", new, pairs=12)
    with pytest.raises(StudyError, match="one claim is made under one rubric"):
        study.export(ws)


def test_a_lock_needs_held_out_agreement_above_the_floor_or_an_override_it_records(labelled):
    data = calibrate.load(labelled)
    weak = calibrate.fit(data, "empathy", ["sim-ones"], source="score")  # a judge that answers 1 nearly everywhere
    alpha = weak.after["panel"]["alpha"]
    assert alpha < MIN_ALPHA
    with pytest.raises(StudyError, match=f"below the floor of {MIN_ALPHA}"):
        calibrate.lock(data, weak, boot=0)
    assert not labelled.calibration.exists()
    calibrate.lock(data, weak, boot=0, override=True)
    evidence = json.loads(labelled.calibration.read_text())["constructs"]["empathy"]["evidence"]
    assert evidence["override"]["floor"] == MIN_ALPHA
    assert evidence["override"]["alpha_held_out"] == pytest.approx(alpha)
    note = validation_note(study.export(labelled).record)
    assert note.startswith("warning:") and "LOCKED BELOW THE AGREEMENT FLOOR" in note
    strong = calibrate.fit(data, "attachment", ["sim-low"])
    assert strong.after["panel"]["alpha"] >= MIN_ALPHA
    calibrate.lock(data, strong, boot=0)  # above the floor: no override needed, none recorded
    lock = json.loads(labelled.calibration.read_text())
    assert lock["constructs"]["attachment"]["evidence"]["override"] is None


def test_a_validation_note_never_claims_gold_the_file_does_not_hold(labelled):
    data = calibrate.load(labelled)
    calibrate.lock(data, calibrate.fit(data, "empathy", ["sim-low"]), boot=0)
    note = validation_note(study.export(labelled).record)
    version = data.versions["empathy"][:8]
    assert f"gold labels under rubric {version}" in note and "none of those labels" not in note
    labelled.labels.unlink()  # the labels the lock was fitted on are gone from the study
    note = validation_note(study.export(labelled).record)
    assert note.startswith("warning:") and "none of those labels is in this file's empathy_gold" in note
