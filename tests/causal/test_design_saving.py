"""What an audit design saved (`uniform_equivalent`): the labels a uniform audit needs for the audit
variance an unequal-probability audit has. Checked against Monte Carlo variances of the
Horvitz–Thompson mean under both designs (simulated residuals)."""

from __future__ import annotations

import numpy as np
import pytest

from empathy_study.causal._inference import uniform_equivalent


def test_a_uniform_audit_is_worth_the_labels_it_drew_in_expectation():
    rng = np.random.default_rng(0)
    residual = rng.normal(size=300)
    assert uniform_equivalent(residual, np.full(300, 0.1), pairs=3_000) == pytest.approx(300)


def test_the_uniform_equivalent_matches_the_variances_it_stands_for():
    rng = np.random.default_rng(1)
    n = 4_000
    residual = rng.normal(0, np.where(rng.random(n) < 0.2, 3.0, 0.3))  # errors concentrated on a fifth
    need = np.abs(residual) * 0.7 + 0.3 * np.abs(residual).mean()  # a need model that is partly right
    active = np.clip(need / need.sum() * 300, 0.01, 1)
    ht = []
    equivalents = []
    for _ in range(2_000):
        drawn = rng.random(n) < active
        ht.append(np.sum(residual[drawn] / active[drawn]) / n)
        equivalents.append(uniform_equivalent(residual[drawn], active[drawn], n))
    active_variance = np.var(ht)
    # Uniform at rate q: Var = (1 − q)/q · Σr² / n²; solve for the q that matches the active design.
    q = np.sum(residual**2) / (n**2 * active_variance + np.sum(residual**2))
    truth = q * n
    assert active.sum() < 0.7 * truth  # the design helps here: the check has something to find
    assert np.median(equivalents) == pytest.approx(truth, rel=0.15)


def test_an_estimate_on_an_unequal_audit_says_what_its_design_is_worth(sharegpt_all_pairs):
    """Real text, a simulated judge and simulated human labels. The same study audited twice: uniformly,
    and with probabilities grown where the judge errs (an oracle need, known only to the simulation).
    The unequal audit's estimate says what it was worth; the uniform one is worth what it drew and says
    nothing. (That the number is right is the Monte Carlo test above: a cross-check between two single
    fits is at the mercy of the correction's heavy-tailed residuals — at this size one audited pair of
    extreme inverse-propensity weight can carry most of the audit variance.)"""
    from empathy_study import annotation, causal

    embedder = causal.Embedder()
    scored, truth = causal.semisynthetic_study(sharegpt_all_pairs, 1_200, seed=3, embedder=embedder)
    uniform = causal.judge_labels(scored, truth, causal.JudgeNoise(), audit_rate=0.2, seed=3)
    n = len(uniform)
    error = np.abs(uniform["empathy"] - scored["empathy"]) + np.abs(uniform["attachment"] - scored["attachment"])
    p = annotation.budget_probabilities(0.3 + error.to_numpy(), 0.2 * n, floor=0.1)
    drawn = np.random.default_rng(4).random(n) < p
    active = uniform.assign(empathy_gold=np.where(drawn, scored["empathy"], np.nan),
                            attachment_gold=np.where(drawn, scored["attachment"], np.nan),
                            gold_prob=p, gold_drawn=drawn.astype(int))
    config = causal.CausalConfig(estimators=["dr_gold_corrected"], heterogeneity=False, refuters=[],
                                 sensitivity=False, workers=1)
    gold = causal.estimate_effects(active, config, embedder).gold
    said = gold["design"]
    assert said["probabilities_vary"] and said["labels_used"] == int(drawn.sum())
    assert f"a uniform audit would have needed about {said['uniform_equivalent']:,.0f}" in said["sentence"]
    plain = causal.estimate_effects(uniform, config, embedder).gold
    assert not plain["design"]["probabilities_vary"] and plain["design"]["sentence"] is None
    assert plain["design"]["uniform_equivalent"] == pytest.approx(0.2 * n, rel=0.12)


def test_the_uniform_equivalents_interval_covers_the_labels_it_stands_for():
    """The same design as above: over repeated audits, the cluster bootstrap interval of the uniform
    equivalent holds the Monte Carlo value about as often as it says."""
    from empathy_study.causal._inference import uniform_equivalent_interval

    rng = np.random.default_rng(2)
    n = 4_000
    clusters = np.repeat(np.arange(n // 2), 2)  # two pairs a user
    residual = rng.normal(0, np.where(rng.random(n) < 0.2, 3.0, 0.3))
    need = np.abs(residual) * 0.7 + 0.3 * np.abs(residual).mean()
    active = np.clip(need / need.sum() * 300, 0.01, 1)
    ht = []
    draws = [rng.random(n) < active for _ in range(2_000)]
    for drawn in draws:
        ht.append(np.sum(residual[drawn] / active[drawn]) / n)
    q = np.sum(residual**2) / (n**2 * np.var(ht) + np.sum(residual**2))
    truth = q * n
    covered = []
    for k, drawn in enumerate(draws[:300]):
        low, high = uniform_equivalent_interval(residual[drawn], active[drawn], n, clusters[drawn], draws=400, seed=k)
        covered.append(low <= truth <= high)
    print(f"\nuniform equivalent {truth:.0f}; bootstrap interval coverage {np.mean(covered):.3f} over 300 audits")
    assert 0.88 <= np.mean(covered) <= 0.99
