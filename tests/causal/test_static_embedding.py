"""The fast embedding (a static model distilled from the packaged MiniLM): fidelity and recovery.

The planted study is test_planted_effect's (3,000 real ShareGPT pairs, seed 0, scores planted
through MiniLM's reading of the prompts), so its MiniLM embeddings are shared within a session.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy import stats

from empathy_study import causal, study
from empathy_study.causal import _static
from empathy_study.causal._embeddings import REFERENCE
from tests.support.models import model_in_run_cache

# bench/embed_throughput.py measured ρ = 0.22 on 3,000 other distinct prompts (README): a bag of tokens
# keeps the broad axes of meaning, not MiniLM's fine ordering of unrelated long prompts. The floor
# allows for another sample of prompts; a scrambled token table or a shuffled output falls to ≈ 0.
MIN_SPEARMAN = 0.15


@pytest.fixture(scope="module")
def static_model():
    """The distilled model in this run's cache: copied from the user's cache when `make setup` built it
    there, else distilled now (minutes on 2 cores; the time is printed)."""
    target = _static.static_model_dir()
    model_in_run_cache(target, _static.STATIC_NAME, "model.safetensors", _static.distill)
    return target


@pytest.fixture(scope="module")
def planted(sharegpt_all_pairs, static_model):
    # planted through the fp32 reference, as test_planted_effect's study (the same draw)
    scored, truth = causal.semisynthetic_study(sharegpt_all_pairs, 3_000, seed=0,
                                               embedder=causal.Embedder(embedding=REFERENCE))
    return scored, truth


def test_fast_embedding_ranks_distances_like_minilm(planted):
    prompts = planted[0]["prompt"].astype(str).drop_duplicates().tolist()
    reference = causal.Embedder(embedding=REFERENCE).embed(prompts)  # cached by the planted study
    fast = causal.Embedder(embedding="fast").embed(prompts)
    assert fast.shape == reference.shape
    assert np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-3)
    upper = np.triu_indices(len(prompts), 1)
    rho = stats.spearmanr((fast @ fast.T)[upper], (reference @ reference.T)[upper]).statistic
    print(f"Spearman ρ of pairwise cosine distances, fast vs MiniLM, {len(prompts):,} prompts: {rho:.3f}")
    assert rho > MIN_SPEARMAN
    # A static model that ignored the text (or a shuffled one) would rank distances at random.
    shuffled = fast[np.random.default_rng(0).permutation(len(prompts))]
    assert abs(stats.spearmanr((shuffled @ shuffled.T)[upper], (reference @ reference.T)[upper]).statistic) < 0.05


def test_estimate_with_the_fast_embedding_recovers_the_planted_effect(planted, tmp_path):
    scored, truth = planted
    path = tmp_path / "scored_pairs.parquet"
    scored.to_parquet(path)
    config = causal.CausalConfig(embedding="fast", estimators=["naive", "dr"], heterogeneity=False)
    start = time.perf_counter()
    result = study.estimate(path, tmp_path / "out", config)
    print(f"study.estimate with the fast embedding, 3,000 pairs: {time.perf_counter() - start:.1f} s")
    true_ate = causal.true_effects(truth, scored.loc[scored["empathy"] != 4, "pair_id"])
    dr, naive = result.row("dr"), result.row("naive")
    print(f"true ATE {true_ate:.3f}; dr (fast) {dr.estimate:.3f} [{dr.ci_low:.3f}, {dr.ci_high:.3f}]; "
          f"naive {naive.estimate:.3f}")
    # The standard test_planted_effect holds prompt matching to: at least half of the naive bias removed.
    # Not asserted: that the interval covers. On this study it did not (0.94 [0.78, 1.11] against a
    # truth of 0.67, where MiniLM's covers): the static model leaves part of the confounding that was
    # planted through MiniLM's reading of the prompts. docs/methods/embeddings.md says so.
    assert abs(dr.estimate - true_ate) < 0.5 * abs(naive.estimate - true_ate)
    recorded = json.loads((tmp_path / "out" / "estimates.json").read_text())["provenance"]
    assert recorded["embeddings"]["embedding"] == "fast"
    assert recorded["embeddings"]["model"] == _static.STATIC_NAME
    assert recorded["config"]["embedding"] == "fast"


def test_unknown_embedding_is_refused():
    with pytest.raises(ValueError, match="unknown embedding"):
        causal.Embedder(embedding="word2vec")
    with pytest.raises(ValueError):
        causal.CausalConfig(embedding="word2vec")
