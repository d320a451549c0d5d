"""Imported once by the server process that forks the local shard workers (`_shards.py`): what every
worker needs is loaded here, so each worker starts ready instead of loading it again per shard."""

from empathy_study.corpus import _shards  # noqa: F401  (the build code itself)
from empathy_study.corpus._filters import detect_language

detect_language(["warm up the language model"])  # py3langid loads its model on first use
