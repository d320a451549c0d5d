"""What keeps `empathy estimate` inside its budget at corpus scale, checked to change nothing it should
not: the GCV ridge of the nuisance models equals scikit-learn's RidgeCV, the forest's subsample
cap takes whole users, is seeded, and is honoured and recorded by the estimate, and the memory the
estimate holds (bench/estimate_scale.py): the judge-label rows are copied once, without their texts,
and never for the primary's refits; the embedder keeps no vectors between calls."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV

from empathy_study import causal
from empathy_study.causal._data import TEXTS, StudyArrays, prepare
from empathy_study.causal._estimate import confounders, primary_problem
from empathy_study.causal._features import Confounders
from empathy_study.causal._fit import Fit
from empathy_study.causal._hte import forest_sample
from empathy_study.causal._nuisance import GCVRidge
from empathy_study.causal._refute import Alteration

from .test_backend import audited_study  # noqa: F401  (900 real pairs, a simulated 30 % audit, the fast embedder)
from .test_static_embedding import static_model  # noqa: F401


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, p", [(60, 80), (400, 30), (5_000, 120)])
def test_gcv_ridge_chooses_the_alpha_and_coefficients_of_sklearns_ridgecv(n, p, weighted):
    rng = np.random.default_rng(n + p)
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 10, p)
    X[:, 1] = 0.98 * X[:, 0] + 0.02 * X[:, 1]  # near-collinear columns, as embedding components can be
    y = X[:, :4] @ rng.normal(size=4) + 3 * rng.normal(size=n) + 2.5
    weight = rng.uniform(0.01, 1, n) if weighted else None
    alphas = np.logspace(-2, 3, 12)
    ours = GCVRidge(alphas=alphas).fit(X, y, sample_weight=weight)
    theirs = RidgeCV(alphas=alphas, gcv_mode="svd").fit(X, y, sample_weight=weight)
    assert ours.alpha_ == theirs.alpha_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, rel=1e-9)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-7, atol=1e-9)
    assert ours.intercept_ == pytest.approx(theirs.intercept_, rel=1e-7, abs=1e-9)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-8, atol=1e-8)


def test_forest_sample_takes_whole_users_up_to_the_cap():
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(500), rng.integers(1, 8, 500))
    chosen = forest_sample(clusters, 600, seed=2)
    assert 600 - 7 < len(chosen) <= 600
    users = np.unique(clusters[chosen])
    assert np.array_equal(np.sort(chosen), np.flatnonzero(np.isin(clusters, users)))  # every pair of a chosen user
    assert not np.array_equal(chosen, forest_sample(clusters, 600, seed=3))  # seeded draw
    assert np.array_equal(chosen, forest_sample(clusters, 600, seed=2))
    assert len(forest_sample(clusters, None, seed=2)) == len(clusters)
    assert len(forest_sample(clusters, 10 * len(clusters), seed=2)) == len(clusters)


def test_the_judge_label_rows_are_copied_once_without_texts_and_never_for_the_primarys_refit(audited_study,  # noqa: F811
                                                                                           monkeypatch):
    scored, embedder = audited_study
    config = causal.CausalConfig(seed=5)
    data = prepare(scored, causal.TreatmentRule(config.treat_high, config.treat_low))
    fit = Fit(data, confounders(data, config, embedder), config, lambda step: None)
    copies = []
    for cls in (StudyArrays, Confounders):
        original = cls.subset
        monkeypatch.setattr(cls, "subset", lambda self, mask, _o=original, _c=cls: copies.append(_c) or _o(self, mask))
    rows = fit.data
    assert len(rows.frame) == int(fit.arm_mask.sum()) and {"pair_id", "model"} <= set(rows.frame.columns)
    assert not set(TEXTS) & set(rows.frame.columns) and "prompt" in fit.all.frame.columns
    assert fit.data is rows and copies == [StudyArrays]  # once, on first use
    problem = primary_problem(fit)
    copies.clear()
    refitted = problem.refit(Alteration(permutation=np.random.default_rng(0).permutation(len(data.treatment))))
    assert np.isfinite(refitted.estimate) and copies == []  # the refit reads only the full study


def test_the_embedder_keeps_no_vectors_between_calls_and_reads_the_same_ones_again(audited_study):  # noqa: F811
    scored, embedder = audited_study
    texts = scored["prompt"].astype(str).tolist()[:50]
    first = embedder.embed(texts)
    assert embedder.cache._vectors is None
    embedded = embedder.embedded
    again = embedder.embed(texts)
    assert np.array_equal(first, again) and embedder.embedded == embedded  # read from disk, not embedded anew
