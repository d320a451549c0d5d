"""The confounder matrix: prompt meaning, the previous assistant turn, model, turn, time of day."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

TIME_BINS = ((0, 6, "night"), (6, 12, "morning"), (12, 18, "afternoon"), (18, 24, "evening"))


@dataclass
class Confounders:
    matrix: np.ndarray  # n × p, the nuisance models' input
    names: list[str]
    prompt_embedding: np.ndarray  # n × 384 unit vectors: what semantic matching compares
    blocks: dict[str, list[str]] = field(default_factory=dict)  # covariate family → column names
    effect_modifiers: list[int] = field(default_factory=list)  # columns the CATE forest splits on

    @property
    def modifier_matrix(self) -> np.ndarray:
        return self.matrix[:, self.effect_modifiers]

    def for_sample(self, n: int) -> np.ndarray:
        """The matrix a nuisance model fitted on n pairs sees: at most n / PAIRS_PER_COMPONENT prompt
        components (and an eighth of that of the previous turn's), leading components first; every
        other confounder always. A few hundred audited pairs cannot carry 128 components."""
        limit = {"prompt": n // PAIRS_PER_COMPONENT, "prev_response": n // (8 * PAIRS_PER_COMPONENT)}
        keep = [i for i, name in enumerate(self.names)
                if not any(name in self.blocks.get(block, [])[limit[block]:] for block in limit)]
        return self.matrix[:, keep]

    def subset(self, mask: np.ndarray) -> "Confounders":
        return Confounders(self.matrix[mask], self.names, self.prompt_embedding[mask], self.blocks,
                           self.effect_modifiers)


_REDUCED: dict[tuple, np.ndarray] = {}  # the last few reductions: re-running on the same texts skips the PCA


def reduce(embedding: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """Top principal components (at most dims, fewer when there are fewer rows)."""
    dims = min(dims, embedding.shape[0] - 1, embedding.shape[1])
    if dims < 1:
        return np.zeros((embedding.shape[0], 0))
    key = (hashlib.sha1(np.ascontiguousarray(embedding).tobytes()).hexdigest(), embedding.shape, dims, seed)
    if key not in _REDUCED:
        if len(_REDUCED) >= 4:
            _REDUCED.pop(next(iter(_REDUCED)))
        _REDUCED[key] = PCA(n_components=dims, random_state=seed).fit_transform(embedding)
    return _REDUCED[key].copy()


def time_of_day(timestamps: pd.Series) -> pd.DataFrame:
    times = pd.to_datetime(timestamps, utc=True, errors="coerce")
    hours = times.dt.hour
    columns = {f"time_{name}": ((hours >= lo) & (hours < hi)).astype(float) for lo, hi, name in TIME_BINS}
    if times.isna().any():
        columns["time_unknown"] = times.isna().astype(float)
    return pd.DataFrame(columns, index=timestamps.index)


PAIRS_PER_COMPONENT = 15  # nuisance models see at most (pairs they are fitted on) / 15 embedding components
MODIFIER_PCS = 8  # prompt components the CATE forest may split on, beside model, turn and time


def build_confounders(
    frame: pd.DataFrame, prompt_embedding: np.ndarray, prev_embedding: np.ndarray | None, dims: int,
    prev_dims: int, seed: int,
) -> Confounders:
    """Assemble the confounders of every analysis row (columns that do not vary are dropped).

    Effect modifiers (what heterogeneity is reported over) are a small interpretable subset: the
    leading prompt components, model, turn and time of day.
    """
    parts: dict[str, pd.DataFrame] = {}
    prompt_pcs = reduce(prompt_embedding, dims, seed)
    parts["prompt"] = pd.DataFrame(prompt_pcs, columns=[f"prompt_pc{i + 1}" for i in range(prompt_pcs.shape[1])])
    if prev_embedding is not None:
        prev_pcs = reduce(prev_embedding, prev_dims, seed)
        parts["prev_response"] = pd.DataFrame(prev_pcs, columns=[f"prev_pc{i + 1}" for i in range(prev_pcs.shape[1])])
    parts["model"] = pd.get_dummies(frame["model"].astype(str), prefix="model", dtype=float).reset_index(drop=True)
    turn = pd.to_numeric(frame["turn_index"], errors="coerce").fillna(1).clip(lower=1).reset_index(drop=True)
    parts["turn"] = pd.DataFrame({"log_turn": np.log(turn), "first_turn": (turn == 1).astype(float)})
    if "timestamp" in frame.columns and pd.to_datetime(frame["timestamp"], errors="coerce", utc=True).notna().any():
        parts["time"] = time_of_day(frame["timestamp"]).reset_index(drop=True)
    table = pd.concat(parts.values(), axis=1)
    constant = table.columns[table.nunique() <= 1]
    table = table.drop(columns=constant)
    blocks = {name: [c for c in part.columns if c in table.columns] for name, part in parts.items()}
    modifiers = blocks["prompt"][:MODIFIER_PCS] + blocks["model"] + blocks["turn"] + blocks.get("time", [])
    names = list(table.columns)
    return Confounders(table.to_numpy(dtype=float), names, prompt_embedding, blocks,
                       [names.index(c) for c in modifiers])
