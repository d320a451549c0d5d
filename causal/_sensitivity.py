"""How much unmeasured confounding would it take to erase the effect? Three answers, pure functions.

- **E-value** (VanderWeele & Ding 2017) of the DR ATE: the effect standardised by the outcome's SD
  becomes an approximate risk ratio RR ≈ exp(0.91 · d); the E-value RR + √(RR(RR − 1)) is the
  strength (as a risk ratio, with both treatment and outcome) an unmeasured confounder would need to
  explain the estimate — or its confidence limit nearer the null — away.
- **Rosenbaum Γ bounds** for the matched estimate: the Wilcoxon signed-rank test on matched-pair
  differences when the odds of treatment within a pair may differ by up to Γ. Γ = 1 is the plain
  signed-rank test (normal approximation with mid-ranks, zeros dropped — what
  `scipy.stats.wilcoxon(method="approx")` computes).
- **Omitted-variable bounds** (Chernozhukov, Cinelli, Newey, Sharma & Syrgkanis, "Long story short",
  2022) for the DR ATE: econml's `dr_sensitivity_values`, `sensitivity_interval` and `RV` driven by
  our own cross-fitted nuisances. The covariance of (θ, σ², ν²) is recomputed clustered on the user.
"""

from __future__ import annotations

import numpy as np
from econml.validate.sensitivity_analysis import RV, dr_sensitivity_values, sensitivity_interval
from scipy import stats

from ._inference import clustered_covariance

# ---- E-value ----------------------------------------------------------------------------------------------------


def e_value_rr(rr: float) -> float:
    """E-value of a risk ratio: RR + √(RR(RR − 1)), after flipping RR < 1 to 1/RR."""
    if not np.isfinite(rr) or rr <= 0:
        return float("nan")
    rr = max(rr, 1 / rr)
    return float(rr + np.sqrt(rr * (rr - 1)))


def e_value(estimate: float, ci: tuple[float, float], sd: float) -> dict:
    """E-values of a difference in means (and of its confidence limit nearer the null).

    d = estimate / sd; RR ≈ exp(0.91 d). The limit's E-value is 1 when the interval covers 0.
    """
    low, high = ci
    if not sd > 0:
        raise ValueError("the E-value needs an outcome that varies (its SD is 0)")
    d = estimate / sd
    limit = 0.0 if low <= 0 <= high else (low if estimate > 0 else high)
    return {"standardised_effect": float(d), "outcome_sd": float(sd),
            "risk_ratio": float(np.exp(0.91 * d)),
            "e_value": e_value_rr(float(np.exp(0.91 * d))),
            "e_value_ci": 1.0 if limit == 0 else e_value_rr(float(np.exp(0.91 * limit / sd)))}


# ---- Rosenbaum bounds -------------------------------------------------------------------------------------------


def signed_rank_bound(differences: np.ndarray, gamma: float, alternative: str = "greater") -> float:
    """Upper bound on the one-sided p-value of the Wilcoxon signed-rank test when hidden bias of size Γ
    may tilt each pair's treatment assignment (normal approximation, mid-ranks, zeros dropped).

    `alternative="greater"` tests a positive effect; "less" a negative one (the differences are negated).
    """
    d = np.asarray(differences, dtype=float)
    d = -d if alternative == "less" else d
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    ranks = stats.rankdata(np.abs(d))
    statistic = ranks[d > 0].sum()
    p_plus = gamma / (1 + gamma)
    mean = p_plus * ranks.sum()
    variance = p_plus * (1 - p_plus) * np.sum(ranks**2)
    return float(stats.norm.sf((statistic - mean) / np.sqrt(variance)))


def rosenbaum(differences: np.ndarray, level: float = 0.05, gammas: tuple[float, ...] = (1, 1.25, 1.5, 2, 3)) -> dict:
    """Worst-case p-values over a grid of Γ and the largest Γ at which the effect stays significant."""
    d = np.asarray(differences, dtype=float)
    alternative = "greater" if np.median(d[d != 0]) >= 0 else "less" if np.any(d != 0) else "greater"
    p = {f"{g:g}": signed_rank_bound(d, g, alternative) for g in gammas}
    significant = signed_rank_bound(d, 1.0, alternative) < level
    gamma_max = 1.0
    if significant:
        low, high = 1.0, 2.0
        while signed_rank_bound(d, high, alternative) < level and high < 1e6:
            low, high = high, high * 2
        for _ in range(60):
            middle = (low + high) / 2
            low, high = (middle, high) if signed_rank_bound(d, middle, alternative) < level else (low, middle)
        gamma_max = low
    return {"pairs": int(len(d)), "nonzero": int(np.count_nonzero(d)), "alternative": alternative,
            "p_upper": p, "significant_at_gamma_1": bool(significant),
            "gamma_max": float(gamma_max) if significant else None, "level": level}


# ---- omitted-variable bounds (long story short) -----------------------------------------------------------------


def ovb_params(y: np.ndarray, t: np.ndarray, mu0: np.ndarray, mu1: np.ndarray, e: np.ndarray,
               clusters: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """(θ, σ², ν², cov) of the DR ATE for econml's sensitivity functions, from our nuisances.

    econml's `dr_sensitivity_values` expects the DR-corrected outcome predictions its DRLearner keeps
    (μ_t + 1{T=t}(Y − μ_t)/p_t) and undoes that correction; we hand it exactly that. Its covariance
    treats units as independent: ours sums the same three scores by user (cluster-robust).
    """
    y, t = np.asarray(y, float), np.asarray(t, int)
    p = np.column_stack([1 - e, e])
    mu = np.column_stack([mu0, mu1])
    onehot = np.column_stack([t == 0, t == 1]).astype(float)
    corrected = mu + onehot * (y[:, None] - mu) / p
    params = dr_sensitivity_values(y, onehot[:, 1:], corrected, p)
    theta, sigma, nu = float(params.theta[0]), float(params.sigma[0]), float(params.nu[0])
    alpha = t / e - (1 - t) / (1 - e)
    scores = np.column_stack([mu1 - mu0 + alpha * (y - np.where(t == 1, mu1, mu0)) - theta,
                              (y - np.where(t == 1, mu1, mu0)) ** 2 - sigma,
                              2 * (1 / e + 1 / (1 - e)) - alpha**2 - nu]) / len(y)
    return theta, sigma, nu, clustered_covariance(scores, clusters)


def audited_ovb_params(theta: float, theta_influence: np.ndarray, y: np.ndarray, t: np.ndarray, mu0: np.ndarray,
                       mu1: np.ndarray, e: np.ndarray, weight: np.ndarray, clusters: np.ndarray
                       ) -> tuple[float, float, float, np.ndarray]:
    """(θ, σ², ν², cov) of an ATE whose gold treatment and outcome are known on a random audit sample only
    (the primary, `dr_gold_corrected`): θ and its influence as the corrected estimator gives them; σ² as
    the 1/π-weighted mean of the squared gold-label residual over the audited pairs (`weight` = 1/π
    there, 0 elsewhere); ν² as the mean over every pair of 1/e + 1/(1 − e), the Riesz representer's
    variance given the prompt. The treatment-debiased form of ν² that `ovb_params` uses needs the gold
    treatment, and over a 25 % audit it came out negative on a planted study (no bounds at all); this
    one is positive by construction and needs only the propensity. Covariance summed by user."""
    used = weight > 0
    w = weight / weight.sum()
    residual2 = np.where(used, (y - np.where(t == 1, mu1, mu0)) ** 2, 0.0)
    riesz2 = 1 / e + 1 / (1 - e)
    sigma, nu = float(np.sum(w * residual2)), float(np.mean(riesz2))
    scores = np.column_stack([theta_influence, w * (residual2 - sigma), (riesz2 - nu) / len(y)])
    return float(theta), sigma, nu, clustered_covariance(scores, clusters)


def ovb(y, t, mu0, mu1, e, clusters, alpha: float = 0.05, strengths: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1),
        grid: int = 21) -> dict:
    """Robustness values and bounds of the DR ATE under omitted confounding of strength (c_y, c_t)."""
    return ovb_bounds(*ovb_params(y, t, mu0, mu1, e, clusters), alpha=alpha, strengths=strengths, grid=grid)


def ovb_bounds(theta: float, sigma: float, nu: float, cov: np.ndarray, alpha: float = 0.05,
               strengths: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1), grid: int = 21) -> dict:
    """Robustness values and bounds from (θ, σ², ν², cov) under omitted confounding of strength (c_y, c_t).

    c_y: share of the outcome's residual variation the confounder explains; c_t: the share of the
    Riesz representer's variation (≈ of the treatment's) it explains; ρ = 1 (worst case).
    `grid` gives the contour plot's lower bound over c_y, c_t ∈ [0, 0.5].
    """
    if sigma <= 0 or nu <= 0:
        return {"theta": theta, "sigma2": sigma, "nu2": nu, "robustness_value": None, "robustness_value_ci": None,
                "bounds": [], "alpha": alpha, "contour": None,
                "reason": "the debiased estimate of the Riesz representer's (or the residual's) variance is not "
                          "positive: the propensities are too extreme for the bounds (check overlap)"}
    args = (theta, sigma, nu, cov)
    bounds = []
    for c in strengths:
        lb, ub = sensitivity_interval(*args, alpha, c, c, 1.0, interval_type="theta")
        ci_lb, ci_ub = sensitivity_interval(*args, alpha, c, c, 1.0, interval_type="ci")
        bounds.append({"c_y": c, "c_t": c, "theta_low": float(lb), "theta_high": float(ub),
                       "ci_low": float(ci_lb), "ci_high": float(ci_ub)})
    axis = np.linspace(0, 0.5, grid)
    side = 0 if theta >= 0 else 1  # the bound nearer zero
    contour = [[float(sensitivity_interval(*args, alpha, cy, ct, 1.0, interval_type="theta")[side])
                for ct in axis] for cy in axis]
    return {"theta": theta, "sigma2": sigma, "nu2": nu,
            "robustness_value": float(RV(*args, alpha, 0, interval_type="theta")),
            "robustness_value_ci": float(RV(*args, alpha, 0, interval_type="ci")),
            "bounds": bounds, "alpha": alpha,
            "contour": {"c_y": axis.tolist(), "c_t": axis.tolist(),
                        "bound": contour, "side": "lower" if side == 0 else "upper"}}
