"""Alternative estimators on the planted studies of conftest.py (real text, known effects): TMLE and
the X-learner against dr and the truth, LinearDML and CausalForestDML per point of empathy."""

from __future__ import annotations

import time

import numpy as np
import pytest

from empathy_study import causal

from .conftest import GPT4_PER_POINT, OTHER_PER_POINT, PER_POINT


def test_tmle_and_dr_both_cover_the_planted_effect(studies):
    """TMLE and DR read the same nuisances. Their difference is second order only with good overlap:
    here 5 % of the propensities exceed 0.96 and on the uniform study they differ by about 1.8 SE of
    dr (0.77 vs 0.52, truth 0.66); both intervals cover the truth, and TMLE stays on the scale."""
    for name in ("uniform", "gpt4_only"):
        _, fit, truth = studies[name]
        dr, tmle = causal.ESTIMATORS["dr"](fit)[0], causal.ESTIMATORS["tmle"](fit)[0]
        print(f"\n{name}: truth {truth:.3f}; dr {dr.estimate:.3f} ± {dr.se:.3f}; tmle {tmle.estimate:.3f} ± {tmle.se:.3f}")
        assert tmle.ci_low < truth < tmle.ci_high and dr.ci_low < truth < dr.ci_high
        assert tmle.se == pytest.approx(dr.se, rel=0.3)
        assert abs(tmle.estimate) <= 6


def test_linear_dml_recovers_a_planted_effect_per_point_that_the_raw_slope_overstates(studies):
    _, fit, truth = studies["per_point"]
    row = causal.ESTIMATORS["linear_dml"](fit)[0]
    empathy, attachment = fit.all.empathy, fit.all.outcome
    raw = np.polyfit(empathy, attachment, 1)[0]
    print(f"\nplanted {PER_POINT} per point (before clipping to 1–7); linear_dml {row.estimate:.3f} "
          f"[{row.ci_low:.3f}, {row.ci_high:.3f}]; raw slope {raw:.3f}")
    assert row.estimand == "per_point" and row.n_used == len(empathy)  # the excluded band is used too
    assert abs(row.estimate - PER_POINT) < 0.05
    assert row.ci_low < PER_POINT < row.ci_high
    assert raw - PER_POINT > 0.1  # confounded: personal prompts get more empathy and more attachment
    assert set(fit.arrays) >= {"dose_t_res", "dose_y_res"}


@pytest.fixture(scope="module")
def x_learner_uniform(studies):
    _, fit, truth = studies["uniform"]
    start = time.perf_counter()
    row = causal.ESTIMATORS["x_learner"](fit)[0]
    print(f"\nx_learner: {time.perf_counter() - start:.1f} s")
    return row


def test_x_learner_sits_above_dr_and_the_truth_with_a_tighter_interval(studies, x_learner_uniform):
    """With poor overlap (5 % of propensities above 0.96) the plug-in X-learner leans on the outcome
    models, like TMLE. Over 60 replications of this design (bench/estimator_coverage.py --design planted
    --runs true --estimators dr,x_learner --n 1500) it sat above the truth in all 60 and above dr in
    60 (int8) and 59 (fp32), with an interval 0.2-0.67 of dr's width that covered the truth in only
    0.38 and 0.40 of them (dr: 0.97). So its coverage is not asserted, and the report calls the row
    exploratory with that figure (causal/validation.json)."""
    _, fit, truth = studies["uniform"]
    x, dr = x_learner_uniform, causal.ESTIMATORS["dr"](fit)[0]
    print(f"\ntruth {truth:.3f}; dr {dr.estimate:.3f} ± {dr.se:.3f}; x_learner {x.estimate:.3f} ± {x.se:.3f}")
    assert x.estimate > truth and x.estimate > dr.estimate
    assert 0.15 * dr.se < x.se < dr.se  # a bootstrap of refits, of the size the bench measured


def test_x_learner_bootstrap_se_grows_with_fewer_users(studies, x_learner_uniform):
    """The refits resample users: half the users, roughly √2 the SE (not a constant a bug would give)."""
    _, fit, truth = studies["uniform"]
    users = np.unique(fit.data.clusters)
    half = np.isin(fit.data.clusters, users[: len(users) // 2])
    smaller = causal.Fit(fit.data.subset(half), fit.features.subset(half), fit.config, lambda step: None)
    row = causal.ESTIMATORS["x_learner"](smaller)[0]
    ratio = row.se / x_learner_uniform.se
    print(f"\nall users: SE {x_learner_uniform.se:.3f}; half: SE {row.se:.3f} (ratio {ratio:.2f})")
    # √2 ≈ 1.41 expected (measured 1.35): an SE that ignores the number of users gives 1.0 and fails,
    # as does one that resamples pairs of a few users (ratio ≫ 2)
    assert 1.1 < ratio < 2.0


def test_causal_forest_dml_recovers_a_constant_dose_and_agrees_with_linear_dml(studies):
    _, fit, truth = studies["per_point"]
    forest = causal.ESTIMATORS["causal_forest_dml"](fit)[0]
    linear = causal.ESTIMATORS["linear_dml"](fit)[0]
    print(f"\nplanted {PER_POINT} per point; causal_forest_dml {forest.estimate:.3f} [{forest.ci_low:.3f}, "
          f"{forest.ci_high:.3f}]; linear_dml {linear.estimate:.3f}")
    assert forest.estimand == "per_point" and forest.n_used == len(fit.all.empathy)
    assert forest.ci_low < PER_POINT < forest.ci_high
    assert abs(forest.estimate - linear.estimate) < 2 * linear.se


def test_causal_forest_dml_finds_the_dose_that_differs_by_model(studies):
    _, fit, truth = studies["per_point_by_model"]
    row = causal.ESTIMATORS["causal_forest_dml"](fit)[0]
    theta = fit.arrays["dose_forest_theta"]
    scored = ~(np.isnan(fit.all.empathy) | np.isnan(fit.all.outcome))
    gpt4 = (fit.all.frame["model"].to_numpy() == "gpt-4")[scored]
    planted = np.where(gpt4, GPT4_PER_POINT, OTHER_PER_POINT).mean()
    print(f"\nper point: gpt-4 {theta[gpt4].mean():.3f} (planted {GPT4_PER_POINT}), others {theta[~gpt4].mean():.3f} "
          f"(planted {OTHER_PER_POINT}); average {row.estimate:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}], "
          f"planted {planted:.3f}")
    assert theta[gpt4].mean() - theta[~gpt4].mean() > 0.2
    assert row.ci_low < planted < row.ci_high
