"""Session fixtures shared by several test packages, and an environment that keeps the user's home clean."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pandas as pd
import pytest

# Nothing is fetched from a model hub, and nothing the tests make lands in the user's home:
# caches (embeddings, matplotlib's font cache, anything following XDG) go to a folder of this run.
_SCRATCH = tempfile.mkdtemp(prefix="empathy-tests-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ["EMPATHY_CACHE"] = os.path.join(_SCRATCH, "empathy-cache")
os.environ["MPLCONFIGDIR"] = os.path.join(_SCRATCH, "matplotlib")
os.environ["XDG_CACHE_HOME"] = os.path.join(_SCRATCH, "xdg-cache")


@pytest.fixture(scope="session", autouse=True)
def default_embedding_in_run_cache():
    """The default embedding's int8 export, copied into this run's cache when `make setup` built it (a
    second or so), so the first test that embeds does not spend a minute exporting it again."""
    from empathy_study.causal import _static
    from tests.support.models import SETUP_MODELS, model_in_run_cache

    if (SETUP_MODELS / _static.ONNX_NAME / _static.EXPORT_RECORD).exists():
        model_in_run_cache(_static.onnx_model_dir(), _static.ONNX_NAME, _static.ONNX_FILE, _static.export_onnx,
                           built_marker=_static.EXPORT_RECORD)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SCRATCH, ignore_errors=True)


@pytest.fixture(scope="session")
def sharegpt_all_pairs(tmp_path_factory) -> pd.DataFrame:
    """Every English turn-pair of the bundled real corpus, topic filter off: real text for planted studies."""
    from empathy_study import corpus

    out = tmp_path_factory.mktemp("sharegpt-all")
    funnel = corpus.Funnel("sharegpt")
    config = corpus.CorpusConfig(keep_transactional=True)
    corpus.build_corpus(corpus.read_source("sharegpt", [], funnel), out, config, funnel)
    return pd.read_parquet(out / corpus.TURN_PAIRS_FILE)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """One real Label Studio server for the whole session; no test stops it."""
    from tests.support import labelstudio

    started = time.perf_counter()
    server = labelstudio.start(tmp_path_factory.mktemp("labelstudio"))
    print(f"\nLabel Studio up in {time.perf_counter() - started:.0f} s at {server.url}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def label_studio_client(label_studio):
    from empathy_study import annotation

    return annotation.connect(label_studio.url, label_studio.token)


@pytest.fixture
def label_studio_env(monkeypatch, label_studio):
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
