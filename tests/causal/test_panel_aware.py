"""The judge-error correction reads each judge's own scores, not only the panel mean.

SIMULATED data throughout: numeric confounders stand in for the prompt embedding, a planted effect on
a 1–7 outcome, and three simulated judges of a panel — one good, one noisy, one biased (it reads
empathy two points high and squeezes attachment toward the top of the scale). The same table is fed
with and without its per-judge columns (`<construct>__<judge>`): without them the correction sees the
panel mean only, as before. Seconds, not minutes: no text is embedded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from empathy_study import causal
from empathy_study.causal._data import panel_columns, prepare
from empathy_study.causal._features import build_confounders
from empathy_study.causal._fit import Fit

TAU = 0.6
RATE = 0.25


def _score(rng, value, sd, shift=0.0):
    return np.clip(np.round(value + shift + rng.normal(0, sd, len(value))), 1, 7)


def three_judge_study(n=2_000, seed=0, judges=("good", "noisy", "biased")):
    """A SIMULATED study: (scored pairs with each judge's own columns, confounders, the realised effect
    over the pairs whose gold empathy is in an arm)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    treated = rng.random(n) < 1 / (1 + np.exp(-(0.9 * X[:, 0] - 0.5 * X[:, 1])))
    empathy = np.where(treated, rng.integers(5, 8, n), rng.integers(1, 4, n)).astype(float)
    empathy[rng.random(n) < 0.1] = 4.0  # the excluded band: outside the estimand
    latent = 3 + 0.7 * X[:, 0] + 0.4 * X[:, 2] + rng.normal(0, 1, n)
    y0, y1 = np.clip(np.round(latent), 1, 7), np.clip(np.round(latent + TAU), 1, 7)
    attachment = np.where(treated, y1, y0)
    how = {"good": lambda: (_score(rng, empathy, 0.4), _score(rng, attachment, 0.4)),
           "noisy": lambda: (_score(rng, empathy, 2.5), _score(rng, attachment, 2.5)),
           "biased": lambda: (_score(rng, empathy, 0.4, 2.0), _score(rng, 0.4 * attachment, 0.4, 3.5)),
           "useless": lambda: (rng.integers(1, 8, n).astype(float), rng.integers(1, 8, n).astype(float))}
    frame = pd.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "user_id": [f"u{i // 2}" for i in range(n)],
                          "prompt": "SIMULATED pair", "model": "simulated", "turn_index": 1, "simulated": True})
    scores = {name: how[name]() for name in judges}
    for name, (e, a) in scores.items():
        frame[f"empathy__{name}"], frame[f"attachment__{name}"] = e, a
    frame["empathy"] = np.mean([e for e, _ in scores.values()], axis=0)
    frame["attachment"] = np.mean([a for _, a in scores.values()], axis=0)
    audited = np.random.default_rng([seed, 1]).random(n) < RATE
    frame["empathy_gold"] = np.where(audited, empathy, np.nan)
    frame["attachment_gold"] = np.where(audited, attachment, np.nan)
    frame["gold_prob"] = RATE
    in_arm = empathy != 4
    return frame, X, float(np.mean((y1 - y0)[in_arm]))


def panel_mean_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[c for c in frame.columns if "__" in c])


def fitted(frame: pd.DataFrame, X: np.ndarray, judge_columns: dict | None = None) -> Fit:
    config = causal.CausalConfig(nuisance="linear", embedding_dims=X.shape[1])
    data = prepare(frame, causal.TreatmentRule(config.treat_high, config.treat_low), judge_columns)
    return Fit(data, build_confounders(data.frame, X, None, X.shape[1], 0, config.seed), config, lambda step: None)


def corrected(frame, X, judge_columns=None) -> tuple[float, float]:
    fit = fitted(frame, X, judge_columns)
    return fit.gold_corrected.estimate(fit.all.clusters)[:2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_judges_scores_narrow_the_interval_the_panel_mean_gives(seed):
    frame, X, truth = three_judge_study(seed=seed)
    fit = fitted(frame, X)
    assert fit.all.panel.judges == ("good", "noisy", "biased")
    aware, aware_se = fit.gold_corrected.estimate(fit.all.clusters)[:2]
    _, only_se = fit.gold_only.estimate(fit.all.clusters)[:2]
    mean, mean_se = corrected(panel_mean_only(frame), X)
    print(f"\nseed {seed}: truth {truth:.3f}; panel-aware {aware:.3f} ± {aware_se:.3f}; panel mean {mean:.3f} ± "
          f"{mean_se:.3f}; gold only ± {only_se:.3f}")
    assert aware_se < 0.9 * mean_se  # the good judge, weighed on its own, predicts the gold moment better
    assert aware_se <= only_se
    assert abs(aware - truth) < 3 * aware_se


def test_a_judge_that_predicts_nothing_costs_little():
    """A judge whose scores are unrelated to the people's labels beside a good one: the interval stays
    about the good judge's own, where averaging it into the panel mean widens it."""
    with_useless, X, _ = three_judge_study(seed=3, judges=("good", "useless"))
    alone, _, _ = three_judge_study(seed=3, judges=("good",))
    _, se_both = corrected(with_useless, X)
    _, se_good = corrected(alone, X)
    _, se_mean = corrected(panel_mean_only(with_useless), X)
    print(f"\ngood alone ± {se_good:.4f}; good + useless ± {se_both:.4f}; their mean ± {se_mean:.4f}")
    assert se_both < 1.1 * se_good
    assert se_mean > 1.2 * se_good


def test_a_judge_missing_on_some_pairs_still_helps():
    frame, X, _ = three_judge_study(seed=4)
    rng = np.random.default_rng(5)
    lost = rng.random(len(frame)) < 0.3  # the good judge failed on 30 % of the pairs: the panel mean is NaN there
    frame.loc[lost, ["empathy__good", "attachment__good"]] = np.nan
    frame.loc[lost, ["empathy", "attachment"]] = np.nan
    fit = fitted(frame, X)
    assert np.isnan(fit.all.panel.empathy[:, 0]).sum() == lost.sum()
    _, se = fit.gold_corrected.estimate(fit.all.clusters)[:2]
    _, se_mean = corrected(panel_mean_only(frame), X)
    assert np.isfinite(se) and se < se_mean


def test_the_recorded_columns_name_the_judges_not_the_column_names():
    frame, X, _ = three_judge_study(n=400, seed=6)
    renamed = frame.rename(columns={"empathy__good": "E good", "attachment__good": "A good"})
    record = {"empathy": {"good": "E good", "noisy": "empathy__noisy"},
              "attachment": {"good": "A good", "noisy": "attachment__noisy"}}
    data = prepare(renamed, causal.TreatmentRule(), record)
    assert data.panel.judges == ("good", "noisy")  # the record names them: biased's columns are not read
    assert np.array_equal(data.panel.empathy[:, 0], frame["empathy__good"].to_numpy(), equal_nan=True)
    # without a record (a file a user brings), the documented names are the per-judge columns
    assert panel_columns(list(frame.columns), None)["attachment"] == {
        "good": "attachment__good", "noisy": "attachment__noisy", "biased": "attachment__biased"}
    assert prepare(panel_mean_only(frame), causal.TreatmentRule()).panel is None  # optional
    with pytest.raises(causal.CausalError, match="E good"):
        prepare(frame, causal.TreatmentRule(), record)
    bad = frame.assign(**{"empathy__noisy": frame["empathy__noisy"] + 7})
    with pytest.raises(causal.CausalError, match="empathy__noisy.*outside 1..7"):
        prepare(bad, causal.TreatmentRule())


def test_the_corrected_interval_is_never_wider_than_gold_onlys():
    """A panel of one noisy judge: its prediction helps little, and on some draws the correction's own
    gold nuisances (fitted on soft labels) make it wider than `dr_gold_only`. The primary mixes the two
    at the share that makes its SE least, so it is never the wider; where gold-only is the narrower,
    some of it is mixed in (w > 0)."""
    shares = []
    for seed in range(4):
        frame, X, _ = three_judge_study(n=1_500, seed=seed, judges=("noisy",))
        fit = fitted(frame, X)
        corrected_se = fit.gold_corrected.estimate(fit.all.clusters)[1]
        only_se = fit.gold_only.estimate(fit.all.clusters)[1]
        shares.append(fit.gold_corrected.gold_only_weight)
        print(f"\nseed {seed}: corrected ± {corrected_se:.4f}, gold only ± {only_se:.4f}, share {shares[-1]:.2f}")
        assert corrected_se <= only_se * (1 + 1e-9)
    assert max(shares) > 0


def test_a_judges_expected_scores_narrow_the_interval_its_coarse_scores_leave():
    """A SIMULATED judge that writes coarse scores (empathy 2 or 6, attachment to the nearest even point)
    while its logprob-expected scores keep what it read (a good judge's reading, unrounded): read beside its scores
    (`<construct>_expected__<judge>`), they make ĝ predict the gold moment better and the interval
    narrower. Dropped from the table, the same study gives the scores-only interval."""
    widths = []
    for seed in range(3):
        frame, X, _ = three_judge_study(n=2_000, seed=seed, judges=("good",))
        rng = np.random.default_rng([seed, 9])
        # the judge's latent readings: a good judge's scores (SD 0.4 around the truth on every pair), unrounded
        latent_e = frame["empathy__good"] + rng.normal(0, 0.2, len(frame))
        latent_a = frame["attachment__good"] + rng.normal(0, 0.2, len(frame))
        coarse = frame.assign(**{"empathy__good": np.where(latent_e >= 4, 6.0, 2.0),
                                 "attachment__good": np.clip(2 * np.round(latent_a / 2), 2, 6)})
        coarse["empathy"], coarse["attachment"] = coarse["empathy__good"], coarse["attachment__good"]
        with_expected = coarse.assign(**{"empathy_expected__good": np.clip(latent_e, 1, 7),
                                         "attachment_expected__good": np.clip(latent_a, 1, 7)})
        fit = fitted(with_expected, X)
        assert fit.all.panel.expected_empathy is not None
        _, se_expected = corrected(with_expected, X)
        _, se_scores = corrected(coarse, X)
        widths.append(se_expected / se_scores)
        print(f"\nseed {seed}: SE with expected scores {se_expected:.4f}, scores only {se_scores:.4f}")
    assert np.median(widths) < 0.95


def test_expected_score_columns_are_checked_like_scores():
    frame, _, _ = three_judge_study(n=300, seed=7, judges=("good",))
    bad = frame.assign(**{"empathy_expected__good": 0.5})  # a probability, not a score
    with pytest.raises(causal.CausalError, match="empathy_expected__good.*outside 1..7"):
        prepare(bad, causal.TreatmentRule())
    alone = frame.assign(**{"attachment_expected__other": 4.0})  # a judge with no score columns of its own
    with pytest.raises(causal.CausalError, match="other without score columns"):
        prepare(alone, causal.TreatmentRule())
