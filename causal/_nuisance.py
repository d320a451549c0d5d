"""One set of cross-fitted nuisances — a propensity and one outcome model per arm — and the doubly
robust scores built from them.

Everything downstream (the DR rows, the clipping note, the trimmed estimand, the overlap plot, the
after-weighting balance, propensity matching, the bias correction of matching, the CATE forest and
the judge-error correction) reads these same out-of-fold predictions: no step refits its own.
Folds keep each user's pairs together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, SplineTransformer, StandardScaler

from . import _backend
from ._errors import CausalError

MIN_ARM_PER_FOLD = 2  # an arm needs at least this many training units in every fold


LIBRARY = ("linear", "poly", "spline", "kernel")  # the classes `auto` chooses among (boosting: slow on shared cores
# and, in the review of the estimator, +0.38 of bias on the non-linear design — it stays a class a study may name)
LEADING = 12  # leading columns (the prompt's first principal components) the poly, spline and kernel classes expand


def nuisance_models(kind: str, seed: int):
    """(propensity classifier, outcome regressor) of one model class.

    - linear: logistic regression and GCV ridge on the standardised confounders;
    - poly: the same, with the squares and products of the `LEADING` first columns added;
    - spline: the same, with cubic B-splines of each of the `LEADING` first columns (the leading prompt
      components: curvature along the main directions of meaning) added to the linear terms;
    - kernel: the same, with 300 random-feature approximations of an RBF kernel over the leading
      columns added (interactions between directions of meaning);
    - boosting: histogram gradient boosting (deep interactions, little smoothness).
    """
    if kind == "linear":
        return (
            make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2_000)),
            make_pipeline(StandardScaler(), GCVRidge(alphas=np.logspace(-2, 3, 12))),
        )
    if kind in ("spline", "kernel", "poly"):
        def expanded(final):
            expansion = {"spline": lambda: SplineTransformer(n_knots=5, degree=3, extrapolation="constant"),
                         "poly": lambda: make_pipeline(StandardScaler(), PolynomialFeatures(2, include_bias=False)),
                         "kernel": lambda: make_pipeline(StandardScaler(), Nystroem(
                             gamma=1.0 / (2 * LEADING), n_components=300, random_state=seed))}[kind]()
            features = ColumnTransformer([("leading", expansion, _leading), ("all", "passthrough", _every)])
            return make_pipeline(features, StandardScaler(), final)
        return (expanded(LogisticRegression(C=1.0, max_iter=3_000)),
                expanded(GCVRidge(alphas=np.logspace(-1, 4, 12))))
    if kind == "boosting":
        return (
            HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, max_leaf_nodes=15,
                                           min_samples_leaf=20, l2_regularization=1.0, random_state=seed),
            HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                          min_samples_leaf=20, l2_regularization=1.0, random_state=seed),
        )
    raise CausalError(f"unknown nuisance model class {kind!r}: use one of {', '.join(LIBRARY)} (or auto)")


def _leading(X) -> list[int]:
    return list(range(min(LEADING, X.shape[1])))


def _every(X) -> list[int]:
    return list(range(X.shape[1]))


@dataclass(frozen=True)
class Models:
    """The model class of each nuisance: the propensity, and the outcome in the control and treated arm."""

    propensity: str
    control: str
    treated: str

    @classmethod
    def of(cls, kind: "str | Models") -> "Models":
        return kind if isinstance(kind, Models) else cls(kind, kind, kind)

    def describe(self) -> str:
        return f"propensity {self.propensity}, control outcome {self.control}, treated outcome {self.treated}"


@dataclass(frozen=True)
class Choice:
    """The classes `choose_models` picked and the cross-fitted losses they were picked by."""

    models: Models
    losses: dict  # nuisance → class → out-of-fold loss (log loss; mean squared error)
    pairs: int  # pairs the choice was made on

    def to_json(self) -> dict:
        return {"propensity": self.models.propensity, "control_outcome": self.models.control,
                "treated_outcome": self.models.treated, "chosen_on_pairs": self.pairs, "losses": self.losses,
                "how": "each nuisance's class chosen from " + ", ".join(LIBRARY) + " under the estimate's user folds: "
                       "each arm's outcome by its out-of-fold squared error, the propensity by the imbalance its "
                       "out-of-fold inverse weights leave (linear unless another class halves it)"}


SELECTION_PAIRS = 20_000  # `choose_models` compares the classes on at most this many pairs (whole users)


def balance_basis(X: np.ndarray) -> np.ndarray:
    """What a propensity must balance: every confounder, and the squares and products of the leading ones
    (the prompt's main directions of meaning) — where a curved confounding would hide from a linear check."""
    lead = X[:, :LEADING]
    lead = (lead - lead.mean(axis=0)) / np.where(lead.std(axis=0) > 0, lead.std(axis=0), 1.0)
    rows, cols = np.triu_indices(lead.shape[1])
    return np.column_stack([X, lead[:, rows] * lead[:, cols]])


def imbalance(basis: np.ndarray, t: np.ndarray, e: np.ndarray, clip: float = 0.01) -> float:
    """Mean squared standardised mean difference of `basis` after inverse-propensity weighting by `e`."""
    e = np.clip(e, clip, 1 - clip)
    w1, w0 = t / e, (1 - t) / (1 - e)
    scale = basis.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    difference = (w1 @ basis / w1.sum() - w0 @ basis / w0.sum()) / scale
    return float(np.mean(difference**2))


BALANCE_GAIN = 0.5  # a non-linear propensity replaces the linear one only where it leaves at most half its imbalance


def choose_models(X: np.ndarray, t: np.ndarray, y: np.ndarray, fit_on: np.ndarray, folds: np.ndarray,
                  clusters: np.ndarray, seed: int, candidates: tuple[str, ...] = LIBRARY,
                  max_pairs: int = SELECTION_PAIRS) -> Choice:
    """Cross-fit every candidate class on the same user folds (on at most `max_pairs` of the `fit_on`
    pairs, whole users drawn at random) and keep, for each nuisance separately:

    - for each arm's outcome, the class with the smallest out-of-fold squared error (a discrete super
      learner);
    - for the propensity, the class whose out-of-fold propensities leave the least imbalance in the
      confounders and in the squares and products of the leading ones (`balance_basis`) — the
      propensity's job in a doubly robust estimate is to balance what the outcome model misses, and its
      log loss does not say how well it does that — staying linear unless another class leaves at most
      `BALANCE_GAIN` of the linear one's imbalance (a flexible propensity's noise inflates the inverse
      weights, which biases wherever the outcome model misfits).
    """
    rows = np.flatnonzero(fit_on)
    if len(rows) > max_pairs:
        users = np.unique(clusters[rows])
        order = np.random.default_rng([seed, 41]).permutation(users)
        sizes = np.bincount(np.searchsorted(users, clusters[rows]), minlength=len(users))
        cumulative = np.cumsum(sizes[np.searchsorted(users, order)])
        kept = set(order[cumulative <= max_pairs].tolist())
        rows = rows[np.isin(clusters[rows], list(kept))]
    Xs, ts, ys, fs = X[rows], t[rows].astype(int), y[rows], folds[rows]
    basis = balance_basis(Xs)
    losses: dict[str, dict[str, float]] = {"propensity_imbalance": {}, "control_outcome": {}, "treated_outcome": {}}
    for kind in candidates:
        fitted = crossfit(Xs, ts, ys, np.ones(len(rows), bool), fs, kind, seed)
        losses["propensity_imbalance"][kind] = imbalance(basis, ts, fitted.propensity)
        losses["control_outcome"][kind] = float(np.mean((ys - fitted.mu0)[ts == 0] ** 2))
        losses["treated_outcome"][kind] = float(np.mean((ys - fitted.mu1)[ts == 1] ** 2))
    table = losses["propensity_imbalance"]
    flexible = min(table, key=table.get)
    propensity = flexible if table[flexible] <= BALANCE_GAIN * table["linear"] else "linear"
    best = {name: min(table, key=table.get) for name, table in losses.items()}
    return Choice(Models(propensity, best["control_outcome"], best["treated_outcome"]), losses, len(rows))


class GCVRidge(RegressorMixin, BaseEstimator):
    """Ridge regression with an unpenalised intercept, α chosen among `alphas` by efficient
    leave-one-out error (generalised cross-validation), optional sample weights.

    The same estimator and criterion as scikit-learn's `RidgeCV(alphas)` (the mean over units of
    w·(leave-one-out residual)², the first best α on ties), computed from the eigendecomposition of
    the p × p weighted covariance X'WX instead of a decomposition of the n × p design: one pass of
    matrix products over the data, then O(n·p) per α. With n ≫ p (every pair a row, a few hundred
    confounders) that is several times cheaper than RidgeCV's SVD of the design, and the nuisance
    models fit it dozens of times per estimate. Checked against RidgeCV (same α, same predictions)
    in tests/causal/test_scale.py.
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0)):
        self.alphas = alphas

    def fit(self, X, y, sample_weight=None):
        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        root = np.sqrt(w)
        x_mean, y_mean = w @ X / w.sum(), w @ y / w.sum()
        Xc = (X - x_mean) * root[:, None]
        yc = (y - y_mean) * root
        eigenvalues, vectors = np.linalg.eigh(Xc.T @ Xc)
        eigenvalues = np.clip(eigenvalues, 0, None)
        Z = Xc @ vectors  # the data in the covariance's eigenbasis
        Zy, Z2 = Z.T @ yc, Z**2
        intercept_leverage = w / w.sum()  # the unpenalised intercept's share of each unit's leverage
        best = None
        for alpha in np.asarray(self.alphas, dtype=float).ravel():
            shrink = 1 / (eigenvalues + alpha)
            residual = yc - Z @ (shrink * Zy)
            leverage = intercept_leverage + Z2 @ shrink
            score = np.mean((residual / (1 - leverage)) ** 2)
            if best is None or score < best[0]:
                best = (score, alpha, shrink)
        _, self.alpha_, shrink = best
        self.coef_ = vectors @ (shrink * Zy)
        self.intercept_ = float(y_mean - x_mean @ self.coef_)
        self.best_score_ = -best[0]
        return self

    def predict(self, X):
        return np.asarray(X, dtype=float) @ self.coef_ + self.intercept_


def fold_ids(clusters: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold of every unit; a user's pairs share a fold (groups shuffled by the seed)."""
    groups = len(np.unique(clusters))
    if groups < 2 * folds:
        raise CausalError(
            f"too few users for {folds}-fold cross-fitting: {groups} distinct users/conversations "
            f"(need at least {2 * folds})"
        )
    ids = np.empty(len(clusters), dtype=int)
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(clusters)), groups=clusters)):
        ids[test] = k
    return ids


@dataclass
class Nuisances:
    """Out-of-fold predictions for every unit (also units the models were not fitted on)."""

    propensity: np.ndarray  # P(treated | X), unclipped
    mu0: np.ndarray  # E[Y | X, control]
    mu1: np.ndarray  # E[Y | X, treated]
    folds: np.ndarray

    def clipped(self, clip: float) -> np.ndarray:
        return np.clip(self.propensity, clip, 1 - clip)


def crossfit(X: np.ndarray, t: np.ndarray, y: np.ndarray, fit_on: np.ndarray, folds: np.ndarray,
             kind: "str | Models", seed: int, what: str = "") -> Nuisances:
    """Fit the propensity and both outcome models on the units `fit_on` of the other folds; predict all.

    `kind` is one model class for all three, or `Models` (a class each). `t` and `y` are read only
    where `fit_on` holds. `what` names the sample in errors. Each fold is
    one piece of work for the backend in effect (`_backend.using`): local, or a Ray task.
    """
    n = len(fit_on)
    for k in np.unique(folds):
        train = fit_on & (folds != k)
        treated, control = int(np.sum(train & (t == 1))), int(np.sum(train & (t == 0)))
        if min(treated, control) < MIN_ARM_PER_FOLD:
            raise CausalError(f"a cross-fitting fold has {treated} treated and {control} control pairs"
                              f"{' (' + what + ')' if what else ''}: too few to fit the nuisance models")
    e, mu0, mu1 = np.empty(n), np.empty(n), np.empty(n)
    ks = np.unique(folds)
    for k, (e_k, mu0_k, mu1_k) in zip(ks, _backend.run(_fit_fold, ks, X=X, t=t, y=y, fit_on=fit_on, folds=folds,
                                                            kind=kind, seed=seed)):
        test = folds == k
        e[test], mu0[test], mu1[test] = e_k, mu0_k, mu1_k
    return Nuisances(e, mu0, mu1, folds)


def _fit_fold(k: int, X: np.ndarray, t: np.ndarray, y: np.ndarray, fit_on: np.ndarray, folds: np.ndarray,
              kind: "str | Models", seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One fold of `crossfit`: models fitted on the other folds' `fit_on` units, predictions for fold k."""
    models = Models.of(kind)
    test = folds == k
    train = fit_on & ~test
    arms = [np.flatnonzero(train & (t == arm)) for arm in (0, 1)]
    rows = np.concatenate(arms)
    e = nuisance_models(models.propensity, seed)[0].fit(X[rows], t[rows]).predict_proba(X[test])[:, 1]
    mu0 = nuisance_models(models.control, seed)[1].fit(X[arms[0]], y[arms[0]]).predict(X[test])
    mu1 = nuisance_models(models.treated, seed)[1].fit(X[arms[1]], y[arms[1]]).predict(X[test])
    return e, mu0, mu1


def dr_scores(nuisances: Nuisances, t: np.ndarray, y: np.ndarray, clip: float) -> np.ndarray:
    """ψ_i = μ₁ − μ₀ + T(Y − μ₁)/e − (1 − T)(Y − μ₀)/(1 − e), propensity clipped to [clip, 1 − clip].

    Units whose t or y is undefined (NaN) get NaN.
    """
    e = nuisances.clipped(clip)
    mu0, mu1 = nuisances.mu0, nuisances.mu1
    with np.errstate(invalid="ignore"):
        return mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)
