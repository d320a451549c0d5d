"""Stratified sampling of turn-pairs with exact inclusion probabilities.

Design: strata (default model × turn bucket × topic); each stratum h of N_h pairs is given an
expected sample size m_h (proportional or equal allocation); m_h is rounded to an integer n_h by
systematic controlled rounding, which keeps the total fixed at n and makes P(n_h = ⌈m_h⌉) equal
to m_h's fractional part; then n_h pairs are drawn without replacement within the stratum.
Each pair's inclusion probability is therefore exactly E[n_h] / N_h = m_h / N_h — also for
strata whose expected size is below one pair, which plain rounding would silently drop.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from ._errors import CorpusError

SAMPLE_FILE = "sample.parquet"
STRATUM_FIELDS = ("model", "turn_bucket", "topic")


class SampleConfig(BaseModel):
    """The `[sample]` table of `study.toml`."""

    strata: list[Literal["model", "turn_bucket", "topic"]] = Field(
        default_factory=lambda: list(STRATUM_FIELDS), description="what the strata cross"
    )
    topics: int = Field(8, ge=1, description="k of the TF-IDF + mini-batch k-means topic model")
    turn_bucket_starts: list[int] = Field(
        default_factory=lambda: [1, 2, 3, 5], description="first turn of each bucket: 1 | 2 | 3-4 | 5+"
    )
    allocation: Literal["proportional", "equal"] = Field(
        "proportional", description="equal oversamples small strata (rare models, late turns)"
    )
    topic_seed: int = Field(0, description="seed of the topic model, so strata do not move with the sampling seed")


def topic_model(prompts: pd.Series, k: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Cluster prompts into k topics (TF-IDF + mini-batch k-means: seconds for 144k pairs on 2 cores).

    Returns the topic label of every prompt, labels naming each cluster by its top terms.
    """
    from sklearn.cluster import MiniBatchKMeans  # imported here: it costs seconds at every CLI start
    from sklearn.feature_extraction.text import TfidfVectorizer

    k = min(k, len(prompts))
    vectorizer = TfidfVectorizer(
        max_features=20_000, stop_words="english", min_df=2 if len(prompts) >= 50 else 1, sublinear_tf=True
    )
    try:
        features = vectorizer.fit_transform(prompts.fillna(""))
    except ValueError:  # no vocabulary at all (e.g. a handful of stop-word prompts)
        return np.array(["all"] * len(prompts)), ["all"]
    if k <= 1:
        return np.array(["all"] * len(prompts)), ["all"]
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=2048).fit(features)
    terms = np.array(vectorizer.get_feature_names_out())
    names = []
    for i, centre in enumerate(model.cluster_centers_):
        top = terms[np.argsort(centre)[::-1][:3]]
        names.append(f"t{i}:" + "-".join(top))
    return np.array(names)[model.labels_], names


def turn_buckets(turn_index: pd.Series, starts: list[int]) -> pd.Series:
    starts = sorted(set(starts))
    labels = []
    for i, start in enumerate(starts):
        end = starts[i + 1] - 1 if i + 1 < len(starts) else None
        labels.append(f"{start}+" if end is None else (str(start) if end == start else f"{start}-{end}"))
    positions = np.searchsorted(starts, turn_index.to_numpy(), side="right") - 1
    return pd.Series(np.array(labels)[np.clip(positions, 0, None)], index=turn_index.index)


def allocate(sizes: np.ndarray, n: int, allocation: str) -> np.ndarray:
    """Expected sample size per stratum (real numbers, each ≤ its stratum, summing to n)."""
    if allocation == "proportional":
        return n * sizes / sizes.sum()
    expected = np.zeros(len(sizes))
    open_ = np.ones(len(sizes), dtype=bool)
    remaining = float(n)
    while remaining > 1e-9 and open_.any():  # water-filling: equal shares, capped at N_h
        share = remaining / open_.sum()
        room = sizes - expected
        take = np.where(open_, np.minimum(share, room), 0.0)
        expected += take
        remaining -= take.sum()
        open_ &= (sizes - expected) > 1e-9
    return expected


def controlled_round(expected: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Integers n_h with Σ n_h = Σ expected and E[n_h] = expected_h exactly (systematic rounding)."""
    base = np.floor(expected + 1e-12)
    fractions = np.clip(expected - base, 0.0, 1.0)
    cumulative = np.concatenate([[0.0], np.cumsum(fractions)])
    u = rng.uniform()
    extra = np.floor(cumulative[1:] - u + 1e-12) - np.floor(cumulative[:-1] - u + 1e-12)
    return (base + extra).astype(int)


def assign_strata(pairs: pd.DataFrame, config: SampleConfig) -> tuple[pd.DataFrame, list[str]]:
    """The pairs ordered by `pair_id`, with `topic` and `stratum` columns; and the topic names.

    Strata are a function of the corpus and the config alone (the topic model has its own fixed
    seed), so every sampling seed draws from the same design.
    """
    frame = pairs.sort_values("pair_id", kind="stable").reset_index(drop=True)
    topics, topic_names = topic_model(frame["prompt"], config.topics, config.topic_seed)
    frame["topic"] = topics
    parts = {
        "model": frame["model"].fillna("unknown").astype(str),
        "turn_bucket": turn_buckets(frame["turn_index"], config.turn_bucket_starts),
        "topic": frame["topic"],
    }
    if config.strata:
        labelled = pd.concat([k + "=" + parts[k] for k in config.strata], axis=1)
        frame["stratum"] = labelled.agg("|".join, axis=1)
    else:
        frame["stratum"] = "all"
    return frame, topic_names


def draw_stratified(frame: pd.DataFrame, n: int, seed: int, allocation: str) -> tuple[pd.DataFrame, list[dict]]:
    """Draw n rows of a frame with a `stratum` column; add the exact `inclusion_prob` of each."""
    if n < 1:
        raise CorpusError(f"--n must be at least 1 (got {n})")
    if n > len(frame):
        raise CorpusError(f"asked for a sample of {n} pairs but the corpus has only {len(frame)}")
    strata = frame["stratum"].value_counts().sort_index()
    sizes = strata.to_numpy(dtype=float)
    expected = allocate(sizes, n, allocation)
    rng = np.random.default_rng(seed)
    drawn = controlled_round(expected, rng)
    labels = frame["stratum"].to_numpy()
    chosen = [rng.choice(np.flatnonzero(labels == s), size=k, replace=False) for s, k in zip(strata.index, drawn)]
    probability = pd.Series(expected / sizes, index=strata.index)
    sample = frame.iloc[np.sort(np.concatenate(chosen))].reset_index(drop=True)
    sample["inclusion_prob"] = sample["stratum"].map(probability)
    design = [
        {"stratum": s, "population": int(N), "expected": float(m), "drawn": int(k)}
        for s, N, m, k in zip(strata.index, sizes, expected, drawn)
    ]
    return sample, design


def draw_sample(pairs: pd.DataFrame, n: int, seed: int, config: SampleConfig) -> tuple[pd.DataFrame, dict]:
    """Stratified sample of `pairs` with `stratum`, `topic` and exact `inclusion_prob` columns.

    Rows are first ordered by `pair_id`, so the same corpus and seed give the same sample whatever
    order the corpus was built in. Returns the sample and a description of the design.
    """
    if n > len(pairs):
        raise CorpusError(f"asked for a sample of {n} pairs but the corpus has only {len(pairs)}")
    frame, topic_names = assign_strata(pairs, config)
    sample, strata = draw_stratified(frame, n, seed, config.allocation)
    design = {
        "n": int(n),
        "population": int(len(frame)),
        "seed": int(seed),
        "config": config.model_dump(),
        "topics": topic_names,
        "strata": strata,
    }
    return sample, design
