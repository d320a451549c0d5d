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


def test_estimators_register_by_name_and_results_give_intervals_at_any_level(monkeypatch):
    """A new estimator plugs in by declaring its name and registering; the result's rows give (1 − alpha)
    intervals on request."""
    from empathy_study.causal import EffectRow, _registry

    with pytest.raises(ValueError, match="not declared"):
        _registry.estimator("difference_of_medians")
    monkeypatch.setattr(_registry, "ESTIMATOR_NAMES", (*_registry.ESTIMATOR_NAMES, "difference_of_medians"))

    @_registry.estimator("difference_of_medians")
    def _medians(fit):
        d = fit.data
        value = float(np.median(d.outcome[d.treatment == 1]) - np.median(d.outcome[d.treatment == 0]))
        return [EffectRow("difference_of_medians", "ATE", value, 0.5, len(d.outcome))]

    try:
        frame = table(n=120, seed=1)
        config = causal.CausalConfig(estimators=["naive", "difference_of_medians"], heterogeneity=False,
                                     embedding_dims=4, prev_embedding_dims=0)
        result = causal.estimate_effects(frame, config, causal.Embedder())
        assert [r.method for r in result.rows] == ["naive", "difference_of_medians"]
        wide, narrow = result.summary_frame(0.05), result.summary_frame(0.32)
        assert ((wide["ci_high"] - wide["ci_low"]) > (narrow["ci_high"] - narrow["ci_low"])).all()
        row = result.row("difference_of_medians")
        assert row.conf_int(0.05)[1] - row.estimate == pytest.approx(1.959964 * 0.5, rel=1e-5)
    finally:
        _registry.ESTIMATORS.pop("difference_of_medians")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="unknown estimator 'difference_of_medians'"):
        causal.CausalConfig(estimators=["difference_of_medians"])


def test_small_arms_and_effects_beyond_the_scale_are_warned():
    frame = table(n=120, seed=2)
    frame["empathy"] = np.where(np.arange(120) < 14, 7.0, 1.0)  # 14 treated pairs
    frame["attachment"] = np.where(np.arange(120) < 14, 7.0, 1.0)  # and a +6 difference: the most the scale allows
    config = causal.CausalConfig(estimators=["naive"], heterogeneity=False, embedding_dims=4, prev_embedding_dims=0)
    result = causal.estimate_effects(frame, config, causal.Embedder())
    assert any(w.startswith("only 14 treated pairs") for w in result.warnings)
    assert result.row("naive").estimate == pytest.approx(6.0)
    assert not any("outside ±6" in w for w in result.warnings)  # exactly 6 is allowed


def test_row_warnings_name_estimates_past_the_scale_and_rows_not_estimated():
    from empathy_study.causal._estimate import row_warnings
    from empathy_study.causal._results import EffectRow, empty_row

    rows = [EffectRow("dr", "ATE", -6.3, 1.0, 100), EffectRow("dr", "ATE", 5.9, 1.0, 100, weighted=True),
            empty_row("matching_greedy", "ATT_matched", "no pairs: no treated unit has a control within the caliper")]
    lines = row_warnings(rows)
    assert len(lines) == 2
    assert lines[0].startswith("dr · ATE: -6.30 lies outside ±6")
    assert lines[1] == "matching_greedy · ATT_matched: not estimated — no pairs: no treated unit has a control within the caliper"


def test_a_constant_outcome_stops_the_estimate_with_one_line():
    """Every attachment score equal (an embedded judge that answers 1 to everything): the E-value divided
    by its SD of 0 and, with sensitivity off, dr reported +0.000 [0.000, 0.000] and a placebo 'passed'."""
    frame = table(n=120, seed=4)
    frame["attachment"] = 1.0
    config = causal.CausalConfig(estimators=["dr"], heterogeneity=False, embedding_dims=4, prev_embedding_dims=0)
    with pytest.raises(causal.CausalError, match="every attachment score of the .* pairs in an arm is 1"):
        causal.estimate_effects(frame, config, causal.Embedder())


def test_a_warning_raised_many_times_is_said_once_with_its_count():
    from empathy_study.causal._estimate import once_each

    assert once_each(["a", "b", "a", "a"]) == ["a (×3)", "b"]
