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


def records_frame(records: list[JudgmentRecord]) -> pd.DataFrame:
    columns = list(JudgmentRecord.model_fields)
    return pd.DataFrame([r.model_dump() for r in records], columns=columns)


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


def judge_scores(records: list[JudgmentRecord], judges: Sequence[JudgeConfig], versions: dict[str, str]) -> pd.DataFrame:
    """Long table pair × construct × judge: mean score over successful samples, with counts.

    Only the judgments of the current panel count (`current_judgments`).
    """
    frame = current_judgments(records_frame(records), judges, versions)
    if frame.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    ok = frame[frame["score"].notna()]
    # A failure that was later retried successfully is history, not a failure of the item.
    sample_keys = ["pair_id", "construct", "judge", "sample_index"]
    done = set(zip(*(ok[k] for k in sample_keys)))
    failed = frame[frame["score"].isna()]
    retried = [k in done for k in zip(*(failed[k] for k in sample_keys))]
    failed = failed.loc[~np.array(retried, dtype=bool)].drop_duplicates(sample_keys)
    ok = ok.drop_duplicates(sample_keys, keep="last")
    keys = ["pair_id", "construct", "judge"]
    scores = ok.groupby(keys, as_index=False).agg(score=("score", "mean"), expected_score=("expected_score", "mean"),
                                                  n_ok=("score", "size"))
    failures = failed.groupby(keys, as_index=False).agg(n_failed=("sample_index", "size"))
    table = scores.merge(failures, on=keys, how="outer")
    table["n_ok"] = table["n_ok"].fillna(0).astype(int)
    table["n_failed"] = table["n_failed"].fillna(0).astype(int)
    identity = {j.name: j for j in judges}
    table["model"] = table["judge"].map(lambda name: identity[name].model)
    table["temperature"] = table["judge"].map(lambda name: float(identity[name].temperature))
    table["prompt_version"] = table["construct"].map(versions)
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
