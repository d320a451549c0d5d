"""From the judgment log to scores: which judgments count, per judge (mean over samples), per panel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from empathy_study.shared import CONSTRUCTS

from ._config import JudgeConfig
from ._schema import JudgmentRecord

SCORE_COLUMNS = ("pair_id", "construct", "judge", "model", "temperature", "prompt_version", "score",
                 "expected_score", "n_ok", "n_failed")


_FLOATS = ("temperature", "score", "expected_score", "cost_usd")  # one dtype however the records came


def records_frame(records: list[JudgmentRecord]) -> pd.DataFrame:
    """Judgment records as a frame, one column per field of `JudgmentRecord`."""
    frame = pd.DataFrame([r.model_dump() for r in records], columns=list(JudgmentRecord.model_fields))
    return frame.astype({c: "float64" for c in _FLOATS})


def of_panel(frame: pd.DataFrame, judges: Sequence[JudgeConfig]) -> pd.DataFrame:
    """Judgments made by a judge of the panel as configured now: same name, model and temperature.

    That, with the rubric version, is a judge's identity — not where it was reached (api_base,
    port) or how fast. A judge removed from the panel, or pointed at another model, leaves nothing.
    """
    if frame.empty:
        return frame
    identities = {(j.name, j.model, float(j.temperature)) for j in judges}
    same = [identity in identities for identity in zip(frame["judge"], frame["model"], frame["temperature"].astype(float))]
    return frame[np.asarray(same, dtype=bool)]


def current_judgments(frame: pd.DataFrame, judges: Sequence[JudgeConfig], versions: dict[str, str]) -> pd.DataFrame:
    """The judgments the panel stands behind: its own (`of_panel`), under the current rubric version."""
    frame = of_panel(frame, judges)
    return frame[frame["prompt_version"] == frame["construct"].map(versions)] if not frame.empty else frame


def first_draws(frame: pd.DataFrame) -> pd.DataFrame:
    """Each judge's latest scored sample-0 judgment per pair and construct (what agreement compares)."""
    scored = frame[frame["score"].notna() & (frame["sample_index"] == 0)]
    return scored.drop_duplicates(["pair_id", "construct", "judge"], keep="last")


VERSION_KEYS = ["pair_id", "construct", "judge", "model", "temperature", "prompt_version"]
VERSION_SCORE_COLUMNS = (*VERSION_KEYS, "score", "expected_score", "n_ok", "n_failed", "cost_usd")


def version_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """The one score table: per pair × construct × judge (name, model, temperature) × rubric version, the
    mean score and expected score over its successful samples, how many samples succeeded (`n_ok`) and
    how many only ever failed (`n_failed`: a failure later retried successfully is history, not a
    failure of the item), and what every call cost (unpriced calls count 0).

    A sample asked more than once counts with its last successful answer. `judge_scores` is this table
    for the current panel and rubric; the calibration app filters it by rubric version.
    """
    if frame.empty:
        return pd.DataFrame(columns=VERSION_SCORE_COLUMNS)
    group = {"observed": True, "sort": False, "as_index": False}
    samples = [*VERSION_KEYS, "sample_index"]
    ok = frame[frame["score"].notna()].drop_duplicates(samples, keep="last")
    scores = ok.groupby(VERSION_KEYS, **group).agg(score=("score", "mean"), expected_score=("expected_score", "mean"),
                                                   n_ok=("score", "size"))
    items = frame.drop_duplicates(samples).groupby(VERSION_KEYS, **group).agg(items=("sample_index", "size"))
    cost = frame.groupby(VERSION_KEYS, **group).agg(cost_usd=("cost_usd", "sum"))
    table = items.merge(cost, on=VERSION_KEYS).merge(scores, on=VERSION_KEYS, how="left")
    table["n_ok"] = table["n_ok"].fillna(0).astype(int)
    table["n_failed"] = (table["items"] - table["n_ok"]).astype(int)
    table = table.astype({k: str for k in VERSION_KEYS if k != "temperature"}).astype({"temperature": float})
    return table[list(VERSION_SCORE_COLUMNS)]


def judge_scores(frame: pd.DataFrame, judges: Sequence[JudgeConfig], versions: dict[str, str]) -> pd.DataFrame:
    """Long table pair × construct × judge of the current panel under the current rubric versions
    (`current_judgments`): `version_scores` without the cost, in pair, construct, judge order."""
    table = version_scores(current_judgments(frame, judges, versions))
    table = table.sort_values(["pair_id", "construct", "judge"], kind="stable").reset_index(drop=True)
    return table[list(SCORE_COLUMNS)]


def panel_scores(scores: pd.DataFrame, panel: Sequence[str], constructs: Sequence[str] = CONSTRUCTS) -> pd.DataFrame:
    """Wide table pair_id → empathy, attachment (or `constructs`) (+ how many judges scored each).

    The panel score is the mean over the panel's judges of each judge's mean score, and exists
    only where every judge of the panel scored the pair: a mean over whichever judges answered
    would be a different measurement on different pairs. `<construct>_judges` counts who did.
    """
    columns = ["pair_id", *constructs, *(f"{c}_judges" for c in constructs)]
    scored = scores.dropna(subset=["score"])
    scored = scored[scored["judge"].isin(panel)]
    if scored.empty:
        return pd.DataFrame(columns=columns)
    grouped = scored.groupby(["pair_id", "construct"])["score"]
    mean = grouped.mean().unstack("construct")
    count = grouped.size().unstack("construct")
    wide = pd.DataFrame(index=mean.index)
    for construct in constructs:
        judged = count[construct] if construct in count.columns else pd.Series(0, index=wide.index)
        judged = judged.fillna(0).astype(int)
        value = mean[construct] if construct in mean.columns else pd.Series(np.nan, index=wide.index)
        wide[construct] = value.where(judged == len(panel))
        wide[f"{construct}_judges"] = judged
    return wide.reset_index()[columns]
