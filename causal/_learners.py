"""Other estimators on the same confounders, for a reader who asks whether another method agrees:
econml's X-learner (binary treatment) and econml's CausalForestDML with empathy as a continuous
treatment (a per-point effect that may vary with the effect modifiers).

Both are opt-in (`[causal] estimators`); both take the confounders, folds and nuisance model class
every other row uses, and both report SEs clustered on the user.
"""

from __future__ import annotations

import numpy as np

from ._fit import Fit, effect_row
from ._inference import cluster_shape, weighted_mean_with_se
from ._registry import estimator
from ._results import EffectRow

X_LEARNER_DRAWS = 200  # whole-fit refits on resampled users: the X-learner has no influence function to sum
FOREST_TREES = 200  # a multiple of econml's subforest size (4)


@estimator("x_learner")
def x_learner(fit: Fit) -> list[EffectRow]:
    """Künzel et al.'s X-learner (econml `XLearner`): per-arm outcome models, imputed effects regressed
    on the confounders, blended by the propensity. The ATE is the mean CATE; its SE comes from refitting
    the whole learner on users drawn with replacement (a cluster bootstrap), because the plug-in mean of
    fitted CATEs has no residual to sum."""
    from econml.metalearners import XLearner
    from sklearn.base import clone

    from ._nuisance import nuisance_models

    d, c = fit.data, fit.config
    X = fit.features.for_sample(len(d.outcome))
    classifier = nuisance_models(fit.models.propensity, c.seed)[0]
    regressor = nuisance_models(fit.models.control, c.seed)[1]
    t = d.treatment.astype(int)

    weightings = d.weightings()

    def ates(rows: np.ndarray) -> list[float]:
        """The mean CATE of `rows` under each weighting, from one fit on those rows."""
        learner = XLearner(models=clone(regressor), cate_models=clone(regressor), propensity_model=clone(classifier))
        learner.fit(d.outcome[rows], t[rows], X=X[rows])
        cate = np.ravel(learner.effect(X[rows]))
        return [float(np.average(cate, weights=None if w is None else w[rows])) for _, w in weightings]

    fit.say(f"x-learner and {X_LEARNER_DRAWS} refits on users drawn with replacement")
    points = ates(np.arange(len(t)))
    rng = np.random.default_rng(c.seed)
    members = [np.flatnonzero(d.clusters == u) for u in np.unique(d.clusters)]
    draws = (np.concatenate([members[u] for u in rng.integers(0, len(members), len(members))])
             for _ in range(X_LEARNER_DRAWS))
    boot = np.array([ates(rows) for rows in draws if 0 < t[rows].sum() < len(rows)])  # both arms in the draw
    return [effect_row("x_learner", "ATE", point, float(np.std(boot[:, i], ddof=1)), len(t), fit.shape, weighted,
                 note=f"econml XLearner ({fit.models.describe()}); SE from {len(boot)} refits on users drawn with "
                      "replacement; judge labels taken as truth")
            for i, (point, (weighted, _)) in enumerate(zip(points, weightings))]


@estimator("causal_forest_dml")
def causal_forest_dml(fit: Fit) -> list[EffectRow]:
    """Empathy as a continuous treatment with an effect per point that may differ by effect modifier
    (prompt components, model, turn, time): econml's CausalForestDML on every scored pair, the band the
    rule excludes included, cross-fitted on the user folds.

    The row is the average per-point effect, mean θ(x). Its SE sums, by user, the orthogonal moment
    θ(xᵢ) + t̃ᵢ(ỹᵢ − θ(xᵢ)t̃ᵢ)/E[t̃²] over the residuals t̃, ỹ econml keeps — the same correction
    LinearDML's row uses, with E[t̃² | x] taken as constant."""
    from econml.dml import CausalForestDML
    from sklearn.base import clone

    from ._nuisance import nuisance_models

    a, c = fit.all, fit.config
    scored = ~(np.isnan(a.empathy) | np.isnan(a.outcome))
    W = fit.features_all.for_sample(int(scored.sum()))[scored]
    modifiers = fit.features_all.modifier_matrix[scored]
    folds = fit.folds_all[scored]
    regressor = nuisance_models(fit.models.control, c.seed)[1]
    splits = [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in np.unique(folds)]
    fit.say(f"causal forest, continuous empathy ({FOREST_TREES} trees)")
    model = CausalForestDML(model_y=clone(regressor), model_t=clone(regressor), discrete_treatment=False,
                            cv=splits, n_estimators=FOREST_TREES, min_samples_leaf=20, random_state=c.seed)
    y, t = a.outcome[scored], a.empathy[scored]
    model.fit(y, t, X=modifiers, W=W, cache_values=True)
    y_res, t_res = (np.ravel(v) for v in model.residuals_[:2])
    theta = np.ravel(model.effect(modifiers))  # per point: T0 = 0 → T1 = 1
    moment = theta + t_res * (y_res - theta * t_res) / np.mean(t_res**2)
    clusters = np.unique(a.clusters[scored], return_inverse=True)[1]
    estimate, se = weighted_mean_with_se(moment, clusters, None)
    fit.arrays["dose_forest_theta"] = theta
    spread = np.quantile(theta, [0.1, 0.9])
    return [effect_row("causal_forest_dml", "per_point", estimate, se, int(scored.sum()), cluster_shape(clusters),
                 note=f"average effect of one point of empathy (continuous) on attachment; econml CausalForestDML, "
                      f"per-pair effects from {spread[0]:+.2f} to {spread[1]:+.2f} (10th–90th percentile) over the "
                      "effect modifiers; all scored pairs, the excluded band included")]
