"""Real text for the benchmarks: every English turn-pair of the bundled ShareGPT corpus (~43k), built
through the corpus stage with the topic filter off, as the tests' `sharegpt_all_pairs` fixture does.

Imported by the bench scripts as a sibling module (`from real_text import real_turn_pairs`): run as
`python bench/<script>.py`, this folder is first on the path.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from empathy_study import corpus


def real_turn_pairs() -> pd.DataFrame:
    """The bundled corpus's turn-pairs (prompt, response, reply, previous turn, ids), transactional ones kept."""
    with tempfile.TemporaryDirectory() as tmp:
        funnel = corpus.Funnel("sharegpt")
        corpus.build_corpus(corpus.read_source("sharegpt", [], funnel), Path(tmp),
                            corpus.CorpusConfig(keep_transactional=True), funnel)
        return pd.read_parquet(Path(tmp) / corpus.TURN_PAIRS_FILE)
