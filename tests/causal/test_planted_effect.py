"""The estimators on a semi-synthetic study: real ShareGPT text, simulated scores, a planted effect.

Fixed seed, so each assertion is deterministic; coverage over many replications is measured in
bench/estimator_coverage.py, not here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from empathy_study import causal
from empathy_study.causal._embeddings import REFERENCE


@pytest.fixture(scope="module")
def planted(sharegpt_all_pairs):
    # Planted through the fp32 reference's reading of the prompts, as in bench/estimator_coverage.py, so the
    # planted study does not change with the default embedding; estimated with the default.
    reference = causal.Embedder(embedding=REFERENCE)
    scored, truth = causal.semisynthetic_study(sharegpt_all_pairs, 3_000, seed=0, embedder=reference)
    result = causal.estimate_effects(scored, causal.CausalConfig(bootstrap=300), causal.Embedder())
    used = scored.loc[scored["empathy"] != 4, "pair_id"]
    return scored, truth, result, used


def row(result, method, estimand, weighted=False):
    return next(r for r in result.rows if (r.method, r.estimand, r.weighted) == (method, estimand, weighted))


def test_generator_plants_confounding_and_heterogeneity(planted):
    scored, truth, _, used = planted
    assert set(scored["model"]) == set(causal._semisynthetic.MODELS)
    assert scored["timestamp"].notna().all()
    effects = truth.set_index("pair_id").loc[used, "expected_effect"]
    assert effects.std() > 0.1  # heterogeneous
    assert np.corrcoef(truth["personal_score"], truth["propensity"])[0, 1] > 0.3  # confounded


def test_dr_recovers_the_planted_ate_and_naive_does_not(planted):
    _, truth, result, used = planted
    true_ate = causal.true_effects(truth, used)
    dr = row(result, "dr", "ATE")
    naive = row(result, "naive", "ATE")
    print(f"\ntrue ATE {true_ate:.3f}; dr {dr.estimate:.3f} [{dr.ci_low:.3f}, {dr.ci_high:.3f}]; naive {naive.estimate:.3f}")
    assert abs(dr.estimate - true_ate) < 0.2
    assert dr.ci_low < true_ate < dr.ci_high
    assert abs(naive.estimate - true_ate) > 0.5
    assert not (naive.ci_low < true_ate < naive.ci_high)


@pytest.mark.parametrize("method", ["matching_greedy", "matching_optimal"])
def test_matching_removes_most_of_the_confounding_of_the_treated_it_keeps(planted, method):
    """Semantic matching under-adjusts when confounding is spread over many embedding directions:
    over 100 replications (bench/estimator_coverage.py) its mean bias was +0.32 against the ATT of the units it
    kept, versus +1.07 for the naive difference. Asserted here: it lands near that truth and removes
    at least half of the naive bias."""
    _, truth, result, _ = planted
    estimate = row(result, method, "ATT_matched")
    naive = row(result, "naive", "ATE")
    kept = result.matched_treated(method)
    truth_kept = causal.true_effects(truth, kept)
    print(f"\n{method}: {estimate.estimate:.3f} ± {estimate.se:.3f} on {len(kept)} pairs; truth for them {truth_kept:.3f}")
    assert len(kept) >= 50
    assert abs(estimate.estimate - truth_kept) < 0.45
    assert abs(estimate.estimate - truth_kept) < 0.5 * abs(naive.estimate - truth_kept)


@pytest.mark.parametrize("method", ["matching_greedy", "matching_optimal"])
def test_bias_correction_removes_what_matching_left(planted, method):
    """Same pairs, each difference corrected by the control-outcome regression's prediction of it."""
    _, truth, result, _ = planted
    plain, corrected = row(result, method, "ATT_matched"), row(result, f"{method}_bc", "ATT_matched")
    truth_kept = causal.true_effects(truth, result.matched_treated(f"{method}_bc"))
    print(f"\n{method}: {plain.estimate:.3f} → bias-corrected {corrected.estimate:.3f} "
          f"[{corrected.ci_low:.3f}, {corrected.ci_high:.3f}]; truth for its pairs {truth_kept:.3f}")
    assert corrected.n_used == plain.n_used
    # What matching leaves of the planted confounding raises the estimate, so the correction lowers it: in
    # every one of the coverage bench's 100 planted replications per embedding (99 for greedy with int8),
    # where it brought the mean bias from +0.35 to +0.16. That it also lands *closer* to the truth is a
    # draw (91-94 of 100), so that claim is left to the bench (docs/methods/embeddings.md).
    assert corrected.estimate < plain.estimate
    assert corrected.ci_low < truth_kept < corrected.ci_high


def test_optimal_matching_total_cost_not_above_greedy(planted):
    _, _, result, _ = planted
    assert result.matching["optimal"]["objective"] <= result.matching["greedy"]["objective"] + 1e-9


def test_balance_improves_and_is_reported_for_every_covariate(planted):
    _, _, result, _ = planted
    summary = result.balance["max_abs_smd"]
    assert summary["after_weighting"] < summary["before"]
    assert summary["after_optimal"] < summary["before"]
    assert len(result.balance["before"]) == len(result.balance["covariates"])
    assert any(name.startswith("prompt_pc") for name in result.balance["covariates"])


def test_cates_stay_on_the_scale_and_are_summarised_by_groups_that_respect_users(planted):
    _, _, result, _ = planted
    cate = result.arrays["cate"]
    assert np.all(np.abs(cate) <= 6)
    hte = result.hte
    # Under a positive planted effect no CATE quintile's effect lies below zero (simultaneously over the
    # quintiles, cluster-robust by user); per-pair forest intervals, which treat pairs as independent
    # and each interval alone, are not reported.
    assert hte["gates_below_zero"] == []
    assert hte["gates_above_zero"]
    assert not any(key.startswith("share_interval") for key in hte)
    assert hte["honest_by"] == "user_id"
    assert {"beta_het", "p_value"} <= set(hte["calibration_test"])
    assert [g["group"] for g in hte["by"]["model"]["groups"]] == sorted(causal._semisynthetic.MODELS)
    report = causal.render_report(result)
    assert "Honest by user" in report and "interval lies entirely" not in report


def test_heterogeneity_is_seen_by_the_forests_whose_cates_are_reported(planted):
    """The planted effect is larger for gpt-4 and for personal prompts. The calibration test reads the
    CATEs of forests that never saw the pair's user (the reported CATEs are their means); the subgroup
    table tests equality across models."""
    _, truth, result, _ = planted
    hte = result.hte
    test = hte["calibration_test"]
    print(f"\nBLP β_het {test['beta_het']:.2f} (SE {test['beta_het_se']:.2f}), p {test['p_value']:.4f}; "
          f"by model joint p {hte['by']['model']['joint_test']['p_value']:.4f}")
    assert test["repeats"] == len(hte["calibration_repeats"]) >= 2
    # The forests' CATEs carry the planted signal (slope of the DR scores on them near 1). Whether the
    # test *declares* it is a matter of power: with p = 2 × the median over user splits it was 0.058 at
    # this n (3,000; 0.085 with the old out-of-bag forests), so only the declaration's consistency with p
    # is asserted (power over replications: bench/hte_level.py).
    assert test["beta_het"] > 0.3
    assert hte["heterogeneity_detected"] == (test["p_value"] < 0.05)
    assert hte["by"]["model"]["joint_test"]["p_value"] < 0.05
    gates = [g["estimate"] for g in hte["gates"]]
    assert gates[-1] > gates[0]  # the top CATE quintile has the larger effect


def test_one_set_of_nuisances_feeds_overlap_trimming_and_propensity_matching(planted, sharegpt_all_pairs):
    scored, _, result, _ = planted
    propensity = result.arrays["propensity"]
    config = causal.CausalConfig()
    outside = (propensity < config.trim) | (propensity > 1 - config.trim)
    assert result.overlap["trimmed"] == int(outside.sum())
    assert causal.EffectRow  # noqa: B018 — typed rows
    trimmed = result.row("dr", "ATE_trimmed")
    assert trimmed.n_used == int((~outside).sum())
    # Propensity matching pairs on the same propensity: each pair's distance is its logit gap.
    again = causal.estimate_effects(scored, causal.CausalConfig(distance="propensity", bootstrap=100,
                                                                 estimators=["matching"], heterogeneity=False),
                                    causal.Embedder())
    assert np.allclose(again.arrays["propensity"], propensity)
    used = scored.loc[scored["empathy"] != 4].reset_index(drop=True)
    logit = pd.Series(np.log(propensity / (1 - propensity)), index=used["pair_id"])
    pairs = again.matched_pairs[again.matched_pairs["method"] == "matching_optimal"]
    gap = np.abs(logit.loc[pairs["treated_pair_id"]].to_numpy() - logit.loc[pairs["control_pair_id"]].to_numpy())
    assert len(pairs) > 50 and np.allclose(gap, pairs["distance"], atol=1e-9)


def test_plain_matching_rows_are_marked_as_not_covering_and_cluster_on_users(planted):
    scored, _, result, _ = planted
    for r in result.rows:
        if r.method.startswith("matching"):
            assert r.interval_valid == r.method.endswith("_bc")
            pairs = result.matched_pairs[result.matched_pairs["method"] == r.method.removesuffix("_bc")]
            users = scored.set_index("pair_id")["user_id"]
            ids = set(users.loc[pairs["treated_pair_id"]]) | set(users.loc[pairs["control_pair_id"]])
            assert r.clusters == len(ids)  # every user on either side of a pair is a cluster


def test_same_seed_same_estimates(planted, sharegpt_all_pairs):
    scored, _, result, _ = planted
    again = causal.estimate_effects(scored, causal.CausalConfig(bootstrap=300), causal.Embedder())
    assert [r.estimate for r in again.rows] == pytest.approx([r.estimate for r in result.rows])


def test_sensitivity_block_on_the_planted_effect(planted):
    """The planted effect (≈ 0.65 points, SD of attachment ≈ 1.6) is clear: E-value above 1, matched
    pairs significant at Γ = 1, the omitted-variable robustness value of the interval above 0; the
    report shows each of them."""
    _, _, result, _ = planted
    block = result.sensitivity
    dr = row(result, "dr", "ATE")
    assert block["e_value"]["dr"]["e_value"] > block["e_value"]["dr"]["e_value_ci"] > 1
    assert block["e_value"]["dr"]["standardised_effect"] == pytest.approx(
        dr.estimate / np.std(planted[0].loc[planted[0]["empathy"] != 4, "attachment"], ddof=1))
    assert block["rosenbaum"]["significant_at_gamma_1"] and block["rosenbaum"]["gamma_max"] > 1
    ovb = block["omitted_variable"]["dr"]
    print(f"\nE-value {block['e_value']['dr']['e_value']:.2f} (CI {block['e_value']['dr']['e_value_ci']:.2f}); "
          f"Γ max {block['rosenbaum']['gamma_max']:.2f}; RV {ovb['robustness_value']:.3f} (CI {ovb['robustness_value_ci']:.3f})")
    assert ovb["theta"] == pytest.approx(dr.estimate)
    assert 0 < ovb["robustness_value_ci"] < ovb["robustness_value"]
    page = causal.render_report(result)
    assert "Rosenbaum bounds" in page and "Robustness value" in page and "E-values" in page
