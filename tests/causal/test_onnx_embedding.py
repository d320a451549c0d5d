"""The int8 ONNX embedding (`embedding = "minilm"`): the packaged MiniLM exported to int8 ONNX, against the fp32 PyTorch model.

Fidelity is checked on real prompts (the bundled corpus) against sentence-transformers' own fp32
model (`minilm-torch`); speed is measured in bench/embed_throughput.py, not here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from empathy_study import causal
from empathy_study.causal import _embeddings, _static
from empathy_study.shared import file_sha256
from tests.support.models import model_in_run_cache

# bench/embed_throughput.py: ρ = 0.988 on 1,500 distinct prompts (the target is 0.98).
MIN_SPEARMAN = 0.98


@pytest.fixture(scope="module")
def onnx_model():
    """The export in this run's cache: copied from the user's cache when `make setup` built it there,
    else exported now (about a minute; the time is printed)."""
    target = _static.onnx_model_dir()
    model_in_run_cache(target, _static.ONNX_NAME, _static.ONNX_FILE, _static.export_onnx,
                       built_marker=_static.EXPORT_RECORD)
    return target


@pytest.fixture(scope="module")
def prompts(sharegpt_all_pairs) -> list[str]:
    unique = sharegpt_all_pairs["prompt"].astype(str).drop_duplicates()
    return unique.sample(n=400, random_state=7).tolist()


def test_int8_export_ranks_distances_like_the_fp32_model(onnx_model, prompts):
    int8 = causal.Embedder(embedding="minilm").embed(prompts)
    fp32 = causal.Embedder(embedding="minilm-torch").embed(prompts)
    assert int8.shape == fp32.shape == (len(prompts), 384)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1, atol=1e-4)
    cosine = (int8 * fp32).sum(axis=1)
    upper = np.triu_indices(len(prompts), 1)
    rho = stats.spearmanr((int8 @ int8.T)[upper], (fp32 @ fp32.T)[upper]).statistic
    print(f"int8 vs fp32 on {len(prompts)} prompts: Spearman ρ {rho:.4f}; cosine median {np.median(cosine):.4f}, "
          f"min {cosine.min():.4f}")
    assert rho >= MIN_SPEARMAN
    assert np.median(cosine) > 0.99 and cosine.min() > 0.9  # the same vector, up to quantisation noise
    # A model that lost the text (or vectors in the wrong order) would rank distances at random.
    shuffled = int8[np.random.default_rng(0).permutation(len(prompts))]
    assert abs(stats.spearmanr((shuffled @ shuffled.T)[upper], (fp32 @ fp32.T)[upper]).statistic) < 0.05


def test_a_texts_vector_does_not_depend_on_the_texts_embedded_with_it(onnx_model, prompts):
    """Dynamic quantisation sets each activation's range over the whole input: batched texts would
    change each other's vectors (0.037 per coordinate at 16 a batch), and the cache would keep
    whichever came first. Texts run side by side on threads must each land in their own row."""
    together = _static.load_onnx_model(parallel=3).encode(prompts[:40])
    serial = _static.load_onnx_model(parallel=1)
    alone = np.vstack([serial.encode([p]) for p in prompts[:40]])
    assert np.abs(together - alone).max() < 1e-6
    assert np.abs(together - np.roll(alone, 1, axis=0)).max() > 0.1  # rows out of order would fail above


def test_each_model_keeps_its_own_cache_and_provenance_name(onnx_model):
    names = {e: causal.Embedder(embedding=e).model_name for e in _embeddings.EMBEDDINGS}
    if _static.device() == "cpu":
        assert names["minilm"] == _static.ONNX_NAME
    assert names["minilm-torch"] == _embeddings.MODEL_NAME
    assert names["fast"] == _static.STATIC_NAME
    folders = {causal.Embedder(embedding=e).cache.directory for e in _embeddings.EMBEDDINGS}
    assert len(folders) == len(set(names.values()))  # int8 and fp32 vectors never share a folder


def test_the_export_records_how_it_was_made(onnx_model):
    record = json.loads((onnx_model / _static.EXPORT_RECORD).read_text())
    assert record["model"] == _static.ONNX_NAME
    assert record["fused"].get("Attention") == 6  # the six layers' attention fused: the speed comes from it
    assert len(record["onnx_sha256"]) == 64 and record["versions"]["onnxruntime"]
    assert record["onnx_sha256"] == file_sha256(onnx_model / _static.ONNX_FILE)


def test_a_missing_export_is_made_on_first_use(onnx_model, tmp_path, monkeypatch, capsys):
    """No model in the cache: the first load exports one (here into an empty cache folder), saying so."""
    monkeypatch.setenv("EMPATHY_CACHE", str(tmp_path))
    assert not _static.onnx_model_dir().exists()
    model = _static.load_onnx_model()
    assert "exporting" in capsys.readouterr().err
    assert (_static.onnx_model_dir() / _static.ONNX_FILE).exists()
    # The same packaged weights and library versions give the same file.
    assert model.record["onnx_sha256"] == json.loads((onnx_model / _static.EXPORT_RECORD).read_text())["onnx_sha256"]


def test_the_config_and_the_embedder_default_to_the_same_embedding():
    assert causal.CausalConfig().embedding == causal.Embedder().embedding == _embeddings.DEFAULT_EMBEDDING == "minilm"
