"""`[causal] nuisance = "auto"`: each nuisance's model class is chosen by the data under the user folds,
and the choice is recorded."""

from __future__ import annotations

import numpy as np
import pytest

from empathy_study.causal._nuisance import LIBRARY, choose_models, crossfit, fold_ids, imbalance


@pytest.fixture(scope="module")
def curved():
    """An outcome that curves along the first confounder (a U), a propensity that is linear in it."""
    rng = np.random.default_rng(3)
    n = 2_400
    clusters = np.repeat(np.arange(800), 3)
    X = rng.normal(size=(n, 20))
    t = (rng.random(n) < 1 / (1 + np.exp(-0.8 * X[:, 1]))).astype(int)
    y = 1.5 * X[:, 0] ** 2 + 0.5 * X[:, 1] + 0.7 * t + rng.normal(0, 0.5, n)
    return X, t, y, clusters, fold_ids(clusters, 5, 0)


def test_the_outcome_class_that_fits_a_curve_is_chosen_and_a_linear_propensity_stays(curved):
    X, t, y, clusters, folds = curved
    choice = choose_models(X, t, y, np.ones(len(y), bool), folds, clusters, seed=0)
    print(f"\n{choice.models.describe()}; losses {choice.losses}")
    assert choice.models.control in ("poly", "spline") and choice.models.treated in ("poly", "spline")
    assert choice.losses["control_outcome"]["linear"] > 2 * choice.losses["control_outcome"][choice.models.control]
    assert choice.models.propensity == "linear"
    assert set(choice.losses["propensity_imbalance"]) == set(LIBRARY)
    record = choice.to_json()
    assert record["control_outcome"] == choice.models.control and record["chosen_on_pairs"] == len(y)


def test_a_chosen_class_removes_the_bias_a_linear_outcome_model_leaves(curved):
    """Doubly robust with a right propensity is unbiased either way; what the better outcome class buys
    is precision: the DR scores' spread shrinks."""
    from empathy_study.causal._nuisance import Models, dr_scores

    X, t, y, clusters, folds = curved
    linear = dr_scores(crossfit(X, t, y, np.ones(len(y), bool), folds, "linear", 0), t, y, 0.01)
    chosen = choose_models(X, t, y, np.ones(len(y), bool), folds, clusters, seed=0).models
    better = dr_scores(crossfit(X, t, y, np.ones(len(y), bool), folds, chosen, 0), t, y, 0.01)
    assert isinstance(chosen, Models)
    assert abs(better.mean() - 0.7) < 3 * better.std() / np.sqrt(len(y))
    assert better.std() < 0.6 * linear.std()


def test_imbalance_is_zero_for_a_randomised_treatment_weighted_by_its_true_propensity():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(40_000, 3))
    t = (rng.random(40_000) < 0.3).astype(int)
    assert imbalance(basis, t, np.full(40_000, 0.3)) < 1e-3
    skewed = (rng.random(40_000) < 1 / (1 + np.exp(-basis[:, 0]))).astype(int)
    assert imbalance(basis, skewed, np.full(40_000, skewed.mean())) > 0.05
