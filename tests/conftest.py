"""Session fixtures shared by several test packages."""

from __future__ import annotations

import os

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(scope="session")
def sharegpt_all_pairs(tmp_path_factory) -> pd.DataFrame:
    """Every English turn-pair of the bundled real corpus, topic filter off: real text for planted studies."""
    import corpus

    out = tmp_path_factory.mktemp("sharegpt-all")
    funnel = corpus.Funnel("sharegpt")
    config = corpus.CorpusConfig(keep_transactional=True)
    corpus.build_corpus(corpus.read_source("sharegpt", [], funnel), out, config, funnel)
    return pd.read_parquet(out / corpus.TURN_PAIRS_FILE)
