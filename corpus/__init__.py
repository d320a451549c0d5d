"""Corpus stage: raw chat logs (WildChat-1M parquet, ShareGPT JSON) → filtered turn-pairs → a sample."""

from ._audit import (
    AUDIT_COLUMNS,
    STRATA,
    Rate,
    audit_features,
    design_ratio,
    draw_audit,
    filter_rates,
    prefilter_candidates,
    stratum_names,
)
from ._build import TERMINAL_PAIRS_FILE, TURN_PAIRS_FILE, build_corpus
from ._classifier import classify_pairs, has_fence
from ._errors import CorpusError
from ._filters import CorpusConfig, transactional_reason
from ._funnel import Funnel
from ._prefilter import personal_context, personal_words, prefilter_reason
from ._sample import SAMPLE_FILE, SampleConfig, draw_sample, draw_stratified, turn_buckets
from ._shards import build_shards
from ._sources import SOURCES, Source, plan_wildchat, read_source
from ._tables import (
    OPTIONAL_TURN_PAIR_COLUMNS,
    SAMPLE_COLUMNS,
    TURN_PAIR_COLUMNS,
    read_table,
    validate_turn_pairs,
)
from ._wildchat import resolve_inputs

__all__ = [
    "AUDIT_COLUMNS", "STRATA", "Rate", "audit_features", "design_ratio", "draw_audit", "filter_rates",
    "prefilter_candidates", "stratum_names",
    "CorpusConfig", "CorpusError", "Funnel", "OPTIONAL_TURN_PAIR_COLUMNS", "SAMPLE_COLUMNS",
    "SAMPLE_FILE", "SOURCES", "SampleConfig", "Source", "TERMINAL_PAIRS_FILE", "TURN_PAIRS_FILE", "TURN_PAIR_COLUMNS",
    "build_corpus", "build_shards", "classify_pairs", "has_fence", "draw_sample", "draw_stratified", "turn_buckets", "personal_context",
    "personal_words", "plan_wildchat", "prefilter_reason", "read_source", "read_table",
    "resolve_inputs", "transactional_reason", "validate_turn_pairs",
]
