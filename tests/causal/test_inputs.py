"""Bad input to the causal stage: one clear error each. And the embedding cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from empathy_study import causal


def table(n=40, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "pair_id": [f"p{i}" for i in range(n)], "prompt": [f"prompt number {i}" for i in range(n)],
        "model": "m", "turn_index": 1, "user_id": [f"u{i}" for i in range(n)],
        "empathy": rng.choice([1.0, 2.0, 6.0, 7.0], n), "attachment": rng.integers(1, 8, n).astype(float),
    })


class NoEmbedder:
    """The checks must fail before anything is embedded."""

    def embed(self, texts, on_progress=None):
        raise AssertionError("embedded before the input was validated")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(columns=["attachment", "model"]), "missing columns: model, attachment"),
        (lambda t: t.assign(empathy=9.0), "scores outside 1..7"),
        (lambda t: t.assign(attachment="high"), "non-numeric"),
        (lambda t: t.assign(empathy=2.0), "0 treated"),
        (lambda t: t.assign(empathy=4.0), "0 treated and 0 control"),
        (lambda t: t.drop(columns=["user_id"]), "user_id"),
        (lambda t: t.assign(prompt=[""] + ["x"] * 39), "empty texts"),
        (lambda t: t.head(6), "too few users for 5-fold cross-fitting"),
    ],
)
def test_bad_input_is_one_clear_error(change, message):
    with pytest.raises(causal.CausalError, match=message):
        causal.estimate_effects(change(table()), causal.CausalConfig(), NoEmbedder())


def test_treatment_rule_is_checked():
    with pytest.raises(causal.CausalError, match="low < high"):
        causal.TreatmentRule(high=3, low=5)


def test_rule_excludes_everything_strictly_between():
    rule = causal.TreatmentRule()
    assigned = rule.assign(pd.Series([1, 3, 3.5, 4, 4.5, 4.99, 5, 7]))
    assert assigned.tolist()[:2] == [0, 0] and assigned.tolist()[-2:] == [1, 1]
    assert assigned.iloc[2:6].isna().all()


def test_unscored_rows_are_counted_not_silently_dropped():
    frame = table()
    frame.loc[:4, "attachment"] = np.nan
    arrays = causal.prepare(frame, causal.TreatmentRule())
    assert arrays.counts["unscored"] == 5 and len(arrays.outcome) == 35


def test_second_run_embeds_nothing(tmp_path):
    cache = causal.EmbeddingCache(tmp_path / "cache")
    texts = ["I feel lonely tonight.", "Write a haiku about rain.", "I feel lonely tonight."]
    first = causal.Embedder(cache)
    vectors = first.embed(texts)
    assert first.embedded == 2 and vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    again = causal.Embedder(causal.EmbeddingCache(tmp_path / "cache"))
    assert np.allclose(again.embed(texts), vectors) and again.embedded == 0 and again._model is None
