"""Doubly robust estimation (econml) with cluster-robust intervals, and heterogeneity.

econml's DR learner cross-fits the nuisance models (folds keep a user's pairs together via
`groups`) and builds each unit's doubly robust score ψ_i. Its own intervals are not
cluster-robust, so the ATE's SE here sums ψ's influence by cluster. The final-stage model
below only records ψ — the ATE is their (weighted) mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._errors import CausalError


class _ScoreRecorder(BaseEstimator, RegressorMixin):
    """Final stage that keeps the doubly robust scores it is fitted on; predicts their mean."""

    def fit(self, X, y, sample_weight=None):
        self.scores_ = np.asarray(y, dtype=float).ravel()
        self.mean_ = float(np.average(self.scores_, weights=sample_weight))
        return self

    def predict(self, X):
        return np.full(1 if X is None else len(X), self.mean_)


def nuisance_models(kind: str, seed: int):
    """(propensity classifier, outcome regressor). Boosting captures non-linear confounding."""
    if kind == "linear":
        return (
            make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2_000)),
            make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12))),
        )
    if kind == "boosting":
        return (
            HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15,
                                           min_samples_leaf=20, l2_regularization=1.0, random_state=seed),
            HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                          min_samples_leaf=20, l2_regularization=1.0, random_state=seed),
        )
    raise CausalError(f"unknown nuisance model kind {kind!r}: use 'boosting' or 'linear'")


def folds_for(clusters: np.ndarray, folds: int) -> int:
    groups = len(np.unique(clusters))
    if groups < 2 * folds:
        raise CausalError(
            f"too few users for {folds}-fold cross-fitting: {groups} distinct users/conversations "
            f"(need at least {2 * folds})"
        )
    return folds


def crossfit_propensity(X: np.ndarray, t: np.ndarray, clusters: np.ndarray, kind: str, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold P(treated | X), folds keeping each user's pairs together."""
    model, _ = nuisance_models(kind, seed)
    propensity = np.empty(len(t))
    for train, test in GroupKFold(n_splits=folds).split(X, t, clusters):
        if len(np.unique(t[train])) < 2:
            raise CausalError("a cross-fitting fold has only one arm: too few treated or control pairs")
        propensity[test] = clone(model).fit(X[train], t[train]).predict_proba(X[test])[:, 1]
    return propensity


def crossfit_control_outcome(X: np.ndarray, t: np.ndarray, y: np.ndarray, clusters: np.ndarray, kind: str,
                             folds: int, seed: int) -> np.ndarray:
    """Out-of-fold E[Y | X, control] for every unit: the regression that bias-corrects matching."""
    _, model = nuisance_models(kind, seed)
    mu0 = np.empty(len(t))
    for train, test in GroupKFold(n_splits=folds).split(X, t, clusters):
        controls = train[t[train] == 0]
        if len(controls) < 2:
            raise CausalError("a cross-fitting fold has fewer than two control pairs")
        mu0[test] = clone(model).fit(X[controls], y[controls]).predict(X[test])
    return mu0


@dataclass
class DoublyRobust:
    scores: np.ndarray  # ψ_i: unit i's doubly robust effect score
    propensity: np.ndarray  # out-of-fold, unclipped
    clip: float
    clipped: int  # units whose propensity lay outside [clip, 1 − clip]


def doubly_robust_scores(
    X: np.ndarray, t: np.ndarray, y: np.ndarray, clusters: np.ndarray, *, kind: str, folds: int, clip: float, seed: int
) -> DoublyRobust:
    from econml.dr import DRLearner

    folds = folds_for(clusters, folds)
    propensity_model, outcome_model = nuisance_models(kind, seed)
    learner = DRLearner(
        model_propensity=propensity_model, model_regression=outcome_model, model_final=_ScoreRecorder(),
        cv=folds, min_propensity=clip, random_state=seed,
    )
    try:
        learner.fit(y, t, X=None, W=X, groups=clusters)
    except (AttributeError, ValueError) as exc:  # econml's words for a fold with one arm
        raise CausalError(f"the doubly robust learner could not be fitted: {exc}") from exc
    scores = learner.fitted_models_final[0].scores_
    propensity = crossfit_propensity(X, t, clusters, kind, folds, seed)
    clipped = int(np.sum((propensity < clip) | (propensity > 1 - clip)))
    return DoublyRobust(scores=scores, propensity=propensity, clip=clip, clipped=clipped)


@dataclass
class HeterogeneityTest:
    """Best linear predictor of ψ on the out-of-fold CATE: ψ = β₁ + β₂ (τ̂ − mean τ̂) + e.

    β₂ ≈ 1 means the CATEs track real heterogeneity; β₂ ≈ 0 means they are noise. One-sided
    p-value for H₀: β₂ ≤ 0, cluster-robust SE.
    """

    beta_mean: float
    beta_mean_se: float
    beta_het: float
    beta_het_se: float
    p_value: float


def blp_test(scores: np.ndarray, cate_oof: np.ndarray, clusters: np.ndarray) -> HeterogeneityTest:
    design = np.column_stack([np.ones(len(scores)), cate_oof - cate_oof.mean()])
    bread = np.linalg.pinv(design.T @ design)
    beta = bread @ design.T @ scores
    residual = scores - design @ beta
    meat_parts = np.vstack([np.bincount(clusters, weights=design[:, j] * residual) for j in range(2)]).T
    groups = np.count_nonzero(np.bincount(clusters))
    covariance = groups / (groups - 1) * bread @ (meat_parts.T @ meat_parts) @ bread
    se = np.sqrt(np.diag(covariance))
    p = float(stats.norm.sf(beta[1] / se[1])) if se[1] > 0 else float("nan")
    return HeterogeneityTest(float(beta[0]), float(se[0]), float(beta[1]), float(se[1]), p)


def out_of_fold_cate(X: np.ndarray, scores: np.ndarray, clusters: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """CATE predictions for each unit from a forest on ψ that never saw that unit's user."""
    cate = np.empty(len(scores))
    forest = RandomForestRegressor(n_estimators=200, min_samples_leaf=25, max_features=0.5, random_state=seed, n_jobs=-1)
    for train, test in GroupKFold(n_splits=folds).split(X, scores, clusters):
        cate[test] = clone(forest).fit(X[train], scores[train]).predict(X[test])
    return cate


@dataclass
class ForestCate:
    cate: np.ndarray
    low: np.ndarray
    high: np.ndarray


def forest_cate(modifiers: np.ndarray, controls: np.ndarray, t: np.ndarray, y: np.ndarray, clusters: np.ndarray, *,
                kind: str, folds: int, clip: float, seed: int) -> ForestCate:
    """Per-unit CATEs with 95 % intervals from econml's honest forest DR learner.

    The forest splits on the effect modifiers; the nuisance models see every confounder.
    """
    from econml.dr import ForestDRLearner

    propensity_model, outcome_model = nuisance_models(kind, seed)
    learner = ForestDRLearner(
        model_propensity=propensity_model, model_regression=outcome_model, cv=folds, min_propensity=clip,
        n_estimators=400, min_samples_leaf=20, max_samples=0.45, honest=True, random_state=seed, n_jobs=-1,
    )
    learner.fit(y, t, X=modifiers, W=controls, groups=clusters)
    low, high = learner.effect_interval(modifiers, alpha=0.05)
    return ForestCate(cate=learner.effect(modifiers), low=np.asarray(low).ravel(), high=np.asarray(high).ravel())


def group_effects(scores: np.ndarray, labels: np.ndarray, clusters: np.ndarray, weight: np.ndarray | None,
                  min_units: int = 20) -> list[dict]:
    """Average effect within each group (mean of ψ), with a cluster-robust 95 % interval."""
    from ._inference import normal_interval, weighted_mean_with_se

    rows = []
    for label in sorted(set(labels)):
        mask = labels == label
        if mask.sum() < min_units:
            rows.append({"group": str(label), "n": int(mask.sum()), "estimate": None, "ci": None,
                         "note": f"fewer than {min_units} pairs"})
            continue
        w = None if weight is None else weight[mask]
        estimate, se = weighted_mean_with_se(scores[mask], clusters[mask], w)
        rows.append({"group": str(label), "n": int(mask.sum()), "estimate": estimate, "se": se,
                     "ci": list(normal_interval(estimate, se))})
    return rows
