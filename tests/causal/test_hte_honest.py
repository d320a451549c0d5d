"""The heterogeneity forest is honest by user (issue 20): no CATE the calibration test or GATES read comes
from a forest that saw any pair of the same user, so users' differences are not read as heterogeneity.

Synthetic DR scores (the forest stage alone, simulated): a user's pairs have alike modifiers (the user's
centre plus small noise) and users' effects differ (SD 1); in the null nothing of the effect is in the
modifiers. Seeded, so deterministic; each bound is the binomial tail a test of the stated level would
pass with probability ≥ 0.999, so that another seed would not flip it. The 100-replication version
(and the real-text pipeline) is bench/hte_level.py, its results docs/hte-level.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from empathy_study.causal import CausalError, _hte
from empathy_study.causal._hte import forest_cate

TREES = 40  # per forest: small and fast (the estimate uses 200)
AVERAGE = 0.6


def users_differ(seed: int, users: int = 60, per_user: int = 25, modifier_slope: float = 0.0):
    """(modifiers, DR scores, users): ψ = 0.6 + slope × x₁ + b_user + N(0, 2.5²), b_user ~ N(0, 1)."""
    rng = np.random.default_rng([seed, 5])
    user = np.repeat(np.arange(users), per_user)
    modifiers = rng.normal(size=(users, 6))[user] + 0.3 * rng.normal(size=(len(user), 6))
    scores = (AVERAGE + modifier_slope * modifiers[:, 0] + rng.normal(size=users)[user]
              + rng.normal(0, 2.5, len(user)))
    return modifiers, scores, user


def most_passes(trials: int, rate: float, tail: float = 1e-3) -> int:
    """The largest count a Binomial(trials, rate) exceeds with probability below `tail`."""
    return int(next(k for k in range(trials + 1) if stats.binom.sf(k, trials, rate) < tail))


def test_a_users_cates_do_not_depend_on_that_users_own_scores():
    """Changing every DR score of one user leaves that user's CATEs exactly as they were: they come
    from forests fitted on other users only (an out-of-bag forest's would move)."""
    modifiers, scores, user = users_differ(0, users=30, per_user=20)
    before = forest_cate(modifiers, scores, user, seed=3, trees=TREES)
    changed = scores.copy()
    changed[user == 7] += 5.0
    after = forest_cate(modifiers, changed, user, seed=3, trees=TREES)
    np.testing.assert_array_equal(after.cate[user == 7], before.cate[user == 7])
    assert not np.allclose(after.cate[user != 7], before.cate[user != 7])  # other users' forests saw the change


def test_users_are_dealt_whole_into_halves_differently_in_each_split():
    clusters = np.repeat(np.arange(11), np.arange(1, 12))
    folds = _hte.user_folds(clusters, repeats=4, seed=0)
    assert folds.shape == (4, len(clusters)) and set(np.unique(folds)) == set(range(_hte.FOLDS))
    for split in folds:
        assert all(len(set(split[clusters == u])) == 1 for u in range(11))  # a user's pairs on one side
        assert np.ptp(np.bincount(split[np.unique(clusters, return_index=True)[1]])) <= 1  # users balanced
    assert len({tuple(split) for split in folds}) > 1
    with pytest.raises(CausalError, match="at least 2 users"):
        _hte.user_folds(np.zeros(10, int), repeats=2, seed=0)


def test_the_calibration_test_keeps_its_level_when_only_users_differ():
    """16 datasets of the null: the out-of-bag forest rejected in all 16 (at this design and seeds); a
    5 % test exceeds 4 rejections of 16 with probability < 0.001. GATES: each group's interval covers
    with ≥ 95 %, so the lowest or the highest quintile's misses the true effect in ≤ 10 % of datasets
    (the out-of-bag forest's missed in 16 of 16: it sorts users by their own effect)."""
    datasets = 16
    p, missed = [], 0
    for seed in range(datasets):
        forest = forest_cate(*users_differ(seed), seed=seed, trees=TREES)
        p.append(forest.calibration.p_value)
        low, high = forest.gates[0], forest.gates[-1]
        missed += not (low["ci"][0] <= AVERAGE <= low["ci"][1] and high["ci"][0] <= AVERAGE <= high["ci"][1])
    rejected = int(np.sum(np.array(p) < 0.05))
    print(f"\nrejected {rejected} of {datasets} (median p {np.median(p):.3f}); extreme GATES missed {missed}")
    assert rejected <= most_passes(datasets, 0.05)
    assert missed <= most_passes(datasets, 0.10)


def test_the_calibration_test_still_detects_heterogeneity_in_the_modifiers():
    """The same users, plus an effect that grows by 1 per SD of the first modifier: the test rejected in
    39 of 40 such datasets; with a power of at least 0.95, fewer than 7 rejections of 10 have
    probability < 0.001. The top CATE quintile shows the larger effect."""
    datasets = 10
    rejected, ordered = 0, 0
    for seed in range(datasets):
        forest = forest_cate(*users_differ(100 + seed, modifier_slope=1.0), seed=seed, trees=TREES)
        rejected += forest.calibration.p_value < 0.05
        ordered += forest.gates[-1]["estimate"] > forest.gates[0]["estimate"]
    print(f"\nrejected {rejected} of {datasets}; top quintile above the bottom in {ordered}")
    assert rejected >= datasets - most_passes(datasets, 0.05)
    assert ordered >= datasets - most_passes(datasets, 0.05)


def test_gates_intervals_are_split_level_at_97_5_percent_and_simultaneous_over_groups():
    """With one split the median is that split's interval: its half-width is z(1 − 0.05/4) SE, the
    simultaneous one's z(1 − 0.05/(4 × 5)) SE — what makes the median over splits cover with ≥ 95 %."""
    forest = forest_cate(*users_differ(1), seed=1, trees=TREES, repeats=1)
    for g in forest.gates:
        pointwise, simultaneous = np.diff(g["ci"])[0], np.diff(g["ci_simultaneous"])[0]
        assert simultaneous / pointwise == pytest.approx(stats.norm.ppf(1 - 0.05 / 20) / stats.norm.ppf(1 - 0.05 / 4))
        assert g["ci"][0] < g["estimate"] < g["ci"][1]
