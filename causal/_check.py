"""A check of the estimators on the study's own data: simulated studies shaped like it, with a known
planted effect, put through the same estimators (in the spirit of RealCause, Neal et al. 2020, which
does this for benchmark data sets).

What is kept from the study: its rows (texts, users, model, turn, time), the confounder matrix the
estimate builds from them, its design weights (1 / inclusion_prob) and, where human labels exist,
its audit design (gold_prob, and the share of expected audit labels that came back). What is fitted
to it: flexible models of treatment and outcome — scikit-learn's histogram gradient boosting,
deliberately another class than the estimate's nuisance models, with its number of boosting rounds
chosen by user-grouped cross-validation so the surfaces carry the structure the data show and not
their noise — and, from the audit, how the judges err (their arm given the human arm; their
attachment given the human one). What is simulated, per study: the treatment from the fitted
propensity, the outcome from the fitted control surface plus a planted effect (a constant plus
heterogeneity along the effect modifiers) plus noise with the user-level clustering of the real
residuals, put on the study's own score grid; then the judges' labels and a new audit drawn with the
study's own probabilities. Each row's truth is realised from the simulated potential outcomes over
the pairs it targets, as bench/estimator_coverage.py computes it.

Everything here is pure (arrays and frames in, dicts out); the caller writes the replications down.
Every simulated record is marked `simulated`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from . import _backend
from ._config import CausalConfig
from ._data import StudyArrays, TreatmentRule, prepare
from ._embeddings import Embedder
from ._errors import CausalError
from ._estimate import confounders, estimate_effects
from ._negative_control import COLUMN as NEGATIVE_CONTROL
from ._nuisance import fold_ids
from ._results import EstimateResult
from ._semisynthetic import target_pairs

WARN_BELOW = 0.85  # the primary's coverage on simulated studies below this is a warning
PLANTED_BASE = 0.5  # the planted effect's constant (attachment points)
PLANTED_SPREAD = 0.25  # SD over pairs of its heterogeneity along the effect modifiers
PROPENSITY_BOUNDS = (0.02, 0.98)  # every simulated pair can land in either arm: the truth is identified
BOOSTING = dict(learning_rate=0.1, max_leaf_nodes=8, min_samples_leaf=30, l2_regularization=1.0)
MAX_ROUNDS = 150
BOOSTED = {"prompt": 16, "prev_response": 4}  # leading components the boosting splits on (besides model, turn, time)
SURFACE_MODEL = ("a linear fit on every confounder, its penalty chosen by cross-validation (propensity: logistic "
                 "regression; outcome: ridge), corrected by boosting on the leading 16 prompt and 4 previous-turn "
                 "components, model, turn and time: "
                 f"scikit-learn HistGradientBoosting of its residuals ({', '.join(f'{k}={v}' for k, v in BOOSTING.items())}"
                 f"); boosting rounds (0 to {MAX_ROUNDS}) chosen by user-grouped cross-validation")
# estimators the replications leave out, and why (their rows are not checked)
UNCHECKED = {
    "x_learner": "its SE refits the learner 200 times: too slow to repeat per simulated study",
    "linear_dml": "its estimand (effect per point of empathy) has no truth under a binary planted effect",
    "causal_forest_dml": "its estimand (effect per point of empathy) has no truth under a binary planted effect",
}
DRAWN = "gold_drawn"  # where a study records it: 1 for the pairs drawn into the blind audit sample
TRUTH_OF = ("ATE", "ATT_matched")  # estimands whose truth the simulated potential outcomes give
CONTROL, BAND, TREATED = 0, 1, 2

# progress(step, done, total), as estimate_effects reports
Progress = Callable[[str, int, int], None]


# ---- small statistics -------------------------------------------------------------------------------------------

def wilson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if trials == 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + level / 2)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def variance_components(residuals: np.ndarray, clusters: np.ndarray) -> tuple[float, float]:
    """(between-user, within-user) variance of residuals: the one-way random-effects ANOVA estimator
    (method of moments, unbalanced clusters), the between part floored at 0. Without any user holding
    two pairs everything is within."""
    r = np.asarray(residuals, dtype=float)
    codes = np.unique(clusters, return_inverse=True)[1]
    sizes = np.bincount(codes)
    groups, n = len(sizes), len(r)
    means = np.bincount(codes, weights=r) / sizes
    within_df = n - groups
    if within_df == 0 or groups < 2:
        return 0.0, float(np.var(r, ddof=1))
    within = float(np.sum((r - means[codes]) ** 2) / within_df)
    between_mean_square = float(np.sum(sizes * (means - r.mean()) ** 2) / (groups - 1))
    n0 = (n - np.sum(sizes**2) / n) / (groups - 1)
    return max(0.0, (between_mean_square - within) / n0), within


def snap(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each value moved to the nearest point of a sorted grid (the scale's attainable scores)."""
    at = np.clip(np.searchsorted(grid, values), 1, len(grid) - 1)
    lower, upper = grid[at - 1], grid[at]
    return np.where(np.abs(values - lower) <= np.abs(upper - values), lower, upper)


def score_grid(observed: np.ndarray) -> np.ndarray:
    """The scores a simulated label may take: the integers 1..7 and every value the study's labels took
    (a panel mean of three judges takes thirds, a calibrated score other values)."""
    seen = np.asarray(observed, dtype=float)
    return np.unique(np.concatenate([np.arange(1.0, 8.0), np.round(seen[np.isfinite(seen)], 6)]))


# ---- the fitted surfaces ----------------------------------------------------------------------------------------

@dataclass
class Surface:
    """One fitted surface: predictions for every row, and how well it fits out of fold."""

    prediction: np.ndarray
    out_of_fold: np.ndarray  # on the rows it was fitted on
    rounds: int
    quality: dict


def _loss(y: np.ndarray, p: np.ndarray, classifier: bool) -> float:
    """Summed log loss of probabilities held inside PROPENSITY_BOUNDS (classifier), or squared error."""
    if classifier:
        q = np.clip(p, *PROPENSITY_BOUNDS)
        return float(-np.sum(y * np.log(q) + (1 - y) * np.log(1 - q)))
    return float(np.sum((y - p) ** 2))


def linear_index(X: np.ndarray, y: np.ndarray, folds: np.ndarray, fit_rows: np.ndarray, evaluate: list[np.ndarray],
                 classifier: bool) -> tuple[list[np.ndarray], float]:
    """A regularised linear model's prediction (a probability for a classifier) on every row of each
    matrix in `evaluate`: out of fold for the rows it is fitted on (`fit_rows`, in `folds`), from a fit
    on all of them elsewhere; and its penalty. The penalty is chosen by cross-validation (grouped folds
    for the logistic model: an unpenalised one on a hundred components gives propensities near 0 and 1
    that the data do not support)."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if classifier:
        splits = [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in np.unique(folds)]
        chooser = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 1, 11), cv=splits,
                                                                       scoring="neg_log_loss", max_iter=2_000))
        with warnings.catch_warnings():  # scikit-learn 1.8+ announces new defaults we do not depend on
            warnings.simplefilter("ignore", FutureWarning)
            penalty = float(chooser.fit(X, y)[-1].C_[0])
    else:
        penalty = float(make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13))).fit(X, y)[-1].alpha_)

    def model():
        return make_pipeline(StandardScaler(), LogisticRegression(C=penalty, max_iter=2_000) if classifier
                             else RidgeCV(alphas=[penalty]))

    def predict(fitted, M):
        return fitted.predict_proba(M)[:, 1] if classifier else fitted.predict(M)

    full = model().fit(X, y)
    out = [predict(full, M) for M in evaluate]
    where = np.flatnonzero(fit_rows)
    for k in np.unique(folds):
        fitted = model().fit(X[folds != k], y[folds != k])
        rows = where[folds == k]
        for o, M in zip(out, evaluate):
            o[rows] = predict(fitted, M[rows])
    return out, penalty


def fit_surface(X: np.ndarray, y: np.ndarray, folds: np.ndarray, X_all: np.ndarray, base: np.ndarray,
                base_all: np.ndarray, classifier: bool, seed: int) -> Surface:
    """A linear baseline (`base`: out of fold on the fitted rows; `base_all`: on every row of `X_all`)
    corrected by histogram boosting of its residuals on X, the number of rounds (0: the baseline alone)
    chosen by the grouped folds' out-of-fold loss; refitted on every row, predicted for `X_all`.

    Boosting alone splits on a few components at a time and shrinks what it finds: confounding spread
    thinly over many components (a direction in the embedding space) would come out weaker than a
    linear model finds it. Starting from the linear fit keeps it; the boosting adds what is not linear
    (where the data show it: a study a linear fit describes gets linear surfaces).
    """
    # One OpenMP thread: on shared cores boosting's thread team spins against other processes (a fit of
    # 150 rounds on 1,300 pairs took 11 s instead of 0.6 s at a load of 8 on 2 cores).
    with threadpool_limits(limits=1, user_api="openmp"):
        return _fit_surface(X, y, folds, X_all, base, base_all, classifier, seed)


def _fit_surface(X: np.ndarray, y: np.ndarray, folds: np.ndarray, X_all: np.ndarray, base: np.ndarray,
                 base_all: np.ndarray, classifier: bool, seed: int) -> Surface:
    residual = y - base
    losses = np.zeros(MAX_ROUNDS + 1)
    losses[0] = _loss(y, base, classifier)
    models = {}
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        models[k] = HistGradientBoostingRegressor(max_iter=MAX_ROUNDS, early_stopping=False, random_state=seed,
                                                  **BOOSTING).fit(X[train], residual[train])
        for i, p in enumerate(models[k].staged_predict(X[test])):
            losses[i + 1] += _loss(y[test], base[test] + p, classifier)
    rounds = int(np.argmin(losses))
    out_of_fold, prediction = base.copy(), base_all.copy()
    if rounds:
        for k, model in models.items():
            test = folds == k
            out_of_fold[test] += next(p for i, p in enumerate(model.staged_predict(X[test])) if i == rounds - 1)
        prediction += HistGradientBoostingRegressor(max_iter=rounds, early_stopping=False, random_state=seed,
                                                    **BOOSTING).fit(X, residual).predict(X_all)
    if classifier:
        prediction = np.clip(prediction, *PROPENSITY_BOUNDS)
        quality = {"auc_out_of_fold": float(roc_auc_score(y, out_of_fold)),
                   "log_loss_out_of_fold": _loss(y, out_of_fold, True) / len(y),
                   "log_loss_constant": _loss(y, np.full(len(y), np.mean(y)), True) / len(y),
                   "linear_auc_out_of_fold": float(roc_auc_score(y, base)),
                   "linear_log_loss_out_of_fold": losses[0] / len(y)}
    else:
        total = _loss(y, np.full(len(y), y.mean()), False)
        quality = {"r2_out_of_fold": 1 - _loss(y, out_of_fold, False) / total,
                   "linear_r2_out_of_fold": 1 - losses[0] / total}
    return Surface(prediction, out_of_fold, rounds, {"rounds": rounds, **quality})


# ---- the simulated world ----------------------------------------------------------------------------------------

@dataclass
class JudgeErrors:
    """How the study's judges err, as its audit shows: their empathy score given the human (gold) arm,
    and their attachment score given the human attachment and arm."""

    empathy_by_arm: dict[int, np.ndarray]  # gold arm → the judges' empathy scores of audited pairs in it
    attachment_coef: np.ndarray  # judge attachment ≈ a + b · gold attachment + c · [gold treated]
    attachment_residuals: np.ndarray
    grid: np.ndarray  # the values the judges' attachment takes
    summary: dict


@dataclass
class World:
    """Everything a simulated study is drawn from."""

    frame: pd.DataFrame  # the study's rows as the estimate reads them (texts, users, design columns)
    clusters: np.ndarray
    propensity: np.ndarray  # P(treated | X) per row, bounded
    mu0: np.ndarray  # E[attachment | X, control] per row
    effect: np.ndarray  # the planted effect of each row
    user_sd: float
    pair_noise: np.ndarray  # pair-level residuals to resample (centred within users, scaled)
    grid: np.ndarray  # the values a simulated (true) attachment takes
    empathy_by_arm: dict[int, np.ndarray]  # true arm → empathy scores to draw from
    band_share: float  # share of pairs whose true empathy is in the excluded band (0 without an audit)
    judge: JudgeErrors | None  # None: the study has no human labels, the judges' labels are the truth
    gold_prob: np.ndarray | None  # P(a pair is drawn into the audit), the study's own
    audit_probability: np.ndarray | None  # P(its human labels exist) = gold_prob × P(complete | drawn), the study's
    judge_scored: tuple[np.ndarray, np.ndarray] | None  # rows whose empathy / attachment the judges scored
    summary: dict = field(default_factory=dict)


def _judge_errors(data: StudyArrays, rule: TreatmentRule) -> JudgeErrors:
    frame, audit = data.frame, data.audit
    gold_empathy = pd.to_numeric(frame["empathy_gold"], errors="coerce").to_numpy(dtype=float)
    gold_attachment = pd.to_numeric(frame["attachment_gold"], errors="coerce").to_numpy(dtype=float)
    gold_arm = _arms(rule, gold_empathy)
    judged = audit.audited & ~np.isnan(data.empathy)
    by_arm = {arm: data.empathy[judged & (gold_arm == arm)] for arm in (CONTROL, BAND, TREATED)}
    both = audit.audited & ~np.isnan(data.outcome) & ~np.isnan(gold_attachment)
    design = np.column_stack([np.ones(both.sum()), gold_attachment[both], (gold_arm[both] == TREATED).astype(float)])
    coef, *_ = np.linalg.lstsq(design, data.outcome[both], rcond=None)
    residuals = data.outcome[both] - design @ coef
    arms = ("control", "band", "treated")
    confusion = {f"gold {arms[g]}": {f"judge {arms[j]}": int(np.sum(_arms(rule, by_arm[g]) == j)) for j in range(3)}
                 for g in range(3)}
    summary = {
        "audited_pairs_used": int(judged.sum()),
        "empathy": "the judges' empathy score of each simulated pair is drawn from the audited pairs with the same "
                   "human arm (the audit's confusion of arms, arm_confusion); independent of the covariates given that arm",
        "arm_confusion": confusion,
        "attachment": f"judge attachment = {coef[0]:.3f} + {coef[1]:.3f} × human attachment {coef[2]:+.3f} × "
                      f"[human arm treated] + a residual resampled from the audit's ({both.sum()} pairs, SD "
                      f"{np.std(residuals):.3f}), put on the judges' score grid",
    }
    return JudgeErrors(by_arm, coef, residuals, score_grid(data.outcome), summary)


def _arms(rule: TreatmentRule, empathy: np.ndarray) -> np.ndarray:
    """CONTROL, BAND or TREATED by the rule (NaN scores count as the band: never in an arm)."""
    assigned = rule.assign(pd.Series(empathy)).to_numpy()
    return np.where(assigned == 1, TREATED, np.where(assigned == 0, CONTROL, BAND))


def fit_world(pairs: pd.DataFrame, config: CausalConfig, embedder: Embedder, progress: Progress | None = None,
              judge_columns: dict | None = None) -> World:
    """Fit the surfaces, the noise and (with human labels) the judges' errors to the study's own data
    (`judge_columns`: as `prepare` takes it)."""
    report = progress or (lambda step, done, total: None)
    rule = TreatmentRule(high=config.treat_high, low=config.treat_low)
    data = prepare(pairs, rule, judge_columns)
    features = confounders(data, config, embedder, report)
    report("check: fitting the treatment and outcome surfaces", 0, 1)
    fit_rows = data.in_arm  # scored and in an arm by the judges' labels: what the estimators fit on
    X_all = features.matrix
    X, t, y = X_all[fit_rows], data.treatment[fit_rows].astype(int), data.outcome[fit_rows]
    folds = fold_ids(data.clusters[fit_rows], config.folds, config.seed)
    boosted = [features.names.index(name) for block, names in features.blocks.items()
               for name in names[:BOOSTED.get(block, len(names))]]
    (t_base,), t_penalty = linear_index(X, t, folds, fit_rows, [X_all], classifier=True)
    propensity = fit_surface(X[:, boosted], t, folds, X_all[:, boosted], t_base[fit_rows], t_base, classifier=True,
                             seed=config.seed)
    with_t, control = np.column_stack([X, t]), np.column_stack([X_all, np.zeros(len(X_all))])
    (y_base, y_base_control), y_penalty = linear_index(
        with_t, y, folds, fit_rows, [np.column_stack([X_all, np.nan_to_num(data.treatment)]), control],
        classifier=False)
    outcome = fit_surface(with_t[:, boosted + [-1]], y, folds, control[:, boosted + [-1]], y_base[fit_rows],
                          y_base_control, classifier=False, seed=config.seed)
    propensity.quality["linear_C"], outcome.quality["linear_alpha"] = t_penalty, y_penalty
    grid = score_grid(data.outcome if data.audit is None else
                      pd.to_numeric(data.frame["attachment_gold"], errors="coerce").to_numpy(dtype=float))
    mu0 = np.clip(outcome.prediction, grid[0], grid[-1])

    # noise: the out-of-fold residuals' user and pair parts
    residuals = y - outcome.out_of_fold
    fit_clusters = data.clusters[fit_rows]
    between, within = variance_components(residuals, fit_clusters)
    step = float(np.median(np.diff(grid)))
    pair_var = max(within - step**2 / 12, within / 2)  # the grid's rounding adds step²/12 back (Sheppard)
    codes = np.unique(fit_clusters, return_inverse=True)[1]
    sizes = np.bincount(codes)
    centred = residuals - (np.bincount(codes, weights=residuals) / sizes)[codes]
    several = sizes[codes] > 1
    pool = (centred[several] * np.sqrt(sizes[codes][several] / (sizes[codes][several] - 1)) if several.any()
            else residuals - residuals.mean())
    pool = pool * np.sqrt(pair_var) / max(float(np.std(pool)), 1e-9)

    # the planted effect: a constant plus heterogeneity along a seeded direction of the effect modifiers
    modifiers = features.modifier_matrix
    spread = modifiers.std(axis=0)
    usable = spread > 0
    standard = (modifiers[:, usable] - modifiers[:, usable].mean(axis=0)) / spread[usable]
    direction = np.random.default_rng([config.seed, 31]).normal(0, 1, standard.shape[1])
    index = standard @ direction if standard.shape[1] else np.zeros(len(X_all))
    index = (index - index.mean()) / index.std() if index.std() > 0 else index
    effect = PLANTED_BASE + PLANTED_SPREAD * index
    modifier_names = [n for n, keep in zip((features.names[i] for i in features.effect_modifiers), usable) if keep]

    judge, gold_prob, audit_probability, judge_scored, band_share = None, None, None, None, 0.0
    in_arm_empathy = {CONTROL: data.empathy[fit_rows & (data.treatment == 0)],
                      TREATED: data.empathy[fit_rows & (data.treatment == 1)], BAND: np.array([4.0])}
    empathy_by_arm = in_arm_empathy
    if data.audit is not None:
        audit = data.audit
        judge = _judge_errors(data, rule)
        gold_empathy = pd.to_numeric(data.frame["empathy_gold"], errors="coerce").to_numpy(dtype=float)
        gold_arm = _arms(rule, gold_empathy)
        labelled = audit.audited & ~np.isnan(gold_empathy)
        weight = 1 / audit.probability[labelled]  # the audit's estimate of the band's share in the sample
        band_share = float(np.sum(weight * (gold_arm[labelled] == BAND)) / np.sum(weight))
        empathy_by_arm = {arm: (gold_empathy[labelled & (gold_arm == arm)] if np.any(labelled & (gold_arm == arm))
                                else in_arm_empathy[arm]) for arm in (CONTROL, BAND, TREATED)}
        gold_prob = pd.to_numeric(data.frame["gold_prob"]).to_numpy(dtype=float)
        audit_probability = np.minimum(audit.probability, gold_prob)
        judge_scored = (~np.isnan(data.empathy), ~np.isnan(data.outcome))

    summary = {
        "rows": int(len(X_all)),
        "rows_fitted": int(fit_rows.sum()),
        "users": int(len(np.unique(data.clusters))),
        "covariates": int(X_all.shape[1]),
        "surfaces": {
            "model": SURFACE_MODEL,
            "fitted_on": "the pairs the judges' labels put in an arm (treatment and attachment as the estimate "
                         "reads them); folds grouped by user",
            "propensity": {**propensity.quality, "bounds": list(PROPENSITY_BOUNDS),
                           "quantiles": np.quantile(propensity.prediction, [0, .05, .5, .95, 1]).tolist()},
            "outcome": {**outcome.quality, "control_surface_sd": float(np.std(mu0)),
                        "how": "one model of attachment given the confounders and the treatment; the control "
                               "surface is its prediction at treatment 0"},
        },
        "noise": {
            "residual_sd": float(np.std(residuals)), "user_sd": float(np.sqrt(between)),
            "pair_sd": float(np.sqrt(pair_var)), "icc": float(between / (between + within)) if between + within else 0.0,
            "how": "a normal user effect with the between-user variance of the out-of-fold residuals (one-way ANOVA "
                   "estimator) plus pair-level residuals resampled from the real ones (centred within users), then "
                   "the simulated attachment is put on the study's score grid (clipped to 1–7)",
        },
        "planted": {
            "base": PLANTED_BASE, "spread_sd": PLANTED_SPREAD,
            "direction": {name: float(w) for name, w in zip(modifier_names, direction)},
            "how": "effect of a pair = base + spread × (a standardised, seeded linear combination of the effect "
                   "modifiers); pairs in the excluded band get half of it; realised through the 1–7 scale",
        },
        "design": {
            "design_weights": data.design_weight is not None,
            "audit": None if data.audit is None else {
                "gold_prob_mean": float(np.mean(pd.to_numeric(data.frame["gold_prob"]))),
                "expected_audited": float(data.audit.expected), "response_rate": float(data.audit.response_rate),
                "band_share": band_share,
                "how": "each simulated study draws a new audit: a pair is drawn with probability gold_prob and its "
                       "labels come back with the study's own probability of complete labels given drawn "
                       "(gold_drawn, where the study has it, says which pairs were drawn)",
            },
            "judge_errors": None if judge is None else judge.summary,
            "real": _shape(data.treatment[fit_rows], data.outcome[fit_rows]),
        },
    }
    # each judge's own scores are not simulated (only the panel's, from the audit): a simulated study leaves them out
    frame = data.frame.drop(columns=list(data.panel.columns) if data.panel is not None else [])
    return World(frame, data.clusters, np.clip(propensity.prediction, *PROPENSITY_BOUNDS), mu0, effect,
                 float(np.sqrt(between)), pool, grid, empathy_by_arm, band_share, judge, gold_prob, audit_probability,
                 judge_scored, summary)


def _shape(t: np.ndarray, y: np.ndarray) -> dict:
    """What a reader compares between the real and the simulated studies."""
    return {"treated_share": float(np.mean(t)), "attachment_mean": float(np.mean(y)),
            "attachment_sd": float(np.std(y)),
            "raw_difference": float(np.mean(y[t == 1]) - np.mean(y[t == 0]))}


def simulate_study(world: World, rep: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One simulated study (scored pairs as `empathy estimate` reads them) and its truth."""
    rng = np.random.default_rng([seed, 47, rep])
    n = len(world.frame)
    band = rng.random(n) < world.band_share
    treated = rng.random(n) < world.propensity
    arm = np.where(band, BAND, np.where(treated, TREATED, CONTROL))
    empathy = np.empty(n)
    for a, values in world.empathy_by_arm.items():
        at = arm == a
        empathy[at] = rng.choice(values, at.sum())
    users = rng.normal(0, world.user_sd, world.clusters.max() + 1)[world.clusters]
    latent = world.mu0 + users + rng.choice(world.pair_noise, n)
    y0, y1 = snap(latent, world.grid), snap(latent + world.effect, world.grid)
    attachment = np.where(arm == TREATED, y1, np.where(arm == BAND, snap(latent + world.effect / 2, world.grid), y0))

    scored = world.frame.drop(columns=[NEGATIVE_CONTROL], errors="ignore").copy()  # not simulated: left out
    scored["simulated"] = True
    if world.judge is None:  # no audit: the judges' labels are the simulated truth
        scored["empathy"], scored["attachment"] = empathy, attachment
    else:
        judge = world.judge
        judge_empathy = np.empty(n)
        for a, values in judge.empathy_by_arm.items():
            at = arm == a
            judge_empathy[at] = rng.choice(values, at.sum()) if len(values) else empathy[at]
        read = judge.attachment_coef @ np.vstack([np.ones(n), attachment, (arm == TREATED).astype(float)])
        judge_attachment = snap(read + rng.choice(judge.attachment_residuals, n), judge.grid)
        scored_empathy, scored_attachment = world.judge_scored
        scored["empathy"] = np.where(scored_empathy, judge_empathy, np.nan)
        scored["attachment"] = np.where(scored_attachment, judge_attachment, np.nan)
        # one uniform per pair: drawn into the audit below gold_prob, its labels complete below the smaller
        # gold_prob × P(complete | drawn) — so a pair is labelled only if drawn, and given drawn with P(complete)
        draw = rng.random(n)
        audited = draw < world.audit_probability
        scored["empathy_gold"] = np.where(audited, empathy, np.nan)
        scored["attachment_gold"] = np.where(audited, attachment, np.nan)
        if DRAWN in scored.columns:  # the study says which pairs were drawn: so does each simulated study
            scored[DRAWN] = (draw < world.gold_prob).astype(float)
    weight = (1 / pd.to_numeric(scored["inclusion_prob"]).to_numpy(dtype=float)
              if "inclusion_prob" in scored.columns and scored["inclusion_prob"].notna().all() else np.ones(n))
    truth = pd.DataFrame({"pair_id": scored["pair_id"].to_numpy(), "treated": arm == TREATED, "empathy": empathy,
                          "unit_effect": y1 - y0, "weight": weight})
    return scored, truth


# ---- replications -----------------------------------------------------------------------------------------------

def replication_config(config: CausalConfig) -> CausalConfig:
    """The study's configuration with the slow extras off: no forests, sensitivity or refuters, and
    none of the estimators in UNCHECKED."""
    return config.model_copy(update={"heterogeneity": False, "sensitivity": False, "refuters": [],
                                     "estimators": [e for e in config.estimators if e not in UNCHECKED]})


def row_truth(row, result: EstimateResult, scored: pd.DataFrame, truth: pd.DataFrame, rule: TreatmentRule) -> float | None:
    """The realised effect a row targets (None: its estimand has no truth here), design-weighted for
    weighted rows."""
    pairs = target_pairs(row, result, scored, rule, truth)
    if pairs is None:
        return None
    chosen = truth[truth["pair_id"].isin(set(pairs))]
    if chosen.empty:
        return None
    return float(np.average(chosen["unit_effect"], weights=chosen["weight"] if row.weighted else None))


def replication_records(result: EstimateResult, scored: pd.DataFrame, truth: pd.DataFrame,
                        rule: TreatmentRule) -> list[dict]:
    """One record per row that has a truth: estimate, interval, the truth it targets, covered or not."""
    out = []
    for r in result.rows:
        if r.estimand not in TRUTH_OF:
            continue
        target = row_truth(r, result, scored, truth, rule)
        estimated = bool(np.isfinite(r.estimate))
        out.append({"label": r.label, "method": r.method, "estimand": r.estimand, "weighted": r.weighted,
                    "estimate": float(r.estimate) if estimated else None,
                    "ci_low": float(r.ci_low) if estimated else None,
                    "ci_high": float(r.ci_high) if estimated else None, "truth": target,
                    "covered": bool(r.ci_low <= target <= r.ci_high) if estimated and target is not None else None,
                    "interval_valid": r.interval_valid})
    return out


def run_replication(world: World, config: CausalConfig, embedder: Embedder, rep: int) -> dict:
    """Simulate study `rep`, run the estimators on it, and return its record (`error` when the
    estimators could not run on it, e.g. an arm too small in a fold)."""
    rule = TreatmentRule(high=config.treat_high, low=config.treat_low)
    scored, truth = simulate_study(world, rep, config.seed)
    record = {"rep": rep, "simulated": True}
    in_arm = rule.assign(scored["empathy"]).notna() & scored["attachment"].notna()
    record["shape"] = _shape(rule.assign(scored["empathy"])[in_arm].to_numpy(),
                             scored["attachment"][in_arm].to_numpy(dtype=float))
    try:
        result = estimate_effects(scored, replication_config(config), embedder)
    except CausalError as exc:
        return {**record, "error": str(exc), "rows": []}
    return {**record, "error": None, "primary": result.primary,
            "rows": replication_records(result, scored, truth, rule)}


def summarise(records: list[dict], primary: str) -> list[dict]:
    """Per row over the replications: bias, coverage (Wilson 95 % CI), median width, RMSE."""
    by_label: dict[str, list[dict]] = {}
    for record in records:
        for row in record["rows"]:
            by_label.setdefault(row["label"], []).append(row)
    out = []
    for label, rows in by_label.items():
        done = [r for r in rows if r["estimate"] is not None and r["truth"] is not None]
        first = rows[0]
        entry = {"label": label, "method": first["method"], "estimand": first["estimand"],
                 "weighted": first["weighted"], "primary": label == primary, "reps": len(rows),
                 "estimated": len(done), "interval_valid": first["interval_valid"]}
        if done:
            error = np.array([r["estimate"] - r["truth"] for r in done])
            covered = sum(bool(r["covered"]) for r in done)
            entry.update(coverage=covered / len(done), coverage_ci=list(wilson(covered, len(done))),
                         bias=float(error.mean()), rmse=float(np.sqrt(np.mean(error**2))),
                         median_width=float(np.median([r["ci_high"] - r["ci_low"] for r in done])),
                         mean_truth=float(np.mean([r["truth"] for r in done])),
                         mean_estimate=float(np.mean([r["estimate"] for r in done])))
        out.append(entry)
    return out


def check_warning(rows: list[dict], primary: str, replications: int) -> str | None:
    """The line a reader must see when the primary estimate's interval does not hold on data like these."""
    found = next((r for r in rows if r["label"] == primary), None)
    if replications == 0:
        return None
    if found is None or not found["estimated"]:
        return (f"check: the primary estimate ({primary}) could not be computed on any of the {replications} "
                "simulated studies shaped like this one")
    if found["coverage"] >= WARN_BELOW:
        return None
    low, high = found["coverage_ci"]
    return (f"check: on {found['estimated']} simulated studies shaped like this one (simulated from its own data, "
            f"planted effect known), the primary estimate's 95 % interval covered the truth in "
            f"{found['coverage']:.0%} (95 % CI {low:.0%}–{high:.0%}), below {WARN_BELOW:.0%}; bias "
            f"{found['bias']:+.3f}: its interval should not be trusted on data like these")


def run_check(world: World, config: CausalConfig, embedder: Embedder, reps: int, primary: str,
              progress: Progress | None = None, done: dict[int, dict] | None = None,
              on_replication: Callable[[dict], None] | None = None) -> dict:
    """`reps` simulated studies from `world` through the estimators of `config`; the `check` block.

    `done` holds records of replications an earlier, cut run finished (they are not run again);
    `on_replication` receives each new record as soon as it exists (the caller writes it down).
    """
    if reps < 1:
        raise CausalError(f"the check needs at least one simulated study (got {reps})")
    report = progress or (lambda step, done_, total: None)
    done = {r: rec for r, rec in (done or {}).items() if r < reps}
    records = dict(done)
    step = "check: simulated studies"
    report(step, len(records), reps)
    with _backend.using(_backend.make(config.backend, config.ray_address, config.workers)):  # one pool (or Ray) for every replication
        for rep in range(reps):
            if rep in records:
                continue
            records[rep] = run_replication(world, config, embedder, rep)
            if on_replication:
                on_replication(records[rep])
            report(step, len(records), reps)
    ordered = [records[r] for r in range(reps)]
    rows = summarise(ordered, primary)
    failed = [{"rep": r["rep"], "error": r["error"]} for r in ordered if r["error"]]
    shapes = [r["shape"] for r in ordered]
    simulated_shape = {k: float(np.mean([s[k] for s in shapes])) for k in shapes[0]}
    return {
        "simulated": True,
        "what": f"{reps} simulated studies built from this study's own rows, covariates, users and sample design, "
                "with a planted effect whose truth is known; the same estimators as the estimate (slow extras "
                "off). Their coverage says how far the intervals can be trusted on data shaped like these — it "
                "is not a finding about the study.",
        **{k: v for k, v in world.summary.items()},
        "simulated_shape": simulated_shape,
        "estimators": replication_config(config).estimators,
        "not_checked": {**{e: UNCHECKED[e] for e in config.estimators if e in UNCHECKED},
                        "ATE_trimmed rows": "their trimmed population depends on estimated propensities"},
        "reps": reps, "resumed": len(done), "failed": failed, "seed": config.seed,
        "primary": primary, "rows": rows, "warn_below": WARN_BELOW,
        "warning": check_warning(rows, primary, reps - len(failed)),
    }
