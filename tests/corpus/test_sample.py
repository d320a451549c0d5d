"""Stratified sampling: exact inclusion probabilities, fixed size, reproducible, order-free."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from empathy_study import corpus
from empathy_study.corpus._sample import allocate, assign_strata, controlled_round, draw_stratified

WORDS = {
    "love": "I love my partner and we feel close",
    "work": "my job and my boss stress me at work",
    "game": "let's play a fun game together tonight",
}


def population(sizes: dict[tuple[str, int, str], int]) -> pd.DataFrame:
    rows = []
    for (model, turn, topic), size in sizes.items():
        for i in range(size):
            rows.append({"pair_id": f"{model}-{turn}-{topic}-{i:04d}", "model": model, "turn_index": turn,
                         "prompt": f"{WORDS[topic]} {i}", "conversation_id": f"c{i}", "user_id": f"u{i}",
                         "timestamp": None, "response": "r", "reply": "y"})
    return pd.DataFrame(rows)


FRAME = population({("gpt-4", 1, "love"): 40, ("gpt-4", 3, "work"): 7, ("gpt-3.5", 1, "game"): 90,
                    ("gpt-3.5", 6, "love"): 3})


@pytest.mark.parametrize("allocation", ["proportional", "equal"])
def test_inclusion_probabilities_are_exact(allocation):
    """Monte Carlo over seeds: each pair's empirical inclusion rate matches its stated probability."""
    frame, _ = assign_strata(FRAME, corpus.SampleConfig(topics=3))
    n, reps = 13, 2_000
    hits = pd.Series(0, index=frame["pair_id"])
    stated = {}
    for seed in range(reps):
        sample, _ = draw_stratified(frame, n, seed, allocation)
        assert len(sample) == n
        hits[sample["pair_id"]] += 1
        stated.update(zip(sample["pair_id"], sample["inclusion_prob"]))
    expected = pd.Series(stated).reindex(frame["pair_id"])
    assert expected.notna().all(), "every pair has a positive probability and was drawn at least once"
    assert expected.sum() == pytest.approx(n)
    se = np.sqrt(expected * (1 - expected) / reps)
    assert (np.abs(hits / reps - expected) <= 4.5 * se + 1e-9).all()


def test_probabilities_sum_to_n_over_the_frame():
    sizes = np.array([40.0, 7.0, 90.0, 3.0])
    for allocation in ("proportional", "equal"):
        expected = allocate(sizes, 13, allocation)
        assert expected.sum() == pytest.approx(13)
        assert (expected <= sizes + 1e-9).all()
    assert allocate(np.array([2.0, 50.0]), 20, "equal") == pytest.approx([2.0, 18.0])


def test_controlled_rounding_keeps_total_and_mean():
    expected = np.array([0.3, 1.7, 2.5, 0.5])
    rng = np.random.default_rng(1)
    draws = np.array([controlled_round(expected, rng) for _ in range(20_000)])
    assert (draws.sum(axis=1) == 5).all()
    assert draws.mean(axis=0) == pytest.approx(expected, abs=0.02)


def test_same_seed_same_sample_whatever_the_row_order():
    config = corpus.SampleConfig(topics=3)
    a, _ = corpus.draw_sample(FRAME, 20, 7, config)
    b, _ = corpus.draw_sample(FRAME.sample(frac=1, random_state=3), 20, 7, config)
    c, _ = corpus.draw_sample(FRAME, 20, 8, config)
    assert list(a["pair_id"]) == list(b["pair_id"])
    assert list(a["pair_id"]) != list(c["pair_id"])
    assert {"stratum", "topic", "inclusion_prob"} <= set(a.columns)


def test_sample_larger_than_corpus_is_an_error():
    with pytest.raises(corpus.CorpusError, match="only 140"):
        corpus.draw_sample(FRAME, 500, 0, corpus.SampleConfig())
