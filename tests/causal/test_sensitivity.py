"""Sensitivity to unmeasured confounding: E-values against VanderWeele & Ding's worked numbers,
Rosenbaum bounds against scipy's signed-rank test, omitted-variable bounds against econml's own
sensitivity values (the end-to-end run on real text is in test_planted_effect.py)."""

from __future__ import annotations

import numpy as np
import pytest
from econml.validate.sensitivity_analysis import dr_sensitivity_values, sensitivity_interval
from scipy import stats

from empathy_study.causal import _sensitivity as sensitivity


def test_e_value_reproduces_the_published_worked_example():
    """VanderWeele & Ding (2017): RR 3.9 (95 % CI 1.8–8.7) has E-value 7.26, its lower limit 3.0."""
    assert sensitivity.e_value_rr(3.9) == pytest.approx(3.9 + np.sqrt(3.9 * 2.9))
    assert sensitivity.e_value_rr(3.9) == pytest.approx(7.26, abs=0.005)
    assert sensitivity.e_value_rr(1.8) == pytest.approx(3.0, abs=1e-12)
    assert sensitivity.e_value_rr(1 / 3.9) == pytest.approx(sensitivity.e_value_rr(3.9))  # protective: 1/RR


def test_e_value_of_a_mean_difference_uses_the_standardised_effect():
    # d = 1.0 / 2.0 = 0.5 → RR = exp(0.455) = 1.5762 → E = RR + √(RR (RR − 1)) = 2.529 (worked by hand).
    out = sensitivity.e_value(1.0, (0.6, 1.4), sd=2.0)
    assert out["standardised_effect"] == 0.5
    assert out["e_value"] == pytest.approx(2.529, abs=5e-4)
    # the lower limit 0.6 → d 0.3 → RR exp(0.273) = 1.3139 → 1.3139 + √(1.3139 · 0.3139) = 1.956
    assert out["e_value_ci"] == pytest.approx(1.956, abs=5e-4)
    assert sensitivity.e_value(-1.0, (-1.4, -0.6), sd=2.0)["e_value"] == pytest.approx(out["e_value"])
    assert sensitivity.e_value(0.3, (-0.1, 0.7), sd=2.0)["e_value_ci"] == 1.0


@pytest.mark.parametrize("shift", [0.3, -0.4])
def test_gamma_one_is_scipys_signed_rank_test(shift):
    """Integer differences with ties and zeros, as attachment differences have."""
    d = np.round(np.random.default_rng(3).normal(shift, 1.5, 180))
    assert (d == 0).any() and len(np.unique(np.abs(d))) < len(d)
    for alternative in ("greater", "less"):
        expected = stats.wilcoxon(d, method="approx", alternative=alternative).pvalue
        assert sensitivity.signed_rank_bound(d, 1.0, alternative) == pytest.approx(expected, rel=1e-10)


def test_rosenbaum_bound_grows_with_gamma_and_gamma_max_is_where_it_crosses_the_level():
    d = np.random.default_rng(4).normal(0.5, 1.0, 150)
    out = sensitivity.rosenbaum(d)
    p = list(out["p_upper"].values())
    assert p == sorted(p) and p[0] < 0.05 < p[-1]
    assert out["alternative"] == "greater" and out["gamma_max"] > 1
    assert sensitivity.signed_rank_bound(d, out["gamma_max"] * 0.99) < 0.05 < \
        sensitivity.signed_rank_bound(d, out["gamma_max"] * 1.01)
    assert sensitivity.rosenbaum(np.random.default_rng(5).normal(0, 1, 150))["gamma_max"] is None  # no effect


def _confounded(n: int, seed: int):
    """x confounds a treatment of propensity e = logistic(x) and an outcome y = x + 0.5 t + noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    e = 1 / (1 + np.exp(-x))
    t = (rng.random(n) < e).astype(int)
    return x, e, t, x + 0.5 * t + rng.normal(size=n)


def test_ovb_parameters_are_econmls_with_a_clustered_covariance():
    n = 400
    x, e, t, y = _confounded(n, seed=6)
    theta, sigma, nu, cov = sensitivity.ovb_params(y, t, x, x + 0.5, e, np.arange(n))
    p = np.column_stack([1 - e, e])
    corrected = np.column_stack([x, x + 0.5]) + np.column_stack([t == 0, t == 1]) * (y[:, None] - np.column_stack([x, x + 0.5])) / p
    reference = dr_sensitivity_values(y, t[:, None].astype(float), corrected, p)
    psi = x + 0.5 - x + t * (y - x - 0.5) / e - (1 - t) * (y - x) / (1 - e)
    assert theta == pytest.approx(psi.mean()) == pytest.approx(reference.theta[0])
    assert (sigma, nu) == pytest.approx((reference.sigma[0], reference.nu[0]))
    assert cov == pytest.approx(reference.cov[0] * n / (n - 1))  # one unit per cluster: only the G/(G−1) factor
    # Pairs of units sharing a user: the clustered variance of θ differs from the independent one.
    assert sensitivity.ovb_params(y, t, x, x + 0.5, e, np.arange(n) // 2)[3][0, 0] != pytest.approx(cov[0, 0])


def test_the_primarys_parameters_agree_with_econmls_when_every_pair_is_audited():
    """The audited form: σ² is the same weighted mean as econml's when every pair is audited (π = 1); ν²
    (mean of 1/e + 1/(1 − e) over every pair) estimates what econml's debiased ν² estimates."""
    n = 20_000
    x, e, t, y = _confounded(n, seed=7)
    psi = 0.5 + t * (y - x - 0.5) / e - (1 - t) * (y - x) / (1 - e)
    full = sensitivity.ovb_params(y, t, x, x + 0.5, e, np.arange(n))
    audited = sensitivity.audited_ovb_params(psi.mean(), (psi - psi.mean()) / n, y, t, x, x + 0.5, e,
                                             np.ones(n), np.arange(n))
    assert audited[0] == pytest.approx(full[0]) and audited[1] == pytest.approx(full[1])
    assert audited[2] == pytest.approx(full[2], rel=0.05)  # two estimators of E[α²]


def _bound(fit, c_y, c_t):
    """The bias bound around the point estimate (no sampling error: interval_type "theta")."""
    return sensitivity_interval(fit["theta"], fit["sigma2"], fit["nu2"], np.zeros((3, 3)), 0.05, c_y, c_t, 1.0,
                                interval_type="theta")


@pytest.mark.parametrize("effect", [0.0, 0.5])
def test_robustness_value_is_zero_without_an_effect_and_where_the_bound_reaches_zero_with_one(effect):
    rng = np.random.default_rng(7)
    n = 2_000
    x = rng.normal(size=n)
    e = 1 / (1 + np.exp(-x))
    t = (rng.random(n) < e).astype(int)
    y = x + effect * t + rng.normal(size=n)
    fit = sensitivity.ovb(y, t, x, x + effect, e, np.arange(n) // 4)
    if effect == 0:
        assert fit["robustness_value_ci"] == 0  # its interval already covers 0
        return
    rv, rv_point = fit["robustness_value_ci"], fit["robustness_value"]
    assert 0 < rv < rv_point < 1
    assert _bound(fit, rv, rv)[0] > 0  # at the interval's RV the point bound is still above 0 …
    assert _bound(fit, rv_point, rv_point)[0] == pytest.approx(0, abs=1e-4)  # … at the point RV it is 0
    low = {b["c_y"]: b["ci_low"] for b in fit["bounds"]}
    assert list(low.values()) == sorted(low.values(), reverse=True)  # stronger confounding, wider bounds
    assert np.array(fit["contour"]["bound"])[0, 0] == pytest.approx(fit["theta"])


def test_a_left_out_confounder_is_strong_enough_to_explain_the_effect_away_and_the_rv_says_so():
    """No effect at all; a confounder u drives treatment and attachment and is left out of the nuisances.
    The short estimate is clearly positive. At u's true strengths — c_y and c_t computed from the long
    and short nuisances, known here (Chernozhukov et al. 2022, eq. for C_Y², C_D²) — the bias bound
    reaches back to the truth, so the robustness value is below u's strength: the left-out confounder
    is 'strong enough', as the RV warns."""
    from scipy.special import expit

    rng = np.random.default_rng(11)
    n = 40_000
    x, u = rng.normal(size=n), rng.normal(size=n)
    e_long = expit(0.5 * x + 0.8 * u)
    t = (rng.random(n) < e_long).astype(int)
    y = x + u + rng.normal(size=n)  # no effect of t
    g_long = x + u

    def poly(v):
        return np.column_stack([np.ones_like(v), v, v**2, v**3])

    mu = {}
    for arm in (0, 1):  # the short outcome models: E[y | x, t], u averaged over, by arm
        coef = np.linalg.lstsq(poly(x[t == arm]), y[t == arm], rcond=None)[0]
        mu[arm] = poly(x) @ coef
    from sklearn.linear_model import LogisticRegression
    e_short = LogisticRegression().fit(poly(x)[:, 1:], t).predict_proba(poly(x)[:, 1:])[:, 1]

    fit = sensitivity.ovb(y, t, mu[0], mu[1], e_short, np.arange(n))
    g_short = np.where(t == 1, mu[1], mu[0])
    c_y = np.mean((g_long - g_short) ** 2) / np.mean((y - g_short) ** 2)
    alpha_long2 = 1 / e_long + 1 / (1 - e_long)  # E[α² | x, u] of the ATE's Riesz representer
    alpha_short2 = 1 / e_short + 1 / (1 - e_short)
    c_t = 1 - alpha_short2.mean() / alpha_long2.mean()
    low, _ = _bound(fit, c_y, c_t)
    print(f"\nshort estimate {fit['theta']:+.3f} (truth 0); u's strengths c_y {c_y:.3f}, c_t {c_t:.3f}; "
          f"bound at them {low:+.3f}; RV {fit['robustness_value']:.3f} (CI {fit['robustness_value_ci']:.3f})")
    assert fit["theta"] > 0.3 and fit["robustness_value_ci"] > 0  # confidently, wrongly positive
    assert low <= 0  # u at its own strength explains the estimate away …
    assert fit["robustness_value"] < max(c_y, c_t)  # … and the RV says a confounder that strong would
