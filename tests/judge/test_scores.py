"""From records to scores: mean over samples per judge, mean over judges per panel, current rubric only."""

from __future__ import annotations

import pandas as pd
import pytest

from empathy_study import judge
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
    panel = [judge.JudgeConfig(name="j1", model="m"), judge.JudgeConfig(name="j2", model="m")]
    scores = judge.judge_scores(judge.records_frame(records), panel, {"empathy": "v", "attachment": "v"}).set_index(
        ["pair_id", "construct", "judge"])
    assert scores.loc[("a", "empathy", "j1"), "score"] == 3 and scores.loc[("a", "empathy", "j1"), "n_ok"] == 2
    assert scores.loc[("b", "empathy", "j1"), "n_failed"] == 0  # its failure was retried successfully
    assert scores.loc[("c", "empathy", "j1"), "n_failed"] == 1 and scores.loc[("c", "empathy", "j1"), "n_ok"] == 0
    wide = judge.panel_scores(scores.reset_index(), ["j1", "j2"]).set_index("pair_id")
    assert wide.loc["a", "empathy"] == pytest.approx((3 + 6) / 2)  # mean over judges of each judge's mean
    assert wide.loc["a", "empathy_judges"] == 2
    # Only j1 scored these: with j2 in the panel there is no panel score, and the count says why.
    assert wide["attachment"].isna().all() and wide.loc["a", "attachment_judges"] == 1
    assert pd.isna(wide.loc["b", "empathy"]) and wide.loc["b", "empathy_judges"] == 1
    assert "c" not in wide.index
    alone = judge.panel_scores(scores.reset_index(), ["j1"]).set_index("pair_id")
    assert alone.loc["a", "empathy"] == 3 and alone.loc["a", "attachment"] == 3 and alone.loc["b", "empathy"] == 5


def test_only_the_panels_own_judgments_count():
    """A judgment counts for a judge only under the same name, model, temperature and rubric version."""
    records = [with_(record("a"), judge="j1", score=2), with_(record("b"), judge="j1", model="other", score=7),
               with_(record("c"), judge="j1", temperature=0.7, score=7), with_(record("d"), judge="gone", score=7)]
    scores = judge.judge_scores(judge.records_frame(records), [judge.JudgeConfig(name="j1", model="m")], {"empathy": "v"})
    assert scores["pair_id"].tolist() == ["a"] and scores["model"].tolist() == ["m"]


def test_one_score_table_per_rubric_version_and_the_panels_scores_are_its_current_rows():
    """`version_scores` keeps every rubric version apart (what the calibration app compares); the scores
    export writes are its rows for the current panel and rubric, the same numbers."""
    records = [
        with_(record("a"), judge="j1", score=2, sample_index=0), with_(record("a"), judge="j1", score=4, sample_index=1),
        with_(record("a"), judge="j1", score=7, prompt_version="old", cost_usd=0.5),
        with_(record("b", score=None, error="boom"), judge="j1", cost_usd=0.25),
        with_(record("b", score=None, error="boom"), judge="j1", prompt_version="old"),
        with_(record("b"), judge="j1", score=5, prompt_version="old", cost_usd=0.25),
    ]
    frame = judge.records_frame(records)
    table = judge.version_scores(frame).set_index(["pair_id", "prompt_version"])
    assert table.loc[("a", "v"), "score"] == 3 and table.loc[("a", "old"), "score"] == 7
    assert table.loc[("b", "v"), ["n_ok", "n_failed"]].tolist() == [0, 1]  # only ever failed under v
    assert table.loc[("b", "old"), ["n_ok", "n_failed"]].tolist() == [1, 0]  # retried to success under old
    assert table.loc[("b", "old"), "cost_usd"] == 0.25 and table.loc[("a", "old"), "cost_usd"] == 0.5
    panel = [judge.JudgeConfig(name="j1", model="m")]
    current = judge.judge_scores(frame, panel, {"empathy": "v"}).set_index("pair_id")
    rows = table.xs("v", level="prompt_version")
    assert current["score"].equals(rows["score"]) and current["n_failed"].equals(rows["n_failed"])
