"""Refuters on planted effects in real text: the placebo covers 0 (and, being a software check, cannot
see confounding), and the leave-one-model-out verdict flips when the whole effect sits in one model."""

from __future__ import annotations

import time

import numpy as np
import pytest

from empathy_study import causal
from empathy_study.causal import _refute as refute


def _users_who_differ(seed: int) -> refute.Problem:
    """A sound design: every confounder observed, a real effect of 1.0, and users who differ in how
    often they get empathy (as real users do)."""
    from empathy_study.causal._nuisance import fold_ids

    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 8, 600)
    clusters = np.repeat(np.arange(600), sizes)
    share = rng.beta(1, 1, 600)[clusters]
    X = rng.normal(size=(len(clusters), 5))
    t = (rng.random(len(clusters)) < np.clip(share + 0.1 * X[:, 0], 0.02, 0.98)).astype(int)
    y = 0.5 * X[:, 0] + 1.0 * t + rng.normal(size=len(clusters))
    return refute.dr_problem(lambda n: X, t, y, clusters, np.array(["m"] * len(t)), fold_ids(clusters, 5, seed),
                             "linear", 0.01, seed)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_placebo_passes_a_sound_design_that_a_within_user_shuffle_would_fail(seed):
    """A within-user shuffle keeps each user's share of treated pairs, so it carries the between-user
    part of a real effect (about a third of it here) and fails a sound design; the placebo shuffles
    across all pairs and passes."""
    problem = _users_who_differ(seed)
    original = problem.refit(refute.Alteration())
    result = refute.placebo(problem, original)
    within_user = refute.stratified_permutation(problem.clusters, np.random.default_rng(seed))
    within = problem.refit(refute.Alteration(permutation=within_user))
    print(f"\nseed {seed}: dr {original.estimate:+.3f}; placebo {result['estimate']:+.3f} "
          f"[{result['ci_low']:.3f}, {result['ci_high']:.3f}]; within-user shuffle {within.estimate:+.3f}")
    assert original.low < 1.0 < original.high
    assert result["verdict"] == "passed" and abs(result["estimate"]) < 0.15
    assert not within.covers_zero and within.estimate > 0.2


def test_refitting_the_unaltered_problem_reproduces_the_dr_row(studies):
    problem, fit, _ = studies["uniform"]
    again = problem.refit(refute.Alteration())
    assert again.estimate == pytest.approx(float(np.mean(fit.scores)), abs=1e-10)


def test_the_placebo_covers_zero_where_a_genuine_effect_is_found_and_says_what_it_cannot_detect(studies):
    problem, _, _ = studies["uniform"]
    start = time.perf_counter()
    out = refute.refute(problem, ["placebo"])
    print(f"\nplacebo: {out['placebo']['verdict']} — {out['placebo']['summary']} ({time.perf_counter() - start:.1f} s)")
    original = problem.refit(refute.Alteration())
    assert not original.covers_zero  # the planted effect is found …
    assert out["placebo"]["verdict"] == "passed"  # … and the placebo finds none
    assert abs(out["placebo"]["estimate"]) < original.estimate / 2
    assert out["placebo"]["kind"] == "software check" and "not confounding" in out["placebo"]["detects"]


def test_leave_one_model_out_flips_when_one_model_carries_the_effect(studies):
    verdicts = {}
    for name in ("uniform", "gpt4_only"):
        problem, _, _ = studies[name]
        result = refute.leave_one_model_out(problem, problem.refit(refute.Alteration()))
        print(f"\n{name}: {result['verdict']} — {result['summary']}")
        verdicts[name] = result["verdict"]
        assert set(result["by_model"]) == set(causal._semisynthetic.MODELS)
    assert verdicts == {"uniform": "passed", "gpt4_only": "failed"}



def test_an_unknown_refuter_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown refuter 'placebos'.*leave_one_model_out"):
        causal.CausalConfig(refuters=["placebos"])
