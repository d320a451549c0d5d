"""From records to scores: mean over samples per judge, mean over judges per panel, current rubric only."""

from __future__ import annotations

import pytest

import judge
from tests.judge.test_log import record


def with_(r, **changes):
    return r.model_copy(update=changes)


def test_judge_and_panel_scores():
    records = [
        with_(record("a"), judge="j1", score=2, sample_index=0), with_(record("a"), judge="j1", score=4, sample_index=1),
        with_(record("a"), judge="j2", score=6),
        with_(record("b", score=None, error="boom"), judge="j1"), with_(record("b"), judge="j1", score=5),  # retried ok
        with_(record("c", score=None, error="boom"), judge="j1"),
        with_(record("a"), judge="j1", score=7, prompt_version="old"),  # an earlier rubric: ignored
        with_(record("a"), construct="attachment", judge="j1", score=3),
    ]
    scores = judge.judge_scores(records, {"empathy": "v", "attachment": "v"}).set_index(["pair_id", "construct", "judge"])
    assert scores.loc[("a", "empathy", "j1"), "score"] == 3 and scores.loc[("a", "empathy", "j1"), "n_ok"] == 2
    assert scores.loc[("b", "empathy", "j1"), "n_failed"] == 0  # its failure was retried successfully
    assert scores.loc[("c", "empathy", "j1"), "n_failed"] == 1 and scores.loc[("c", "empathy", "j1"), "n_ok"] == 0
    panel = judge.panel_scores(scores.reset_index()).set_index("pair_id")
    assert panel.loc["a", "empathy"] == pytest.approx((3 + 6) / 2)  # mean over judges of each judge's mean
    assert panel.loc["a", "attachment"] == 3 and panel.loc["b", "empathy"] == 5
    assert "c" not in panel.index
