"""From the judgment log to scores: per judge (mean over samples) and per panel (mean over judges)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._schema import JudgmentRecord

SCORE_COLUMNS = ("pair_id", "construct", "judge", "score", "expected_score", "n_ok", "n_failed", "prompt_version")


def records_frame(records: list[JudgmentRecord]) -> pd.DataFrame:
    columns = list(JudgmentRecord.model_fields)
    return pd.DataFrame([r.model_dump() for r in records], columns=columns)


def judge_scores(records: list[JudgmentRecord], prompt_versions: dict[str, str]) -> pd.DataFrame:
    """Long table pair × construct × judge: mean score over successful samples, with counts.

    Only records made with the current rubric version of each construct count.
    """
    frame = records_frame(records)
    if frame.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    frame = frame[frame["prompt_version"] == frame["construct"].map(prompt_versions)]
    ok = frame[frame["score"].notna()]
    # A failure that was later retried successfully is history, not a failure of the item.
    done = set(zip(ok["pair_id"], ok["construct"], ok["judge"], ok["sample_index"]))
    failed = frame[frame["score"].isna()]
    retried = [k in done for k in zip(failed["pair_id"], failed["construct"], failed["judge"], failed["sample_index"])]
    failed = failed.loc[~np.array(retried, dtype=bool)]
    failed = failed.drop_duplicates(["pair_id", "construct", "judge", "sample_index"])
    ok = ok.drop_duplicates(["pair_id", "construct", "judge", "sample_index"], keep="last")
    keys = ["pair_id", "construct", "judge"]
    scores = ok.groupby(keys, as_index=False).agg(score=("score", "mean"), expected_score=("expected_score", "mean"),
                                                  n_ok=("score", "size"), prompt_version=("prompt_version", "first"))
    failures = failed.groupby(keys, as_index=False).agg(n_failed=("sample_index", "size"))
    table = scores.merge(failures, on=keys, how="outer")
    table["n_ok"] = table["n_ok"].fillna(0).astype(int)
    table["n_failed"] = table["n_failed"].fillna(0).astype(int)
    table["prompt_version"] = table["prompt_version"].fillna(table["construct"].map(prompt_versions))
    return table[list(SCORE_COLUMNS)]


def panel_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Wide table pair_id → empathy, attachment: the mean over judges of each judge's mean score."""
    if scores.empty:
        return pd.DataFrame(columns=["pair_id", "empathy", "attachment"])
    wide = scores.dropna(subset=["score"]).groupby(["pair_id", "construct"])["score"].mean().unstack("construct")
    for construct in ("empathy", "attachment"):
        if construct not in wide.columns:
            wide[construct] = float("nan")
    return wide[["empathy", "attachment"]].reset_index().rename_axis(columns=None)
