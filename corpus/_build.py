"""Conversations in, `turn_pairs.parquet` + `terminal_pairs.parquet` + the funnel out.

Streaming: rows are written in chunks as they pass, so memory stays flat whatever the corpus
size. De-duplication needs to see every pair before choosing which copy to keep, so pairs go to
temporary files first (one per shard in a sharded build, `_shards.py`) and a global pass keeps, for
each duplicate group, the copy with the smallest `pair_id` — a choice that does not depend on the
order the shards were read in, nor on which worker read them.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from empathy_study.shared import atomic_path

from ._classifier import OnProgress, apply_classifier, classifier_applies
from ._conversation import Conversation
from ._filters import CorpusConfig, detect_language, is_english, length_reason
from ._funnel import Funnel
from ._pairs import TurnPair, cut_pairs, normalise_roles
from ._prefilter import prefilter_reason
from ._tables import TERMINAL_PAIR_SCHEMA, TURN_PAIR_SCHEMA

TURN_PAIRS_FILE = "turn_pairs.parquet"
TERMINAL_PAIRS_FILE = "terminal_pairs.parquet"
_CHUNK_ROWS = 5_000
_KEY = "_duplicate_key"

CONVERSATION_STAGES = ("english", "non_toxic", "not_redacted", "well_formed", "multi_turn")
PAIR_STAGES = ("turn_pairs", "non_empty", "prefilter", "length_bounds", "deduplicated")


def _duplicate_key(pair: TurnPair) -> bytes:
    """Two pairs are the same event logged twice when their whole visible exchange is identical
    (previous assistant turn, prompt, response, reply), compared after collapsing whitespace."""
    texts = (pair.prev_response, pair.prompt, pair.response, pair.reply or "")
    normalised = "\x1f".join(" ".join(t.split()).casefold() for t in texts)
    return hashlib.blake2b(normalised.encode(), digest_size=16).digest()


class _PairSink:
    """Chunked writer of one pair table to a temporary file, each row with its duplicate key."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self.schema = schema.append(pa.field(_KEY, pa.binary(16)))
        self.rows: list[dict] = []
        self.writer = pq.ParquetWriter(path, self.schema)
        self.cut = 0  # pairs cut before any filter (counted by the caller for terminal pairs)
        self.written = 0

    def add(self, pair: TurnPair) -> None:
        row = {name: getattr(pair, name) for name in self.schema.names if name != _KEY}
        row[_KEY] = _duplicate_key(pair)
        self.rows.append(row)
        self.written += 1
        if len(self.rows) >= _CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> Path:
        self.flush()
        self.writer.close()
        return self.path

    def discard(self) -> None:
        """An interrupted build leaves no temporary file behind."""
        self.writer.close()
        self.path.unlink(missing_ok=True)


def deduplicate(parts: list[Path], destination: Path) -> tuple[int, int]:
    """Write the rows of `parts` (temporary sink files, read in order) to `destination`, one copy per
    duplicate group: the copy with the smallest `pair_id`, the first one read if that id repeats
    (the same shard given twice). Return (rows in, rows kept).

    Two streaming passes, whatever the number of parts: the first reads only keys and ids and
    remembers each group's winner (the only memory that grows with the corpus: one entry per
    distinct pair kept by the filters), the second copies the winners chunk by chunk. The choice
    depends on the rows, not on which worker or shard read them first.
    """
    winners: dict[bytes, str] = {}
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=_CHUNK_ROWS, columns=[_KEY, "pair_id"]):
            for key, pair in zip(batch.column(_KEY).to_pylist(), batch.column("pair_id").to_pylist()):
                if key not in winners or pair < winners[key]:
                    winners[key] = pair
    schema = pq.read_schema(parts[0])
    final_schema = schema.remove(schema.get_field_index(_KEY))
    rows_in = kept = 0
    with atomic_path(destination) as staged, pq.ParquetWriter(staged, final_schema) as writer:
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=_CHUNK_ROWS):
                mask = []
                for key, pair in zip(batch.column(_KEY).to_pylist(), batch.column("pair_id").to_pylist()):
                    wins = winners.get(key) == pair
                    if wins:
                        del winners[key]  # a later row with the same key and id is a repeat
                    mask.append(wins)
                table = pa.Table.from_batches([batch]).filter(pa.array(mask, pa.bool_())).drop_columns([_KEY])
                rows_in += batch.num_rows
                kept += table.num_rows
                writer.write_table(table)
    return rows_in, kept


def _pair_reason(pair: TurnPair, config: CorpusConfig) -> tuple[str, str] | None:
    """(stage, reason) of the first pair-level filter that rejects the pair, or None."""
    texts = [pair.prompt, pair.response] + ([] if pair.reply is None else [pair.reply])
    if any(not t.strip() for t in texts):
        return "non_empty", "empty_message"
    if not config.keep_transactional:
        reason = prefilter_reason(pair.prompt, pair.response, pair.reply, pair.prev_prompt, pair.prev_response)
        if reason:
            return "prefilter", reason
    reason = length_reason(pair, config)
    if reason:
        return "length_bounds", reason
    return None


def declare_stages(funnel: Funnel) -> None:
    for stage in CONVERSATION_STAGES:
        funnel.declare(stage, "conversations")
    for stage in PAIR_STAGES:
        funnel.declare(stage, "turn_pairs")


def build_corpus(
    conversations: Iterable[Conversation], out_dir: Path, config: CorpusConfig, funnel: Funnel,
    on_progress: OnProgress | None = None,
) -> Funnel:
    """Filter conversations, cut and filter turn-pairs, write both tables; the funnel counts it all.

    One process, one stream of conversations; `build_shards` is the same build over shards in parallel.
    After the duplicate pass, the offline classifier keeps the candidates it scores socio-emotional
    (`classifier_applies`); `on_progress(step, done, total, counters)` reports its embedding.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    declare_stages(funnel)
    tally = Tally()
    pairs = _PairSink(out_dir / f".{TURN_PAIRS_FILE}.tmp", TURN_PAIR_SCHEMA)
    terminals = _PairSink(out_dir / f".{TERMINAL_PAIRS_FILE}.tmp", TERMINAL_PAIR_SCHEMA)
    # Both tables are staged until the classifier has run and move in together: an interrupted build
    # leaves the study's old tables (or none), never a table of pairs the classifier has not seen.
    staged = out_dir / f".{TURN_PAIRS_FILE}.staged", out_dir / f".{TERMINAL_PAIRS_FILE}.staged"
    try:
        cut_and_filter(conversations, config, funnel, pairs, terminals, tally)
        tally.terminal_cut = terminals.cut
        kept = deduplicate([pairs.close()], staged[0])
        terminal_kept = deduplicate([terminals.close()], staged[1])
        finish_funnel(funnel, config, tally, kept, terminal_kept)
        if classifier_applies(config):
            apply_classifier(staged[0], funnel, on_progress)
        os.replace(staged[0], out_dir / TURN_PAIRS_FILE)
        os.replace(staged[1], out_dir / TERMINAL_PAIRS_FILE)
    finally:
        pairs.discard()
        terminals.discard()
        for path in staged:
            path.unlink(missing_ok=True)
    return funnel


@dataclass
class Tally:
    """What the funnel's stages do not hold: repairs made, terminal pairs cut and rejected."""

    repairs: Counter = field(default_factory=Counter)
    terminal_rejected: Counter = field(default_factory=Counter)
    terminal_cut: int = 0

    def add(self, other: "Tally") -> None:
        self.repairs.update(other.repairs)
        self.terminal_rejected.update(other.terminal_rejected)
        self.terminal_cut += other.terminal_cut


# Settings that change how a build runs, never what it writes: recorded under "build", not "config".
EXECUTION_SETTINGS = {"workers", "build_backend"}


def finish_funnel(funnel: Funnel, config: CorpusConfig, tally: Tally, kept: tuple[int, int],
                  terminal_kept: tuple[int, int]) -> Funnel:
    """The duplicate pass's counts (rows in, rows kept) and the notes, once every pair was seen."""
    rows_in, rows_kept = kept
    funnel.passed("deduplicated", rows_kept)
    funnel.reject("duplicate_pair", rows_in - rows_kept)
    terminal_rejected = Counter(tally.terminal_rejected)
    terminal_rejected["duplicate_pair"] += terminal_kept[0] - terminal_kept[1]
    funnel.notes["terminal_pairs"] = {
        "cut": tally.terminal_cut, "kept": terminal_kept[1], "rejected": dict(sorted(terminal_rejected.items()))
    }
    funnel.notes["repairs"] = dict(sorted(tally.repairs.items()))
    funnel.notes["config"] = config.model_dump(exclude=EXECUTION_SETTINGS)
    return funnel


def cut_and_filter(conversations: Iterable[Conversation], config: CorpusConfig, funnel: Funnel, pairs: _PairSink,
                   terminals: _PairSink, tally: Tally) -> None:
    repairs, terminal_rejected = tally.repairs, tally.terminal_rejected
    for conversation in conversations:
        repairs.update(conversation.notes)
        language = conversation.language
        if language is None:
            language = detect_language([m.content or "" for m in conversation.messages if m.role == "user"])
        if not is_english(language):
            funnel.reject("not_english")
            continue
        funnel.passed("english")
        if conversation.toxic:
            funnel.reject("toxic")
            continue
        funnel.passed("non_toxic")
        if conversation.redacted:
            funnel.reject("redacted")
            continue
        funnel.passed("not_redacted")
        messages, repaired, problem = normalise_roles(conversation.messages)
        if problem:
            funnel.reject(problem)
            continue
        repairs.update(repaired)
        funnel.passed("well_formed")

        cut = cut_pairs(conversation, messages, language)
        replied = [p for p in cut if p.reply is not None]
        if replied:
            funnel.passed("multi_turn")
        else:
            funnel.reject("single_turn")
        for pair in cut:
            if pair.reply is None:  # the user never replied: a terminal pair
                terminals.cut += 1
                verdict = _pair_reason(pair, config)
                if verdict:
                    terminal_rejected[verdict[1]] += 1
                else:
                    terminals.add(pair)
                continue
            funnel.passed("turn_pairs")
            verdict = _pair_reason(pair, config)
            if verdict is None:
                for stage in PAIR_STAGES[1:-1]:
                    funnel.passed(stage)
                pairs.add(pair)
                continue
            failed_stage, reason = verdict
            for stage in PAIR_STAGES[1:PAIR_STAGES.index(failed_stage)]:
                funnel.passed(stage)
            funnel.reject(reason)
