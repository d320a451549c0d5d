"""`empathy export` writes each panel judge's own score beside the panel's, and `empathy estimate`
reads them through the file's record (a SIMULATED study: simulated judges and annotators)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from empathy_study import study
from empathy_study.shared import CONSTRUCTS
from empathy_study.study import calibrate
from empathy_study.study.provenance import read_scored_pairs
from tests.study.conftest import make_simulated

JUDGES = ("sim-low", "sim-ones", "sim-noisy")


def own_scores_by_hand(ws, construct: str, version: str, field: str = "score") -> pd.DataFrame:
    """Each judge's mean score (or expected score) over its samples under one rubric version, from the log itself."""
    records = [json.loads(line) for line in ws.judgments.read_text().splitlines()[1:]]
    frame = pd.DataFrame(records)
    own = frame[(frame["construct"] == construct) & (frame["prompt_version"] == version) & frame["score"].notna()]
    return own.groupby(["pair_id", "judge"])[field].mean().unstack("judge")


def test_each_judges_own_score_is_exported_raw_and_named_in_the_record(tmp_path):
    ws = make_simulated(tmp_path / "study", n=300, gold=100)
    before = study.export(ws)
    table, recorded = read_scored_pairs(ws.scored_pairs)
    # the simulated judges record logprob-expected scores too: a column each, named in the record
    assert recorded["panel_columns"] == {**{c: {j: f"{c}__{j}" for j in JUDGES} for c in CONSTRUCTS},
                                         **{f"{c}_expected": {j: f"{c}_expected__{j}" for j in JUDGES}
                                            for c in CONSTRUCTS}}
    for construct in CONSTRUCTS:
        version = recorded["prompt_versions"][construct]
        by_hand = own_scores_by_hand(ws, construct, version).reindex(table["pair_id"])
        expected = own_scores_by_hand(ws, construct, version, "expected_score").reindex(table["pair_id"])
        for judge in JUDGES:
            assert np.allclose(table[f"{construct}__{judge}"], by_hand[judge], equal_nan=True)
            assert np.allclose(table[f"{construct}_expected__{judge}"], expected[judge], equal_nan=True)
        # the panel column is their mean where every judge scored the pair
        columns = table[[f"{construct}__{j}" for j in JUDGES]]
        assert np.allclose(table[construct], columns.mean(axis=1).where(columns.notna().all(axis=1)), equal_nan=True)

    data = calibrate.load(ws)
    calibrate.lock(data, calibrate.fit(data, "empathy", list(JUDGES), source="expected_score", how="weights"), boot=0)
    locked = study.export(ws).table
    assert not np.allclose(locked["empathy"], before.table["empathy"])  # the lock replaced the panel column …
    for construct in CONSTRUCTS:  # … and left every judge's own score raw
        for judge in JUDGES:
            column = f"{construct}__{judge}"
            assert np.allclose(locked[column], before.table[column], equal_nan=True)

    result = study.estimate(ws.scored_pairs, ws.estimates, study.estimate_config(ws, {"bootstrap": 50, "heterogeneity": False}))
    assert result.gold["prediction_judges"] == list(JUDGES)
    assert "each judge's own scores" in result.gold["prediction"]
    placebo = result.refuters["dr_gold_corrected · ATE"]["placebo"]  # each judge's empathy permuted with the panel's
    assert placebo["verdict"] == "passed" and placebo["n"] == len(table)
