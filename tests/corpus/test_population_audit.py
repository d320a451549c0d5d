"""The population filter's measurement: the committed labelled sets, the design-based estimator, and
the figures data/README.md quotes — recomputed here from the committed labels, so a change to a
filter that moves them fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from empathy_study import corpus
from empathy_study.corpus._audit import cue_count, stratum_of
from empathy_study.study import population

DATA = Path(__file__).parents[2] / "data"
AUDIT = DATA / "socioemotional_audit.jsonl"
DEV = DATA / "socioemotional_dev.jsonl"
JUDGMENTS = DATA / "socioemotional_audit_judgments.jsonl"


@pytest.fixture(scope="module")
def audit() -> pd.DataFrame:
    return population.read_audit(AUDIT)


@pytest.fixture(scope="module")
def figures(audit) -> dict:
    return population.measure_filters(audit, JUDGMENTS)


# --- the labelled sets are what their design files say ----------------------------------------------

@pytest.mark.parametrize("rows, design, pairs, positives", [(AUDIT, "socioemotional_audit.json", 1_810, 63),
                                                            (DEV, "socioemotional_dev.json", 500, 9)])
def test_labelled_set_matches_its_design(rows, design, pairs, positives):
    table = population.read_audit(rows)
    spec = json.loads((DATA / design).read_text())
    assert len(table) == pairs and table["pair_id"].is_unique and int(table["socio_emotional"].sum()) == positives
    for stratum in spec["strata"]:
        members = table[table["stratum"] == stratum["stratum"]]
        assert len(members) == stratum["sample"]
        assert (members["stratum_size"] == stratum["size"]).all()
        assert np.allclose(members["inclusion_prob"], stratum["sample"] / stratum["size"])
        # a stratum's sample is the first n pairs of its seeded random order: ranks 0..n-1
        assert sorted(members["stratum_rank"]) == list(range(stratum["sample"]))
    assert table["annotation_id"].is_unique
    # AI-made labels, said so on every row and in the design
    assert table["labelled_by"].str.contains("AI model").all() and table["labelled_by"].str.contains("not a human").all()
    assert "Not a human annotation" in spec["labelled_by"]


def test_audit_waves_are_nested(audit):
    design = json.loads((DATA / "socioemotional_audit.json").read_text())
    for stratum in design["strata"]:
        members = audit[audit["stratum"] == stratum["stratum"]]
        first = members[members["wave"] == 1]
        assert len(first) == stratum["wave1_sample"] and first["stratum_rank"].max() < stratum["wave1_sample"]


def test_audit_strata_are_recomputed_from_the_texts(audit):
    """The stratum of every labelled pair follows from its texts and its conversation's context."""
    features = audit[["pair_id", "prompt", "reply"]].assign(
        own=lambda t: t["prompt"].map(cue_count) + t["reply"].fillna("").map(cue_count))
    assert (features["own"].to_numpy() == audit["own_cue"].to_numpy()).all()
    assert (stratum_of(audit["own_cue"].to_numpy(), audit["context_cue"].to_numpy()) == audit["stratum"]).all()


# --- the figures --------------------------------------------------------------------------------------

def _check(rate: dict, estimate: float, low: float, high: float) -> None:
    assert rate["estimate"] == pytest.approx(estimate, abs=5e-4)
    assert rate["ci_low"] == pytest.approx(low, abs=5e-3) and rate["ci_high"] == pytest.approx(high, abs=5e-3)


def test_old_keyword_filter_figures(figures):
    old = figures["filters"]["keyword (old)"]
    _check(old["precision"], 0.327, 0.21, 0.47)
    _check(old["recall"], 0.278, 0.17, 0.41)
    _check(old["kept_share"], 0.0125, 0.008, 0.019)
    _check(old["prevalence"], 0.0147, 0.010, 0.021)


def test_cheap_pass_figures(figures):
    cheap = figures["filters"]["cheap pass"]
    _check(cheap["precision"], 0.218, 0.16, 0.285)
    _check(cheap["recall"], 0.608, 0.47, 0.735)
    _check(cheap["kept_share"], 0.041, 0.032, 0.051)
    assert cheap["precision"]["n"] == 182 and cheap["recall"]["n"] == 63


def test_cheap_pass_on_the_development_set():
    """The development set was labelled after the cheap pass was frozen: a second held-out check."""
    dev = population.read_audit(DEV)
    rates = population.measure_filters(dev)["filters"]["cheap pass"]
    _check(rates["recall"], 0.909, 0.54, 0.999)  # within its four strata (data/socioemotional_dev.json)
    assert int((population.filter_decisions(dev)["prefilter_kept"].to_numpy() & dev["socio_emotional"]).sum()) == 8


def test_judge_pass_figures(figures):
    """The embedded judge's pass over the audit's candidates (data/socioemotional_audit_judgments.jsonl:
    every socio-emotional candidate, and the others in corpus order until the run was stopped — a
    second phase within each label, weighted by measure_filters)."""
    passed = figures["judge_pass"]
    assert passed["judges"] == ["smollm2"] and passed["failed"] == 0
    assert passed["rubric_version"] == population.judge.load_rubric(population.RUBRIC).version
    assert (passed["candidates"], passed["judged_positive"], passed["judged_negative"]) == (182, 42, 93)
    among = figures["filters"]["judge pass (among candidates)"]
    _check(among["precision"], 0.227, 0.126, 0.359)
    _check(among["recall"], 0.419, 0.262, 0.589)
    both = figures["filters"]["two-pass filter"]
    _check(both["recall"], 0.2545, 0.148, 0.388)
    _check(both["kept_share"], 0.0165, 0.011, 0.023)
    # the small embedded judge adds nothing the cheap pass lacks: the two-pass filter loses recall
    assert both["recall"]["estimate"] < figures["filters"]["cheap pass"]["recall"]["estimate"]


def test_the_cheap_pass_keeps_a_continuing_personal_turn():
    """The failure the old filter had: a continuing turn of a personal conversation whose own first
    words are not personal is judged with its preceding exchange."""
    prev_prompt = "My dog died last week and the house feels so empty."
    prev_response = "I'm so sorry. Losing a companion like that leaves a real gap in every routine."
    prompt, response = "Yeah. I keep expecting him at the door.", "That's very common after a loss."
    reply = "talking to you makes me feel a bit better"
    assert corpus.transactional_reason(prompt, response, reply) is not None  # the old filter drops it
    assert corpus.prefilter_reason(prompt, response, reply, prev_prompt, prev_response) is None
    # the same words after a task exchange are not a candidate
    assert corpus.prefilter_reason("Yeah. Now write the unit tests.", response, "ok, continue", "Fix this SQL query",
                                   "Here is the fixed query.") is not None


# --- the estimator ------------------------------------------------------------------------------------

def test_stratified_proportion_matches_the_textbook_variance():
    rng = np.random.default_rng(1)
    sizes = {"a": 5_000, "b": 800, "c": 40_000}
    n = {"a": 200, "b": 120, "c": 150}
    p = {"a": 0.2, "b": 0.05, "c": 0.01}
    strata = np.concatenate([[h] * n[h] for h in sizes])
    y = np.concatenate([rng.random(n[h]) < p[h] for h in sizes]).astype(float)
    rate = corpus.design_ratio(y, np.ones_like(y), strata, sizes)
    total = sum(sizes.values())
    estimate = sum(sizes[h] / total * y[strata == h].mean() for h in sizes)
    variance = sum((sizes[h] / total) ** 2 * (1 - n[h] / sizes[h]) * y[strata == h].var(ddof=1) / n[h] for h in sizes)
    assert rate.estimate == pytest.approx(estimate) and rate.se == pytest.approx(np.sqrt(variance))


def test_ratio_variance_is_the_linearised_one():
    rng = np.random.default_rng(2)
    sizes = {"a": 3_000, "b": 9_000}
    strata = np.array(["a"] * 150 + ["b"] * 100)
    truth = rng.random(250) < np.where(strata == "a", 0.3, 0.05)
    kept = truth & (rng.random(250) < 0.7) | (rng.random(250) < 0.05)
    rate = corpus.design_ratio(truth & kept, truth, strata, sizes)
    weight = np.where(strata == "a", 3_000 / 150, 9_000 / 100)
    ratio = (weight * (truth & kept)).sum() / (weight * truth).sum()
    d = (truth & kept) - ratio * truth  # residuals of the ratio, per pair
    variance = sum(sizes[h] ** 2 * (1 - (strata == h).sum() / sizes[h]) * d[strata == h].var(ddof=1)
                   / (strata == h).sum() for h in sizes) / (weight * truth).sum() ** 2
    assert rate.estimate == pytest.approx(ratio) and rate.se == pytest.approx(np.sqrt(variance))


def test_one_stratum_interval_is_clopper_pearson_at_the_effective_size():
    y = np.array([1] * 12 + [0] * 88, dtype=float)
    rate = corpus.design_ratio(y, np.ones_like(y), np.array(["s"] * 100), {"s": 10**9})
    assert rate.n_effective == pytest.approx(99, rel=1e-6)  # p(1-p)/se² with s² on n-1 degrees of freedom
    low, high = proportion_confint(rate.estimate * rate.n_effective, rate.n_effective, method="beta")
    assert (rate.ci_low, rate.ci_high) == pytest.approx((low, high))


def test_recall_intervals_cover_at_their_level():
    """Monte Carlo over a known stratified population shaped like the audit: rare positives, and a
    large stratum whose sample mostly holds none. There the linearised SE misses that stratum's
    share of the variance and the 95 % intervals cover about 91 % (data/README.md says so)."""
    rng = np.random.default_rng(3)
    sizes = {"high": 4_000, "mid": 8_000, "low": 30_000}
    n = {"high": 300, "mid": 200, "low": 150}
    populations = {}
    for h, prevalence, keep in (("high", 0.1, 0.8), ("mid", 0.03, 0.5), ("low", 0.004, 0.2)):
        truth = rng.random(sizes[h]) < prevalence
        populations[h] = (truth, truth & (rng.random(sizes[h]) < keep))
    true_recall = sum(k.sum() for _, k in populations.values()) / sum(t.sum() for t, _ in populations.values())
    strata = np.concatenate([[h] * n[h] for h in sizes])
    covered = 0
    reps = 400
    for _ in range(reps):
        truth, kept = [], []
        for h in sizes:
            chosen = rng.choice(sizes[h], n[h], replace=False)
            truth.append(populations[h][0][chosen])
            kept.append(populations[h][1][chosen])
        truth, kept = np.concatenate(truth), np.concatenate(kept)
        rate = corpus.filter_rates(truth, kept, strata, sizes)["recall"]
        covered += rate.ci_low <= true_recall <= rate.ci_high
    print(f"\ncoverage of the 95 % recall intervals: {covered / reps:.3f} over {reps} samples")
    assert covered / reps >= 0.88


def test_a_second_pass_is_measured_among_the_first_pass_candidates():
    strata = np.array(["s"] * 6)
    truth = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    first = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    second = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    rates = corpus.filter_rates(truth, second & first, strata, {"s": 60}, among=first)
    assert rates["recall"].estimate == pytest.approx(0.5) and rates["precision"].estimate == pytest.approx(0.5)
    assert rates["kept_share"].estimate == pytest.approx(0.5)


def test_draws_are_nested_and_exact():
    pairs = pd.DataFrame({"pair_id": [f"p{i:03d}" for i in range(200)], "conversation_id": [f"c{i}" for i in range(200)],
                          "turn_index": 1, "prompt": ["I feel so lonely and sad" if i % 4 == 0 else "fix my code"
                                                      for i in range(200)],
                          "reply": "thanks"})
    small, design = corpus.draw_audit(pairs, {"own2": 10, "own0-context0": 20}, seed=5)
    large, _ = corpus.draw_audit(pairs, {"own2": 30, "own0-context0": 40}, seed=5)
    assert set(small["pair_id"]) <= set(large["pair_id"])
    for stratum in design["strata"]:
        if stratum["sample"]:
            assert stratum["inclusion_prob"] == stratum["sample"] / stratum["size"]
    with pytest.raises(corpus.CorpusError):
        corpus.draw_audit(pairs, {"nosuch": 3}, seed=5)


def test_a_draw_split_by_the_cheap_pass_samples_its_candidates_apart():
    """by_prefilter: every cue stratum in two cells by the cheap pass's own decision, each with its own
    exact probability; a cell's members are exactly the pairs the cheap pass keeps (or rejects)."""
    prompts = ["I feel so lonely and sad tonight", "fix my code please", "my wife and I fought, I feel awful",
               "translate this into French"]
    pairs = pd.DataFrame({"pair_id": [f"p{i:03d}" for i in range(80)], "conversation_id": [f"c{i}" for i in range(80)],
                          "turn_index": 1, "prompt": [prompts[i % 4] for i in range(80)], "response": "ok",
                          "reply": "thanks"})
    sample, design = corpus.draw_audit(pairs, {"own3+/candidate": 10, "own2/rejected": 0, "own1-context0-1/rejected": 5},
                                       seed=3, by_prefilter=True)
    kept = dict(zip(pairs["pair_id"], corpus.prefilter_candidates(pairs)))
    assert all(kept[p] == s.endswith("/candidate") for p, s in zip(sample["pair_id"], sample["stratum"]))
    sizes = {s["stratum"]: s["size"] for s in design["strata"]}
    assert sum(sizes.values()) == len(pairs) and "cheap pass" in design["stratification"]
    assert sizes["own2/candidate"] + sizes["own3+/candidate"] == sum(kept.values())
    assert sizes["own3+/candidate"] == 40 and len(sample) == 10 + 5
    assert (sample.loc[sample["stratum"] == "own3+/candidate", "inclusion_prob"] == 10 / 40).all()
    with pytest.raises(corpus.CorpusError):
        corpus.draw_audit(pairs, {"own2": 3}, seed=3, by_prefilter=True)
