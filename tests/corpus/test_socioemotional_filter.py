"""The old keyword filter (`transactional_reason`, now the baseline the population filter is compared
with) against 300 pairs labelled (by an AI model, not humans) before it was written (data/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from empathy_study import corpus

LABELS = Path(__file__).parents[2] / "data" / "socioemotional_pairs.jsonl"
# Stratum sizes of the labelling frame (data/README.md): cue-word pairs and the rest.
FRAME = {True: 1_056, False: 49_233}


@pytest.fixture(scope="module")
def labelled():
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    kept = np.array([corpus.transactional_reason(r["prompt"], r["response"], r["reply"]) is None for r in rows])
    truth = np.array([r["socio_emotional"] for r in rows])
    cue = np.array([r["cue_word"] for r in rows])
    weight = np.where(cue, FRAME[True] / cue.sum(), FRAME[False] / (~cue).sum())
    return kept, truth, weight, np.array([r["drawn_from"] for r in rows])


def precision_recall(kept, truth, weight):
    tp = (weight * (kept & truth)).sum()
    return tp / (weight * kept).sum(), tp / (weight * truth).sum()


def test_labelled_set_is_as_documented(labelled):
    _, truth, _, drawn = labelled
    assert (drawn == "random").sum() == 200 and (drawn == "cue").sum() == 100
    assert truth[drawn == "random"].sum() == 5 and truth[drawn == "cue"].sum() == 14


def test_filter_precision_and_recall(labelled):
    kept, truth, weight, _ = labelled
    precision, recall = precision_recall(kept, truth, weight)
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(2_000):  # stratified bootstrap: resample within each stratum
        idx = np.concatenate([rng.choice(np.flatnonzero(weight == w), (weight == w).sum()) for w in np.unique(weight)])
        draws.append(precision_recall(kept[idx], truth[idx], weight[idx]))
    low, high = np.nanpercentile(np.array(draws), [2.5, 97.5], axis=0)
    print(f"\ndesign-weighted precision {precision:.2f} [{low[0]:.2f}, {high[0]:.2f}], "
          f"recall {recall:.2f} [{low[1]:.2f}, {high[1]:.2f}]; raw kept {kept.sum()} of {len(kept)}, "
          f"true positives {(kept & truth).sum()} of {truth.sum()}")
    assert precision >= 0.6 and recall >= 0.6


def test_random_stratum_is_almost_all_rejected(labelled):
    kept, truth, _, drawn = labelled
    random = drawn == "random"
    false_keep = (kept & ~truth & random).sum()
    assert false_keep <= 3, "the filter keeps task pairs that a random draw of ShareGPT is full of"
