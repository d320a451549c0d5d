"""Selection on replying: Lee bounds against a hand-computed example and the no-selection case, and the
whole analysis on a planted monotone-selection study of real text where the always-repliers' effect,
the reply rates and the effect of empathy on replying are known."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from empathy_study import causal
from empathy_study.causal._selection import lee_bounds, selection_analysis, trimmed_mean

NAN = float("nan")


def test_trimmed_mean_takes_a_fraction_of_the_unit_at_the_cut():
    y, w = np.array([4.0, 1.0, 3.0, 2.0]), np.ones(4)
    # keep 2.5 of 4 units: the lowest are 1, 2 and half of 3
    assert trimmed_mean(y, w, 0.375, "low") == pytest.approx((1 + 2 + 0.5 * 3) / 2.5)
    assert trimmed_mean(y, w, 0.375, "high") == pytest.approx((4 + 3 + 0.5 * 2) / 2.5)
    assert trimmed_mean(y, w, 0.0, "low") == pytest.approx(2.5)


def test_lee_bounds_by_hand():
    # treated: 4 of 5 reply (q1 = 0.8) with attachment 1, 2, 3, 4; control: 1 of 2 replies (q0 = 0.5) with 3.
    # Trim share (0.8 − 0.5) / 0.8 = 0.375 of the treated repliers: 2.5 of 4 stay.
    # lower = (1 + 2 + 0.5·3) / 2.5 − 3 = −1.2; upper = (4 + 3 + 0.5·2) / 2.5 − 3 = 0.2
    t = np.array([1, 1, 1, 1, 1, 0, 0])
    s = np.array([1, 1, 1, 1, 0, 1, 0])
    y = np.array([1, 2, 3, 4, NAN, 3, NAN])
    bounds = lee_bounds(y, t, s)
    assert (bounds.lower, bounds.upper) == (pytest.approx(-1.2), pytest.approx(0.2))
    assert bounds.trimmed_arm == "treated" and bounds.trim_share == pytest.approx(0.375)
    assert (bounds.reply_treated, bounds.reply_control) == (pytest.approx(0.8), pytest.approx(0.5))
    # the same data with the arms swapped: the control arm is trimmed and the signs turn
    mirrored = lee_bounds(y, 1 - t, s)
    assert (mirrored.lower, mirrored.upper) == (pytest.approx(-0.2), pytest.approx(1.2))
    assert mirrored.trimmed_arm == "control"
    # weights count like repeated units: the control replier weighing 2 makes q0 = 2/3
    weighted = lee_bounds(y, t, s, np.array([1, 1, 1, 1, 1, 2, 1.0]))
    share = (0.8 - 2 / 3) / 0.8  # 1/6 of 4 units trimmed: 10/3 stay — 1, 2, 3 and a third of 4 (or of 1)
    assert weighted.trim_share == pytest.approx(share)
    assert weighted.lower == pytest.approx((1 + 2 + 3 + 4 / 3) / (10 / 3) - 3)  # −0.8
    assert weighted.upper == pytest.approx((4 + 3 + 2 + 1 / 3) / (10 / 3) - 3)  # −0.2


def test_without_differential_selection_the_bounds_collapse_to_the_difference():
    rng = np.random.default_rng(3)
    t = np.repeat([1, 0], 500)
    s = np.concatenate([rng.permutation(np.r_[np.ones(300), np.zeros(200)]),
                        rng.permutation(np.r_[np.ones(300), np.zeros(200)])]).astype(int)
    y = np.where(s == 1, rng.integers(1, 8, 1000).astype(float), NAN)
    bounds = lee_bounds(y, t, s)
    difference = np.nanmean(y[t == 1]) - np.nanmean(y[t == 0])
    assert bounds.trimmed_arm is None and bounds.trim_share == 0
    assert bounds.lower == pytest.approx(difference) and bounds.upper == pytest.approx(difference)


def test_an_arm_without_repliers_is_refused():
    with pytest.raises(causal.CausalError, match="repliers in both arms"):
        lee_bounds(np.array([2.0, NAN, NAN]), np.array([1, 0, 0]), np.array([1, 0, 0]))


def test_design_weights_from_inclusion_probabilities_or_the_funnels_counts(tmp_path):
    import json

    from empathy_study.causal._selection import design_weights
    from empathy_study.study.selection import population_sizes

    frame = pd.DataFrame({"inclusion_prob": [0.5, 0.25, 1.0]})
    assert design_weights(frame, None, "t").tolist() == [2.0, 4.0, 1.0]
    bare = frame.drop(columns=["inclusion_prob"])
    assert design_weights(bare, 30, "t").tolist() == [10.0, 10.0, 10.0]  # a simple random sample of 30
    with pytest.raises(causal.CausalError, match="population has only 2"):
        design_weights(bare, 2, "t")
    with pytest.raises(causal.CausalError, match="must lie in"):
        design_weights(frame.assign(inclusion_prob=[0.5, 0.0, 1.0]), None, "t")
    funnel = {"stages": [{"name": "deduplicated", "rows": 900, "unit": "turn_pairs"}],
              "terminal_pairs": {"cut": 500, "kept": 400, "rejected": {}}}
    (tmp_path / "funnel.json").write_text(json.dumps(funnel))
    assert population_sizes(tmp_path / "funnel.json") == {"turn_pairs": 900, "terminal_pairs": 400}
    funnel["stages"].append({"name": "judge_pass", "rows": 300, "unit": "turn_pairs"})  # the sample's frame then
    (tmp_path / "funnel.json").write_text(json.dumps(funnel))
    assert population_sizes(tmp_path / "funnel.json")["turn_pairs"] == 300


# ---- a planted monotone-selection study on real text ------------------------------------------------------------

P_REPLIED, P_TERMINAL = 0.8, 0.4  # the two samples' inclusion probabilities: drawn at different rates


@pytest.fixture(scope="module")
def planted(sharegpt_all_pairs):
    """1,500 real pairs (seed 0: test_refute's texts, so a full run embeds them once) with the default planted effect. Replying: personal prompts reply more often without
    empathy (S0); empathy makes 60 % of the others reply too (S1 ≥ S0: monotone); those marginal repliers
    write replies 1.5 points less attached than their Y(1). The replied ones form the turn-pair table, the
    rest the terminal table; each table is sampled at its own rate."""
    start = time.perf_counter()
    embedder = causal.Embedder()
    scored, truth = causal.semisynthetic_study(sharegpt_all_pairs, 1_500, seed=0, embedder=embedder)
    rng = np.random.default_rng(5)
    z = truth["personal_score"].to_numpy()
    treated = truth["treated"].to_numpy()
    effect = truth["unit_effect"].to_numpy()
    y0 = scored["attachment"].to_numpy() - treated * effect
    y1 = y0 + effect
    s0 = rng.random(len(z)) < 1 / (1 + np.exp(-(0.2 + 0.8 * z)))
    s1 = s0 | (rng.random(len(z)) < 0.6)
    marginal = s1 & ~s0
    y1_observed = np.where(marginal, np.clip(y1 - 1.5, 1, 7), y1)
    replied = np.where(treated, s1, s0)
    attachment = np.where(treated, y1_observed, y0)
    in_arm = causal.TreatmentRule().assign(scored["empathy"]).notna().to_numpy()
    table = scored.assign(attachment=attachment)
    replied_sample, terminal_sample = np.zeros(len(z), bool), np.zeros(len(z), bool)
    for chosen, rows, rate in ((replied_sample, np.flatnonzero(replied), P_REPLIED),
                               (terminal_sample, np.flatnonzero(~replied), P_TERMINAL)):
        chosen[rng.choice(rows, size=round(rate * len(rows)), replace=False)] = True  # inclusion prob ≈ rate
    pairs = table[replied_sample].assign(inclusion_prob=replied_sample.sum() / replied.sum()).reset_index(drop=True)
    terminal = table[terminal_sample].drop(columns=["reply", "attachment"]).assign(
        inclusion_prob=terminal_sample.sum() / (~replied).sum())
    config = causal.CausalConfig(prev_embedding_dims=0, bootstrap=500)
    out = selection_analysis(pairs, terminal.reset_index(drop=True), config, embedder)
    print(f"\nfixture: {time.perf_counter() - start:.1f} s")
    return {
        "out": out, "pairs": pairs, "terminal": terminal, "config": config, "embedder": embedder,
        "always_effect": float(np.mean((y1 - y0)[s0 & in_arm])),
        "reply_effect": float(np.mean((s1.astype(float) - s0)[in_arm])),
        "reply_rate": float(np.mean(replied)),
        "q1": float(np.mean(s1[in_arm])), "q0": float(np.mean(s0[in_arm])),
    }


def test_lee_bounds_contain_the_always_repliers_effect(planted):
    lee, truth = planted["out"]["lee_bounds"], planted["always_effect"]
    print(f"\nalways-repliers' effect {truth:.3f}; Lee bounds [{lee['lower']:.3f}, {lee['upper']:.3f}], "
          f"95 % CI [{lee['ci_low']:.3f}, {lee['ci_high']:.3f}]; trimmed {lee['trimmed_arm']} by "
          f"{lee['trim_share']:.3f}; repliers' difference {lee['replier_difference']:.3f}")
    assert lee["trimmed_arm"] == "treated"  # empathy raises replying
    assert lee["ci_low"] <= truth <= lee["ci_high"]
    assert lee["lower"] < lee["upper"]
    # the bounds are informative: narrower than the 1–7 scale's ±6 by far
    assert lee["upper"] - lee["lower"] < 2.0


def test_reply_rates_use_each_tables_inclusion_probability(planted):
    out = planted["out"]
    rate = out["counts"]["reply_rate_population"]
    unweighted = len(planted["pairs"]) / (len(planted["pairs"]) + len(planted["terminal"]))
    print(f"\nreply rate: true {planted['reply_rate']:.3f}, weighted {rate:.3f}, unweighted {unweighted:.3f}; "
          f"by arm true {planted['q1']:.3f} / {planted['q0']:.3f}, estimated {out['reply_rate']['treated']:.3f} / "
          f"{out['reply_rate']['control']:.3f}")
    assert abs(rate - planted["reply_rate"]) < 0.03
    assert abs(unweighted - planted["reply_rate"]) > 0.08  # what ignoring the two rates would report
    assert abs(out["reply_rate"]["treated"] - planted["q1"]) < 0.06
    assert abs(out["reply_rate"]["control"] - planted["q0"]) < 0.06


def test_the_effect_of_empathy_on_replying_is_recovered(planted):
    reply, truth = planted["out"]["reply_effect"], planted["reply_effect"]
    print(f"\neffect on replying: true {truth:.3f}, DR {reply['estimate']:.3f} "
          f"[{reply['ci_low']:.3f}, {reply['ci_high']:.3f}]")
    assert reply["ci_low"] <= truth <= reply["ci_high"]
    assert reply["ci_low"] > 0  # the planted effect is found


def test_a_sample_without_inclusion_probabilities_needs_the_population_sizes(planted):
    terminal = planted["terminal"].drop(columns=["inclusion_prob"]).reset_index(drop=True)
    with pytest.raises(causal.CausalError, match="population size is unknown"):
        selection_analysis(planted["pairs"], terminal, planted["config"], planted["embedder"])


def test_a_pair_in_both_tables_is_refused(planted):
    pairs = planted["pairs"]
    terminal = pd.concat([planted["terminal"], pairs.drop(columns=["reply", "attachment"]).head(1)],
                         ignore_index=True)
    with pytest.raises(causal.CausalError, match="both a turn-pair and a terminal pair"):
        selection_analysis(pairs, terminal, planted["config"], planted["embedder"])


def test_estimate_states_the_estimand_and_reports_selection(planted, tmp_path):
    """Through the stage function: the terminal file beside the scored pairs is found, its block lands in
    estimates.json and the report; without it the estimand is still stated as conditional on a reply."""
    import json

    from empathy_study import study

    planted["pairs"].to_parquet(tmp_path / "scored_pairs.parquet")
    planted["terminal"].reset_index(drop=True).to_parquet(tmp_path / "scored_terminal_pairs.parquet")
    config = planted["config"].model_copy(update={"estimators": ["dr"], "refuters": [], "heterogeneity": False,
                                                  "sensitivity": False, "bootstrap": 200})
    result = study.estimate(tmp_path / "scored_pairs.parquet", tmp_path / "out", config)
    payload = json.loads((tmp_path / "out" / "estimates.json").read_text())
    block = payload["selection"]
    assert block["available"] and block["estimand"].startswith("Every estimate of attachment is conditional on a reply")
    assert block["reply_effect"]["estimate"] == pytest.approx(planted["out"]["reply_effect"]["estimate"])
    assert block["lee_bounds"]["lower"] == pytest.approx(planted["out"]["lee_bounds"]["lower"])
    assert "terminal_sha256" in payload["provenance"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Selection on replying" in page and "always-repliers" in page and "monotonicity" in page
    (tmp_path / "scored_terminal_pairs.parquet").unlink()
    study.estimate(tmp_path / "scored_pairs.parquet", tmp_path / "out", config)
    block = json.loads((tmp_path / "out" / "estimates.json").read_text())["selection"]
    assert not block["available"] and "sample-terminal" in block["reason"] and "conditional on a reply" in block["estimand"]
    assert result.selection["counts"]["terminal_pairs"] == len(planted["terminal"])
