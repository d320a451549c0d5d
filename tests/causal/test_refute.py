"""Refuters on planted effects in real text: the placebo covers 0, a genuine effect survives, and the
leave-one-model-out verdict flips when the whole effect sits in one model."""

from __future__ import annotations

import time

import numpy as np
import pytest

from empathy_study import causal
from empathy_study.causal import _refute as refute


def test_permutation_within_user_keeps_each_users_treatments():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(60), rng.integers(1, 6, 60))
    t = rng.integers(0, 2, len(clusters))
    fake = refute.permute_within(t, clusters, rng)
    several = np.bincount(clusters) > 1
    assert np.array_equal(np.bincount(clusters, weights=fake)[several], np.bincount(clusters, weights=t)[several])
    assert not np.array_equal(fake[several[clusters]], t[several[clusters]])
    single = ~several[clusters]  # users with one pair are shuffled among themselves
    assert single.sum() > 5 and fake[single].sum() == t[single].sum() and not np.array_equal(fake[single], t[single])


def test_refitting_the_unaltered_problem_reproduces_the_dr_row(studies):
    problem, fit = studies["uniform"]
    again = refute.dr_estimate(problem)
    assert again.estimate == pytest.approx(float(np.mean(fit.scores)), abs=1e-10)


def test_placebo_covers_zero_and_a_genuine_effect_survives_the_others(studies):
    problem, _ = studies["uniform"]
    start = time.perf_counter()
    out = refute.refute(problem, ["placebo", "random_common_cause", "subsample"])
    for name, r in out.items():
        print(f"\n{name}: {r['verdict']} — {r['summary']}")
    print(f"refuters: {time.perf_counter() - start:.1f} s")
    original = refute.dr_estimate(problem)
    assert not original.covers_zero  # the planted effect is found …
    assert out["placebo"]["verdict"] == "passed"  # … and the placebo finds none
    assert abs(out["placebo"]["estimate"]) < original.estimate / 2
    assert out["random_common_cause"]["verdict"] == "passed"
    assert out["subsample"]["verdict"] == "passed" and len(out["subsample"]["estimates"]) == refute.SUBSAMPLES


def test_leave_one_model_out_flips_when_one_model_carries_the_effect(studies):
    verdicts = {}
    for name in ("uniform", "gpt4_only"):
        problem, _ = studies[name]
        result = refute.leave_one_model_out(problem, refute.dr_estimate(problem))
        print(f"\n{name}: {result['verdict']} — {result['summary']}")
        verdicts[name] = result["verdict"]
        assert set(result["by_model"]) == set(causal._semisynthetic.MODELS)
    assert verdicts == {"uniform": "passed", "gpt4_only": "failed"}



def test_an_unknown_refuter_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown refuter 'placebos'.*random_common_cause"):
        causal.CausalConfig(refuters=["placebos"])
