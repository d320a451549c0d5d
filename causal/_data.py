"""From a scored-pairs table to the arrays every estimator uses: treatment, outcome, clusters, weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from empathy_study.shared import CONSTRUCTS

from ._errors import CausalError

REQUIRED = ("pair_id", "prompt", "model", "turn_index", *CONSTRUCTS)
SCALE = (1.0, 7.0)


@dataclass(frozen=True)
class TreatmentRule:
    """Treated if empathy ≥ high, control if ≤ low; anything strictly between is excluded."""

    high: float = 5.0
    low: float = 3.0

    def __post_init__(self):
        if not SCALE[0] <= self.low < self.high <= SCALE[1]:
            raise CausalError(f"the treatment rule needs 1 ≤ low < high ≤ 7 (got low {self.low}, high {self.high})")

    def describe(self) -> str:
        return f"treated: empathy ≥ {self.high:g}; control: empathy ≤ {self.low:g}; excluded: {self.low:g} < empathy < {self.high:g}"

    def assign(self, empathy: pd.Series) -> pd.Series:
        """1 treated, 0 control, NaN excluded."""
        return pd.Series(np.select([empathy >= self.high, empathy <= self.low], [1.0, 0.0], np.nan), index=empathy.index)


@dataclass
class StudyArrays:
    frame: pd.DataFrame  # the rows in the analysis, in order
    treatment: np.ndarray  # 0/1
    outcome: np.ndarray
    clusters: np.ndarray  # integer codes of user_id (fallback conversation_id)
    cluster_column: str
    design_weight: np.ndarray | None  # 1 / inclusion_prob where the sample recorded it
    counts: dict[str, int]  # how many rows went where

    def weightings(self, units: np.ndarray | None = None) -> list[tuple[bool, np.ndarray | None]]:
        """(weighted, weights) to report: unweighted always; by design weight (of `units`) where recorded."""
        if self.design_weight is None:
            return [(False, None)]
        return [(False, None), (True, self.design_weight if units is None else self.design_weight[units])]


def _check_scale(frame: pd.DataFrame, column: str) -> None:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = frame[column].notna() & values.isna()
    if bad.any():
        raise CausalError(f"column '{column}' has non-numeric values (e.g. {frame.loc[bad, column].iloc[0]!r})")
    outside = values.notna() & ~values.between(*SCALE)
    if outside.any():
        raise CausalError(
            f"column '{column}' has {int(outside.sum())} scores outside 1..7 (e.g. {values[outside].iloc[0]:g})"
        )


def prepare(pairs: pd.DataFrame, rule: TreatmentRule) -> StudyArrays:
    """Validate the table, apply the treatment rule, and count every row that is left out."""
    missing = [c for c in REQUIRED if c not in pairs.columns]
    if missing:
        raise CausalError(f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    cluster_column = next((c for c in ("user_id", "conversation_id") if c in pairs.columns), None)
    if cluster_column is None:
        raise CausalError("missing column: user_id (or conversation_id) — needed to cluster standard errors")
    for column in CONSTRUCTS:
        _check_scale(pairs, column)
    frame = pairs.copy()
    frame["empathy"] = pd.to_numeric(frame["empathy"])
    frame["attachment"] = pd.to_numeric(frame["attachment"])
    counts = {"input": len(frame)}
    unscored = frame["empathy"].isna() | frame["attachment"].isna()
    counts["unscored"] = int(unscored.sum())
    frame = frame[~unscored]
    if frame["prompt"].isna().any() or (frame["prompt"].astype(str).str.strip() == "").any():
        raise CausalError("column 'prompt' has empty texts: the prompt embedding is the main confounder")
    frame["treated"] = rule.assign(frame["empathy"])
    counts["excluded_by_rule"] = int(frame["treated"].isna().sum())
    frame = frame[frame["treated"].notna()].reset_index(drop=True)
    counts["treated"] = int((frame["treated"] == 1).sum())
    counts["control"] = int((frame["treated"] == 0).sum())
    if counts["treated"] == 0 or counts["control"] == 0:
        raise CausalError(
            f"after the rule ({rule.describe()}) there are {counts['treated']} treated and "
            f"{counts['control']} control pairs: both arms are needed"
        )
    clusters = frame[cluster_column].fillna(frame.get("conversation_id", frame["pair_id"]))
    weight = None
    if "inclusion_prob" in frame.columns and frame["inclusion_prob"].notna().all():
        probability = frame["inclusion_prob"].to_numpy(dtype=float)
        if ((probability <= 0) | (probability > 1)).any():
            raise CausalError("column 'inclusion_prob' must lie in (0, 1]")
        weight = 1.0 / probability
    return StudyArrays(
        frame=frame,
        treatment=frame["treated"].to_numpy(dtype=int),
        outcome=frame["attachment"].to_numpy(dtype=float),
        clusters=pd.factorize(clusters)[0],
        cluster_column=cluster_column,
        design_weight=weight,
        counts=counts,
    )
