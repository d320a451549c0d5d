"""The offline pass of the population filter: a small classifier over sentence embeddings.

The cheap pass (`_prefilter.py`) is tuned for recall and lets through many task pairs; the judge
pass (`empathy corpus classify`) needs a capable judge to do better. Between the two, `empathy
corpus build` runs this classifier on the cheap pass's candidates when no judge pass is configured:
a logistic regression over the int8 ONNX MiniLM embeddings of the user's own words and of the
exchange before (`FEATURES` below) plus a few cheap features (cue counts, the cheap pass's own
signals, lengths). Its rejections are counted in `funnel.json` (`classifier` stage, reason
`classifier_not_socioemotional`).

A candidate whose response holds a fenced code block is rejected before the model (reason
`classifier_code_response`): the assistant answering with code marks a task session.

The fitted model is package data (`population_classifier.json`: weights, standardisation, decision
threshold and how it was made — training sets, who labelled them, date, library versions); it is
read with importlib.resources and applied with numpy alone. `fit_classifier` makes it
(`data/train_population_classifier.py`); the held-out measurement is `data/socioemotional_holdout.jsonl`
(docs/methods/corpus-classifier.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from empathy_study.shared import atomic_path

from ._audit import cue_count
from ._errors import CorpusError
from ._filters import code_present, task_request
from ._prefilter import OWN_CHARS, personal_context, personal_words

MODEL_FILE = "population_classifier.json"
STAGE = "classifier"
REJECTED = "classifier_not_socioemotional"
REJECTED_CODE = "classifier_code_response"  # the assistant answered with a fenced code block
# The texts that may be embedded (their first OWN_CHARS characters); a missing one (a first turn has no
# earlier exchange) embeds as "".
TEXTS = ("prompt", "reply", "prev_prompt", "prev_response")
_FIRST_PERSON = re.compile(r"(?i)\b(i|i'm|im|i've|i'd|me|my|mine|myself)\b")
_SECOND_PERSON = re.compile(r"(?i)\b(you|you're|youre|your|yours|yourself|u)\b")
CHEAP_FEATURES = (
    "own_cue", "prev_cue", "personal_prompt", "personal_reply", "personal_context", "code", "task_prompt",
    "task_reply", "first_person", "second_person", "prompt_chars", "reply_chars", "prev_chars", "first_turn",
    "response_fence", "response_code", "prev_response_code",
)
FENCE = "```"


def _rate(pattern: re.Pattern, text: str) -> float:
    words = max(1, len(text.split()))
    return len(pattern.findall(text)) / words


def cheap_features(pairs: pd.DataFrame) -> np.ndarray:
    """The non-embedding features of each pair, columns in CHEAP_FEATURES order (floats)."""
    texts = pairs.reindex(columns=[*TEXTS, "response"]).fillna("").astype(str)
    rows = []
    # The assistant's side is not what the label is about, but code in it marks a task session.
    for prompt, reply, prev_prompt, prev_response, response in texts.itertuples(index=False):
        own = prompt[:OWN_CHARS] + " " + reply[:OWN_CHARS]
        rows.append((
            np.log1p(cue_count(prompt) + cue_count(reply)), np.log1p(cue_count(prev_prompt)),
            personal_words(prompt), personal_words(reply), personal_context(prev_prompt or None, prev_response or None),
            code_present(prompt[:OWN_CHARS * 4], reply[:OWN_CHARS * 4]), task_request(prompt), task_request(reply),
            _rate(_FIRST_PERSON, own), _rate(_SECOND_PERSON, own),
            np.log1p(len(prompt)), np.log1p(len(reply)), np.log1p(len(prev_prompt)), not prev_prompt and not prev_response,
            FENCE in response, code_present(response[:OWN_CHARS * 4]), code_present(prev_response[:OWN_CHARS * 4]),
        ))
    return np.asarray(rows, dtype=np.float64).reshape(len(pairs), len(CHEAP_FEATURES))


def has_fence(pairs: pd.DataFrame) -> np.ndarray:
    """Whether a code fence appears in the pair's prompt, response or reply (the issue's count)."""
    texts = pairs.reindex(columns=["prompt", "response", "reply"]).fillna("").astype(str)
    return np.array([any(FENCE in t for t in row) for row in texts.itertuples(index=False)], dtype=bool)


def fenced_response(pairs: pd.DataFrame) -> np.ndarray:
    """Whether the assistant's response holds a code fence."""
    return pairs.reindex(columns=["response"])["response"].fillna("").astype(str).str.contains(
        FENCE, regex=False).to_numpy()


def embedded_texts(pairs: pd.DataFrame) -> dict[str, list[str]]:
    """The texts each pair contributes, by role (TEXTS): the first OWN_CHARS characters of each, the
    span the cheap pass reads as the user's own words (a pasted document beyond it is material, and
    embedding it would cost most of the classifier's time on long texts)."""
    return {role: [t[:OWN_CHARS] for t in pairs[role].fillna("").astype(str)] if role in pairs else [""] * len(pairs)
            for role in TEXTS}


def pair_features(pairs: pd.DataFrame, embed: Callable[[list[str]], np.ndarray],
                  roles: tuple[str, ...] = TEXTS) -> np.ndarray:
    """Embeddings of the `roles` texts (one call of `embed` over all of them) beside the cheap features."""
    texts = embedded_texts(pairs)
    flat = [t for role in roles for t in texts[role]]
    vectors = embed(flat).astype(np.float64) if flat else np.zeros((0, 384))
    blocks = [vectors[i * len(pairs):(i + 1) * len(pairs)] for i in range(len(roles))]
    return np.hstack([*blocks, cheap_features(pairs)]) if len(pairs) else np.zeros((0, 384 * len(roles) +
                                                                                      len(CHEAP_FEATURES)))


@dataclass(frozen=True)
class PopulationClassifier:
    """A fitted linear classifier: standardise, weigh, add the intercept, compare with the threshold."""

    roles: tuple[str, ...]  # which texts are embedded (a subset of TEXTS, in order)
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: float
    threshold: float  # on the logistic score; a pair scoring at least this is kept
    embedding: dict  # the model whose vectors it was fitted on: name and onnx_sha256
    provenance: dict

    def scores(self, features: np.ndarray) -> np.ndarray:
        z = (features - self.mean) / self.scale
        return 1 / (1 + np.exp(-(z @ self.weights + self.intercept)))

    def keep(self, features: np.ndarray) -> np.ndarray:
        return self.scores(features) >= self.threshold

    def to_dict(self) -> dict:
        return {"roles": list(self.roles), "cheap_features": list(CHEAP_FEATURES), "threshold": self.threshold,
                "intercept": self.intercept, "embedding": self.embedding, "provenance": self.provenance,
                "mean": self.mean.tolist(), "scale": self.scale.tolist(), "weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "PopulationClassifier":
        if list(data.get("cheap_features", [])) != list(CHEAP_FEATURES):
            raise CorpusError("the population classifier was fitted on other cheap features than this code computes")
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "weights")}
        width = 384 * len(data["roles"]) + len(CHEAP_FEATURES)
        if any(len(a) != width for a in arrays.values()):
            raise CorpusError(f"the population classifier's arrays do not have {width} entries")
        return cls(tuple(data["roles"]), arrays["mean"], arrays["scale"], arrays["weights"], float(data["intercept"]),
                   float(data["threshold"]), dict(data["embedding"]), dict(data["provenance"]))


def packaged_model() -> tuple[PopulationClassifier, str]:
    """The classifier shipped with the package and the sha256 of its file."""
    raw = resources.files("empathy_study.corpus").joinpath(MODEL_FILE).read_bytes()
    return PopulationClassifier.from_dict(json.loads(raw)), hashlib.sha256(raw).hexdigest()


def classifier_embedder():
    """The embedding the classifier was fitted on: the int8 ONNX MiniLM, whatever the hardware (a GPU
    would run the fp32 model for `[causal] embedding = "minilm"`; the classifier's weights fit the
    int8 vectors). It shares the estimate's cache of those vectors."""
    from empathy_study.causal import _embeddings

    return _embeddings.Embedder(model=_embeddings.ONNX_NAME)


# on_progress(step, done, total, counters): the stage's own progress type, mirrored by study.Step.
OnProgress = Callable[[str, int, "int | None", dict], None]
STEP = "classifier: embedding candidates"


def classify_pairs(pairs: pd.DataFrame, candidates: np.ndarray | None = None,
                   on_progress: OnProgress | None = None) -> tuple[np.ndarray, dict]:
    """The packaged classifier's decision for each pair of a turn-pair table (pairs outside
    `candidates`, a mask, are not scored: False), and what ran (file checksum, embedding, counts)."""
    model, digest = packaged_model()
    embedder = classifier_embedder()
    mask = np.ones(len(pairs), dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool)

    def embed(texts: list[str]) -> np.ndarray:
        report = (lambda done, total: on_progress(STEP, done, total, {})) if on_progress else None
        return embedder.embed(texts, on_progress=report)

    # A candidate answered with a fenced code block is a task session: rejected before the model,
    # unscored. In the training sets no socio-emotional candidate had one (0 of 50; 15 negatives did).
    coded = mask & fenced_response(pairs)
    scored = mask & ~coded
    kept = np.zeros(len(pairs), dtype=bool)
    if scored.any():
        kept[scored] = model.keep(pair_features(pairs[scored], embed, model.roles))
    return kept, {"model_file": MODEL_FILE, "sha256": digest, "threshold": model.threshold,
                  "embedding": embedder.model_name, "embedding_fitted_on": model.embedding,
                  "embedded_now": embedder.embedded, "rejected": {REJECTED_CODE: int(coded.sum()),
                                                                  REJECTED: int((scored & ~kept).sum())}}


# How a run went (time, texts embedded anew: 0 when the cache had them all) is not what it decided:
# it goes under funnel.json's "build" note, which is the only part allowed to differ between builds.
RUN_DETAILS = ("embedded_now", "seconds")


def apply_classifier(table: Path, funnel, on_progress: OnProgress | None = None) -> dict:
    """Keep the pairs of `table` (a turn-pair file) the packaged classifier scores as socio-emotional;
    rewrite it in place and record the stage, its rejections and a `classifier` note in `funnel`."""
    from empathy_study.causal import _static

    start = time.perf_counter()
    arrow = pq.read_table(table)
    kept, ran = classify_pairs(arrow.to_pandas(), on_progress=on_progress)
    with atomic_path(table) as staged:
        pq.write_table(arrow.filter(kept), staged)
    funnel.declare(STAGE, "turn_pairs")
    funnel.passed(STAGE, int(kept.sum()))
    for reason, rows in ran["rejected"].items():
        funnel.reject(reason, rows)
    note = {**ran, "candidates": len(kept), "kept": int(kept.sum()), "seconds": round(time.perf_counter() - start, 2),
            "terminal_pairs": "not classified (the judge pass does not classify them either): they remain the "
                              "cheap pass's candidates"}
    funnel.notes.setdefault("build", {})[STAGE] = {k: note.pop(k) for k in RUN_DETAILS}
    record = _static.onnx_model_dir() / _static.EXPORT_RECORD
    local = json.loads(record.read_text()).get("onnx_sha256") if record.exists() else None
    fitted = ran["embedding_fitted_on"].get("onnx_sha256")
    if local and local != fitted:
        # Another torch/onnxruntime may export slightly different weights: the scores shift a little.
        note["embedding_mismatch"] = (f"this machine's export {local[:12]} is not the one the classifier was "
                                      f"fitted on ({str(fitted)[:12]})")
    funnel.notes[STAGE] = note
    return note


def classifier_applies(config) -> bool:
    """The build runs the classifier by default: unless the filter is off, a judge pass is configured
    (`[corpus] classify_judges`), or `[corpus] classifier = false`."""
    return config.classifier and not config.keep_transactional and not config.classify_judges
