"""Estimates that carry the judge's mistakes: a design-based correction on the blind audit sample.

The judges' labels exist for (almost) every pair; human (gold) labels only for the audit sample,
drawn at random with a known probability π. In the spirit of design-based supervised learning
(Egami et al. 2023) and prediction-powered inference (Angelopoulos et al. 2023), every moment is
written as a prediction from what is observed on every pair, plus the inverse-probability-weighted
gap between the gold moment and that prediction on the audited pairs:

    m̃_i = λ·ĝ_i + R_i / π_i · (m_i(gold) − λ·ĝ_i)

E[m̃] = E[m(gold)] whatever ĝ and λ are, because π is known — the judge's errors can cost precision
but never validity. The better ĝ predicts the gold moment, the narrower the interval. λ (power
tuning, PPI++: Angelopoulos, Duchi & Zrnic 2023) is chosen to minimise the estimate's variance:
λ = 0 is the audited pairs alone (inverse-probability weighted), λ = 1 trusts the prediction fully,
so a prediction that does not help costs (asymptotically) nothing. The reported row then mixes in
`dr_gold_only` (the same estimand, its nuisances fitted on the audited pairs alone) at the share that
makes its SE least (`mixed_with_gold_only`), so it is never reported wider than the labels alone.

Here the moment is the doubly robust score of the gold labels, for the stated estimand: the
average effect over pairs whose *gold* empathy is in an arm (a ratio of two corrected moments,
S·ψ and S, where S marks the gold arms). Its nuisances are cross-fitted (folds grouped by user) and
bring the unlabelled rows' information in: the gold propensity and outcome models are fitted on the
audited pairs over the judge-label nuisances (fitted on every pair) and the effect modifiers, never
over the judge's labels themselves (those are measurements of treatment and outcome, not
confounders). ĝ is a small linear model of the gold moment given the judge's labels and the gold
nuisances, fitted on the audited pairs of the other folds; where the table has each judge's own
scores, it reads them as separate predictors beside the panel aggregate (`own_view`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from . import _backend
from ._data import Audit, PanelScores
from ._errors import CausalError
from ._inference import clustered_se, ratio_with_se
from ._nuisance import Models, Nuisances, crossfit, dr_scores, nuisance_models


def pseudo_outcome(prediction: np.ndarray, gold: np.ndarray, audited: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """ĝ + R/π·(gold − ĝ): the design-corrected value of a per-unit moment (DSL's pseudo-outcome)."""
    corrected = np.asarray(prediction, dtype=float).copy()
    corrected[audited] += (gold[audited] - prediction[audited]) / probability[audited]
    return corrected


def corrected_mean(prediction: np.ndarray, gold: np.ndarray, audited: np.ndarray, probability: np.ndarray,
                   clusters: np.ndarray, weight: np.ndarray | None = None, lam: float | None = 1.0) -> tuple[float, float]:
    """Mean of a quantity known on the audited units only, helped by a prediction of it on every unit:
    the ratio of the corrected quantity to the corrected count (λ·1 + R/π·(1 − λ)), with the prediction
    weighted by `lam` (None: `tuned_lambda`; λ = 1 is the plain correction)."""
    ones = np.ones(len(prediction))
    if lam is None:
        lam = tuned_lambda(prediction, ones, gold, ones, audited, probability, clusters)
    corrected = pseudo_outcome(lam * np.asarray(prediction, dtype=float), gold, audited, probability)
    count = pseudo_outcome(lam * ones, ones, audited, probability)
    estimate, se, _ = ratio_with_se(corrected, count, clusters, weight)
    return estimate, se


def corrected_regression(X: np.ndarray, prediction: np.ndarray, gold: np.ndarray, audited: np.ndarray,
                         probability: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DSL linear regression of a gold outcome on fully observed regressors: OLS of the pseudo-outcome,
    with a cluster-robust sandwich (G/(G−1) correction). Returns (coefficients, covariance)."""
    corrected = pseudo_outcome(prediction, gold, audited, probability)
    bread = np.linalg.inv(X.T @ X)
    beta = bread @ X.T @ corrected
    scores = X * (corrected - X @ beta)[:, None]
    sums = np.vstack([np.bincount(clusters, weights=scores[:, j]) for j in range(X.shape[1])]).T
    groups = np.count_nonzero(np.bincount(clusters))
    return beta, groups / (groups - 1) * bread @ (sums.T @ sums) @ bread


def least_variance_mix(first_numerator: np.ndarray, first_denominator: np.ndarray, second_numerator: np.ndarray,
                       second_denominator: np.ndarray, clusters: np.ndarray) -> float:
    """The w in [0, 1] that makes the reported cluster-robust SE of Σ N_w / Σ D_w least, where
    N_w = (1 − w)·N₁ + w·N₂ (and D_w alike) mixes two per-unit moments of the same estimand.

    The SE is minimised as `ratio_with_se` reports it — its influence values, and the ratio's total
    Σ D_w, move with w — by a bounded scalar search, and never left above either end: the mixed row
    is never reported wider than the narrower of the two. (A closed form at a fixed θ and total,
    the textbook −cov/var, missed this minimum where the two totals differed by a few per cent.)
    Clipped to [0, 1]: outside it the row would extrapolate beyond two estimators whose meaning is plain.
    """
    def se(w: float) -> float:
        return ratio_with_se((1 - w) * first_numerator + w * second_numerator,
                             (1 - w) * first_denominator + w * second_denominator, clusters)[1]

    inside = float(minimize_scalar(se, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-4}).x)
    return min((0.0, inside, 1.0), key=se)


def tuned_lambda(prediction_numerator: np.ndarray, prediction_denominator: np.ndarray, gold_numerator: np.ndarray,
                 gold_denominator: np.ndarray, audited: np.ndarray, probability: np.ndarray,
                 clusters: np.ndarray) -> float:
    """The λ in [0, 1] that minimises the cluster-robust variance of the ratio of two corrected moments.

    The corrected moment λ·ĝ + R/π·(gold − λ·ĝ) is linear in λ: λ = 0 is the audited pairs alone
    (R/π·gold), λ = 1 the full correction, and λ mixes the two (`least_variance_mix`). Clipped to
    [0, 1] as PPI++ does: above 1 would extrapolate the prediction beyond what the labels measured,
    below 0 would bet against it.

    Unlike `ppi-python`'s λ = cov(Y, f) / ((1 + n/N)·var f) for disjoint labelled and unlabelled
    samples, the audited pairs here are part of every pair (and are drawn with a known π), so the
    prediction's own noise partly cancels: for a plain mean this is ppi's λ × (1 + n/N) (up to
    sampling error), the minimum for this design (tests/causal/test_gold.py).
    """
    zero = np.zeros(len(prediction_numerator))
    return least_variance_mix(pseudo_outcome(zero, gold_numerator, audited, probability),
                              pseudo_outcome(zero, gold_denominator, audited, probability),
                              pseudo_outcome(prediction_numerator, gold_numerator, audited, probability),
                              pseudo_outcome(prediction_denominator, gold_denominator, audited, probability), clusters)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _fit(model, X: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None):
    """Fit an estimator or a pipeline with sample weights (a pipeline routes them to its last step)."""
    model = clone(model)
    if weight is None:
        return model.fit(X, y)
    if isinstance(model, Pipeline):
        return model.fit(X, y, **{f"{model.steps[-1][0]}__sample_weight": weight})
    return model.fit(X, y, sample_weight=weight)


def _mean_one(weight: np.ndarray) -> np.ndarray:
    """Weights rescaled to mean 1: a regularised fit then sees the same penalty whatever the audit's
    rate, and a uniform audit fits exactly as unweighted."""
    return weight / weight.mean()


CONTROL, BAND, TREATED = 0, 1, 2


def judge_view(judged: np.ndarray, t: np.ndarray, empathy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """What the judges say about a pair: its arm (or the excluded band, or no score), raw empathy, attachment."""
    arm = ~np.isnan(t)
    treated = arm & (np.nan_to_num(t) == 1)
    return np.column_stack([arm & ~treated, judged & ~arm, treated, np.where(judged, empathy, 0.0),
                            np.where(judged, y, 0.0)]).astype(float)


def own_view(panel: PanelScores | None) -> np.ndarray | None:
    """What each judge of the panel says on its own, where the table has it: per judge its arm by the
    rule (or the band; all 0 where it gave no empathy score), its empathy and attachment (0 where
    missing) and whether its attachment is missing. Predictors of the gold moment beside the panel's
    view, so a judge that predicts people well can weigh more than one that does not. Where the table
    has a judge's logprob-expected scores, they enter too (0 and an indicator where missing): a
    judge's probability-weighted score can say more than the score it wrote."""
    if panel is None:
        return None
    columns = []
    for j in range(len(panel.judges)):
        t = panel.treatment[:, j]
        arm = ~np.isnan(t)
        treated = arm & (np.nan_to_num(t) == 1)
        columns += [arm & ~treated, ~np.isnan(panel.empathy[:, j]) & ~arm, treated, np.nan_to_num(panel.empathy[:, j]),
                    np.nan_to_num(panel.attachment[:, j]), np.isnan(panel.attachment[:, j])]
        for expected in (panel.expected_empathy, panel.expected_attachment):
            if expected is not None and not np.isnan(expected[:, j]).all():
                columns += [np.nan_to_num(expected[:, j]), np.isnan(expected[:, j])]
    return np.column_stack(columns).astype(float)


def nuisance_summary(judge: Nuisances, modifiers: np.ndarray, clip: float) -> np.ndarray:
    """Covariates for the gold nuisances: the judge-label nuisances (fitted on every pair over the full
    confounders, so they carry how confounders move treatment and outcome) and the effect modifiers
    (the directions along which the judge's errors may vary)."""
    return np.column_stack([_logit(judge.clipped(clip)), judge.mu0, judge.mu1, modifiers])


@dataclass
class GoldNuisances:
    """Gold-label nuisances for every unit, and the models of the gold labels given the judge's."""

    nuisances: Nuisances  # P(gold treated | X, gold in an arm), E[gold Y | X, gold arm]
    arm_probability: np.ndarray  # n × 3: P(gold control, band, treated | judge's view)
    outcome: np.ndarray  # n × 2: E[gold Y | gold arm t, judge's view], t = 0, 1


def gold_nuisances(X: np.ndarray, summary: np.ndarray, judges: np.ndarray, audit: Audit, folds: np.ndarray,
                   kind: "str | Models", seed: int, own: np.ndarray | None = None) -> GoldNuisances:
    """Cross-fitted gold nuisances that use every pair, not only the audited ones.

    On the audited pairs of the other folds, small models learn the gold arm and the gold outcome
    from the judges' labels and a summary of the covariates (the judge-label nuisances and the
    effect modifiers). Every pair of the other folds then gets soft gold labels — its actual gold
    labels where audited, those models' predictions elsewhere — and the gold propensity and per-arm
    outcome models are fitted on all of them over the full confounders X, like the judge-label
    nuisances (the propensity on each pair twice, as treated and as control, weighted by the two
    probabilities; each outcome model weighted by the probability of its arm). Fitting them on the
    few hundred audited pairs alone, or recalibrating the judge-label nuisances on them, left a
    bias of +0.1 on planted effects (bench/coverage.py's planted design, seeds 1000-1005); this
    left −0.01. The judges' labels never enter a model of X alone: they measure treatment and
    outcome, they do not confound them.

    `own` (each judge's own scores, `own_view`) enters only the arm and outcome models whose
    predictions make ĝ (`arm_probability`, `outcome`), not the soft labels the gold propensity and
    outcome models are fitted on: sharper soft labels made the gold propensities more extreme and a
    few audited pairs' DR scores huge (bench/panel_audit.py, planted design: widths up to 2.7 × the
    panel mean's), so the gold DR score stays the panel-mean correction's and only its prediction improves.
    """
    view = np.column_stack([judges, summary])
    n = len(X)
    audited = audit.audited
    arm = np.full(n, -1)
    arm[audited] = BAND
    arm[audit.in_arm == 1] = np.where(audit.treatment[audit.in_arm == 1] == 1, TREATED, CONTROL)
    for k in np.unique(folds):
        train = audited & (folds != k)
        if not {CONTROL, TREATED} <= set(np.unique(arm[train])):
            raise CausalError("a cross-fitting fold's audited pairs lack a gold treated or control pair: "
                              "too few audit labels")
        if min(np.sum(train & (arm == CONTROL)), np.sum(train & (arm == TREATED))) < 2:
            raise CausalError("a cross-fitting fold has fewer than two audited pairs in a gold arm")
    e, mu0, mu1 = np.empty(n), np.empty(n), np.empty(n)
    q, m = np.zeros((n, 3)), np.zeros((n, 2))
    ks = np.unique(folds)
    design_weight = np.where(audited, 1 / audit.probability, 0.0)
    pieces = _backend.run(_gold_fold, ks, X=X, view=view, own=own, arm=arm, gold_y=audit.outcome, audited=audited,
                          design_weight=design_weight, folds=folds, kind=kind, seed=seed)
    for k, (e_k, mu0_k, mu1_k, q_k, m_k) in zip(ks, pieces):
        test = folds == k
        e[test], mu0[test], mu1[test], q[test], m[test] = e_k, mu0_k, mu1_k, q_k, m_k
    return GoldNuisances(Nuisances(e, mu0, mu1, folds), q, m)


def _gold_fold(k: int, X: np.ndarray, view: np.ndarray, own: np.ndarray | None, arm: np.ndarray, gold_y: np.ndarray,
               audited: np.ndarray, design_weight: np.ndarray, folds: np.ndarray, kind: "str | Models",
               seed: int) -> tuple[np.ndarray, ...]:
    """One fold of `gold_nuisances`: (e, μ₀, μ₁, arm probabilities, gold outcomes) for the units of fold k."""
    models = Models.of(kind)
    propensity_model = nuisance_models(models.propensity, seed)[0]
    outcome_models_x = [nuisance_models(models.control, seed)[1], nuisance_models(models.treated, seed)[1]]
    small_classifier, small_regressor = nuisance_models("linear", seed)
    test, rest = folds == k, folds != k
    train = audited & rest
    classes = np.unique(arm[train])

    def learned(features: np.ndarray):
        """The gold arm and the gold outcome of each arm given `features`, learned on the audited pairs
        of the other folds: rows → (n × 3 arm probabilities, n × 2 outcomes)."""
        arm_model = _fit(small_classifier, features[train], arm[train], _mean_one(design_weight[train]))
        outcome_models = [_fit(small_regressor, features[train & (arm == label)], gold_y[train & (arm == label)],
                               _mean_one(design_weight[train & (arm == label)]))
                          for label in (CONTROL, TREATED)]

        def soft(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            probability = np.zeros((rows.sum(), 3))
            probability[:, classes] = arm_model.predict_proba(features[rows])
            return probability, np.column_stack([model.predict(features[rows]) for model in outcome_models])
        return soft

    soft = learned(view)
    predicted = soft if own is None else learned(np.column_stack([view, own]))
    q_test, m_test = predicted(test)
    q_rest, m_rest = soft(rest)
    known = audited[rest]  # audited pairs of the other folds: their gold labels, not a prediction
    q_rest[known] = np.eye(3)[arm[rest][known]]
    gold_known = gold_y[rest][known]
    m_rest[known] = np.column_stack([np.where(np.isnan(gold_known), m_rest[known][:, 0], gold_known),
                                     np.where(np.isnan(gold_known), m_rest[known][:, 1], gold_known)])
    X_rest = X[rest]
    both = np.concatenate([X_rest, X_rest])
    labels = np.concatenate([np.ones(len(X_rest), int), np.zeros(len(X_rest), int)])
    weights = np.concatenate([q_rest[:, TREATED], q_rest[:, CONTROL]])
    e = _fit(propensity_model, both, labels, weights + 1e-9).predict_proba(X[test])[:, 1]
    mu0 = _fit(outcome_models_x[0], X_rest, m_rest[:, 0], q_rest[:, CONTROL] + 1e-9).predict(X[test])
    mu1 = _fit(outcome_models_x[1], X_rest, m_rest[:, 1], q_rest[:, TREATED] + 1e-9).predict(X[test])
    return e, mu0, mu1, q_test, m_test


@dataclass
class GoldFit:
    """A ratio of two corrected moments, Σ w·numerator / Σ w·denominator, per unit."""

    numerator: np.ndarray
    denominator: np.ndarray
    audit_numerator: np.ndarray  # the audited units' corrections (zero elsewhere)
    audit_denominator: np.ndarray
    n_used: int  # units in the estimand's average
    gold_n: int  # audited pairs used
    explained: float  # share of the gold moment's variance on audited pairs that ĝ predicts (out of fold)
    nuisances: Nuisances | None = None  # the gold-label propensity and outcome models (the corrected estimate's)
    lam: float | None = None  # the weight on the prediction (power tuning); None: no prediction (gold only)
    gold_only_weight: float | None = None  # the share of `gold_only_effect` mixed in (`mixed_with_gold_only`)
    gold_only_problem: str | None = None  # why gold-only could not be mixed in (its share then 0)

    def influence(self, clusters: np.ndarray) -> tuple[float, np.ndarray]:
        """(estimate, per-unit influence values) of the unweighted ratio."""
        estimate, _, influence = ratio_with_se(self.numerator, self.denominator, clusters)
        return estimate, influence

    def estimate(self, clusters: np.ndarray, weight: np.ndarray | None = None) -> tuple[float, float, float]:
        """(estimate, SE, the variance carried by the audited units' corrections)."""
        estimate, se, _ = ratio_with_se(self.numerator, self.denominator, clusters, weight)
        w = np.ones(len(self.numerator)) if weight is None else weight
        audit_influence = w * (self.audit_numerator - estimate * self.audit_denominator) / np.sum(w * self.denominator)
        return estimate, se, clustered_se(audit_influence, clusters) ** 2


def corrected_effect(X: np.ndarray, summary: np.ndarray, judges: np.ndarray, audit: Audit, folds: np.ndarray,
                     kind: "str | Models", clip: float, seed: int, clusters: np.ndarray | None = None,
                     own: np.ndarray | None = None) -> GoldFit:
    """`dr_gold_corrected`: the gold-label ATE over pairs whose gold empathy is in an arm.

    The prediction ĝ of each pair's gold moment is its expectation given the judges' view (the panel's
    and, where given, each judge's own: `own`): the gold DR score averaged over the gold arm (and
    outcome) the judges' labels make likely. It enters with
    the weight λ (`tuned_lambda`, on the unweighted ratio, clustered by `clusters`: default one unit
    each) that makes the estimate's variance least; the weighted rows keep that λ.
    """
    fitted = gold_nuisances(X, summary, judges, audit, folds, kind, seed, own)
    gold = fitted.nuisances
    s_gold = audit.in_arm
    psi = np.where(s_gold == 1, dr_scores(gold, np.nan_to_num(audit.treatment), np.nan_to_num(audit.outcome), clip),
                   0.0)
    e = gold.clipped(clip)
    q, m = fitted.arm_probability, fitted.outcome
    tau = gold.mu1 - gold.mu0
    g_numerator = q[:, TREATED] * (tau + (m[:, 1] - gold.mu1) / e) + q[:, CONTROL] * (tau - (m[:, 0] - gold.mu0) / (1 - e))
    g_denominator = q[:, TREATED] + q[:, CONTROL]
    audited = audit.audited
    clusters = np.arange(len(X)) if clusters is None else clusters
    lam = tuned_lambda(g_numerator, g_denominator, psi, s_gold, audited, audit.probability, clusters)
    numerator = pseudo_outcome(lam * g_numerator, psi, audited, audit.probability)
    denominator = pseudo_outcome(lam * g_denominator, s_gold, audited, audit.probability)
    resid = psi[audited] - g_numerator[audited]
    spread = np.var(psi[audited])
    return GoldFit(numerator, denominator, np.where(audited, numerator - lam * g_numerator, 0.0),
                   np.where(audited, denominator - lam * g_denominator, 0.0), int(len(X)), int(audited.sum()),
                   float(1 - np.var(resid) / spread) if spread > 0 else float("nan"), nuisances=gold, lam=lam)


def gold_only_effect(X: np.ndarray, audit: Audit, folds: np.ndarray, kind: "str | Models", clip: float,
                     seed: int) -> GoldFit:
    """`dr_gold_only`: the same DR estimator on the audited pairs alone, with their gold labels."""
    fit_on = audit.in_arm.astype(bool)
    t, y = np.nan_to_num(audit.treatment).astype(int), np.nan_to_num(audit.outcome)
    nuisances = crossfit(X, t, y, fit_on, folds, kind, seed, what="audited pairs")
    psi = np.where(fit_on, dr_scores(nuisances, t, y, clip), 0.0)
    inverse = np.where(audit.audited, 1 / audit.probability, 0.0)
    numerator, denominator = inverse * psi, inverse * audit.in_arm
    return GoldFit(numerator, denominator, numerator, denominator, int(fit_on.sum()), int(audit.audited.sum()),
                   float("nan"))


def mixed_with_gold_only(corrected: GoldFit, gold_only: GoldFit | str, clusters: np.ndarray) -> GoldFit:
    """The corrected estimate mixed with `dr_gold_only` at the share that makes its variance least.

    λ bounds the correction's variance by its own λ = 0 end — the audited pairs' gold DR moments over
    the *corrected* estimator's gold nuisances, which are fitted on soft labels of every pair — not by
    `dr_gold_only`, whose nuisances are refitted on the audited pairs alone. The two ends differ, and
    where one or two audited pairs of extreme gold propensity carry the correction's variance the
    corrected interval came out wider than gold-only's (bench/panel_audit.py: 6 % of replications,
    up to 2.1 ×). Both estimate the same gold-label ATE, so any fixed mix of their moments does too;
    the variance-minimising share w (`least_variance_mix`) makes the mixed variance no larger than
    either's (at the estimated w, up to the ratio's θ moving with it), and asymptotically the estimated
    w costs nothing, like λ. `gold_only` is a fit, or why it could not be made (then w = 0).
    """
    if isinstance(gold_only, str):
        return replace(corrected, gold_only_weight=0.0, gold_only_problem=gold_only)
    w = least_variance_mix(corrected.numerator, corrected.denominator, gold_only.numerator, gold_only.denominator,
                           clusters)

    def mixed(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return (1 - w) * first + w * second

    return replace(corrected, numerator=mixed(corrected.numerator, gold_only.numerator),
                   denominator=mixed(corrected.denominator, gold_only.denominator),
                   audit_numerator=mixed(corrected.audit_numerator, gold_only.audit_numerator),
                   audit_denominator=mixed(corrected.audit_denominator, gold_only.audit_denominator),
                   gold_only_weight=w)


@dataclass(frozen=True)
class AuditPlan:
    """How many more audited pairs bring the corrected interval to a target width."""

    target_width: float
    current_width: float
    audited: int
    pairs: int
    needed: int | None  # audited pairs needed in total (None: unreachable within this sample)
    more: int | None
    width_if_all_audited: float
    reachable: bool


def plan_audit(variance: float, audit_variance: float, audited: int, pairs: int, target_width: float,
               z: float = 1.959963984540054) -> AuditPlan:
    """Audited pairs needed for a corrected interval of `target_width` (2·z·SE), from the variance
    measured so far: the audit part of the variance shrinks as 1/(audited pairs); the rest (how
    much the effect varies across every pair) does not.
    """
    fixed = max(variance - audit_variance, 0.0)
    target = (target_width / (2 * z)) ** 2
    full = 2 * z * np.sqrt(fixed + audit_variance * audited / pairs)
    current = 2 * z * np.sqrt(variance)
    if target >= variance:
        return AuditPlan(target_width, current, audited, pairs, audited, 0, full, True)
    if target <= fixed:
        return AuditPlan(target_width, current, audited, pairs, None, None, full, False)
    needed = int(np.ceil(audited * audit_variance / (target - fixed)))
    if needed > pairs:
        return AuditPlan(target_width, current, audited, pairs, None, None, full, False)
    return AuditPlan(target_width, current, audited, pairs, needed, needed - audited, full, True)
