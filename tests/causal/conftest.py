"""Planted studies on real text shared by the refuter and alternative-estimator tests (embedding
1,500 prompts once per session)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from empathy_study import causal
from empathy_study.causal._embeddings import REFERENCE
from empathy_study.causal._estimate import refute_problem
from empathy_study.causal._features import build_confounders
from empathy_study.causal._fit import Fit

PER_POINT = 0.3
GPT4_PER_POINT, OTHER_PER_POINT = 0.5, 0.1


def _fit(scored, embedder, **config):
    """The Fit `estimate_effects` builds, without running its estimators."""
    from empathy_study.causal._data import prepare

    config = causal.CausalConfig(**config)
    data = prepare(scored, causal.TreatmentRule(config.treat_high, config.treat_low))
    features = build_confounders(data.frame, embedder.embed(data.frame["prompt"].astype(str).tolist()), None,
                                 config.embedding_dims, 0, config.seed)
    return Fit(data, features, config, lambda step: None)


@pytest.fixture(scope="session")
def studies(sharegpt_all_pairs):
    """1,500 real pairs (seed 0: the same texts as test_planted_effect's, so embeddings are shared) with
    the default planted effect, and with an effect only in gpt-4's pairs: (refuter problem, Fit, true ATE)."""
    start = time.perf_counter()
    reference = causal.Embedder(embedding=REFERENCE)  # plants, as the coverage bench does; the default estimates
    embedder = causal.Embedder()
    out = {}
    for name, planted in (("uniform", causal.PlantedEffect()),
                          ("gpt4_only", causal.PlantedEffect(base=0.0, gpt4_extra=1.2, personal_slope=0.0))):
        scored, truth = causal.semisynthetic_study(sharegpt_all_pairs, 1_500, seed=0, embedder=reference,
                                                   planted=planted)
        fit = _fit(scored, embedder)
        out[name] = refute_problem(fit), fit, causal.true_effects(truth, fit.data.frame["pair_id"])
        if name == "uniform":  # the same pairs, attachment now moved 0.3 per point of empathy (continuous dose)
            y0 = scored["attachment"] - truth["treated"] * truth["unit_effect"]
            dosed = scored.assign(attachment=np.clip(y0 + PER_POINT * (scored["empathy"] - 4), 1, 7))
            out["per_point"] = None, _fit(dosed, embedder), None
            # … and a dose that differs by model: 0.5 per point in gpt-4's pairs, 0.1 in the others'
            slope = np.where(scored["model"] == "gpt-4", GPT4_PER_POINT, OTHER_PER_POINT)
            varied = scored.assign(attachment=np.clip(y0 + slope * (scored["empathy"] - 4), 1, 7))
            out["per_point_by_model"] = None, _fit(varied, embedder), None
    print(f"\nfixture: {time.perf_counter() - start:.1f} s")
    return out
