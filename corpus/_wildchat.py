"""Reader for WildChat-1M parquet shards as published, streamed batch by batch in bounded memory."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._conversation import ASSISTANT, USER, Conversation, Message
from ._errors import CorpusError
from ._funnel import Funnel

SOURCE = "wildchat"
BATCH_ROWS = 2_000

# Top-level columns the reader needs, with the type test each must pass.
_REQUIRED = {
    "conversation_hash": pa.types.is_string,
    "model": pa.types.is_string,
    "timestamp": pa.types.is_timestamp,
    "conversation": lambda t: pa.types.is_list(t) and pa.types.is_struct(t.value_type),
    "language": pa.types.is_string,
    "toxic": pa.types.is_boolean,
    "redacted": pa.types.is_boolean,
}
_OPTIONAL = {
    "openai_moderation": lambda t: pa.types.is_list(t) and pa.types.is_struct(t.value_type),
    "hashed_ip": pa.types.is_string,
    "country": pa.types.is_string,
}
# Fields of each message struct: required ones, then those read where present.
_MESSAGE_REQUIRED = {"content": pa.types.is_string, "role": pa.types.is_string}
_MESSAGE_OPTIONAL = {
    "turn_identifier": pa.types.is_integer,
    "language": pa.types.is_string,
    "timestamp": pa.types.is_timestamp,
}
_ROLES = {"user": USER, "assistant": ASSISTANT}


def resolve_inputs(inputs: Iterable[str | Path], suffix: str = ".parquet") -> list[Path]:
    """Files, directories (their `*.parquet` files) and globs → a sorted, de-duplicated file list."""
    found: set[Path] = set()
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            matches = sorted(path.glob(f"*{suffix}"))
            if not matches:
                raise CorpusError(f"no {suffix} files in directory {path}")
        elif path.is_file():
            matches = [path]
        elif glob.has_magic(text):
            matches = [Path(p) for p in sorted(glob.glob(text)) if Path(p).is_file()]
            if not matches:
                raise CorpusError(f"the pattern {text} matches no files")
        else:
            raise CorpusError(f"input not found: {text}")
        found.update(m.resolve() for m in matches)
    if not found:
        raise CorpusError("no input given: pass --input with files, directories or globs")
    return sorted(found)


def _check_field(file: Path, name: str, arrow_type: pa.DataType, test) -> None:
    if not test(arrow_type):
        raise CorpusError(f"{file}: column '{name}' has type {arrow_type}, not what WildChat publishes")


def _leaf_paths(parquet: pq.ParquetFile) -> dict[tuple[str, str], str]:
    """(top-level column, leaf field) -> the Parquet column path, whatever the list naming
    ("list.element" or "list.item") of the writer that made the shard."""
    paths = {}
    for column in parquet.schema:
        parts = column.path.split(".")
        paths[(parts[0], parts[-1])] = column.path
    return paths


@dataclass(frozen=True)
class ShardPlan:
    file: Path
    columns: list[str]  # the leaf columns worth reading
    rows: int


def plan_shards(files: list[Path]) -> list[ShardPlan]:
    """Check every shard's schema before any is read: a bad shard fails the build at once."""
    return [_plan(file) for file in files]


def _plan(file: Path) -> ShardPlan:
    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorpusError(f"{file} is not a readable parquet file: {exc}") from exc
    schema = parquet.schema_arrow
    for name, test in _REQUIRED.items():
        if name not in schema.names:
            raise CorpusError(f"{file}: missing column '{name}' (WildChat-1M schema)")
        _check_field(file, name, schema.field(name).type, test)
    message_type = schema.field("conversation").type.value_type
    message_fields = {message_type.field(i).name: message_type.field(i).type for i in range(message_type.num_fields)}
    for name, test in _MESSAGE_REQUIRED.items():
        if name not in message_fields:
            raise CorpusError(f"{file}: column 'conversation' has no field '{name}' in its messages")
        _check_field(file, f"conversation.{name}", message_fields[name], test)
    wanted = dict(_MESSAGE_REQUIRED)
    for name, test in _MESSAGE_OPTIONAL.items():
        if name in message_fields:
            _check_field(file, f"conversation.{name}", message_fields[name], test)
            wanted[name] = test
    leaves = _leaf_paths(parquet)
    columns = [n for n in _REQUIRED if n != "conversation"]
    columns += [leaves[("conversation", name)] for name in sorted(wanted)]
    for name, test in _OPTIONAL.items():
        if name not in schema.names:
            continue
        _check_field(file, name, schema.field(name).type, test)
        if name != "openai_moderation":
            columns.append(name)
        elif ("openai_moderation", "flagged") in leaves:
            columns.append(leaves[("openai_moderation", "flagged")])
    return ShardPlan(file, columns, parquet.metadata.num_rows)


def _any_flagged(batch: pa.RecordBatch) -> np.ndarray:
    """Per row: did OpenAI moderation flag any message? (computed in Arrow, not per Python object)"""
    flags = np.zeros(batch.num_rows, dtype=bool)
    if "openai_moderation" not in batch.schema.names:
        return flags
    moderation = batch.column("openai_moderation")
    elements = pc.list_flatten(moderation)
    flagged = pc.fill_null(pc.struct_field(elements, "flagged"), False).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(moderation).to_numpy()
    flags[np.unique(parents[flagged])] = True
    return flags


def _message(raw: dict, fallback_time) -> Message:
    role = raw.get("role")
    turn_id = raw.get("turn_identifier")
    return Message(
        role=_ROLES.get(role, str(role)),
        content=raw.get("content"),
        key=None if turn_id is None else str(turn_id),
        language=raw.get("language"),
        timestamp=raw.get("timestamp") or fallback_time,
    )


def read_wildchat(plans: list[ShardPlan], funnel: Funnel, on_batch=None) -> Iterator[Conversation]:
    """Yield every conversation of the planned shards, one batch of rows in memory at a time."""
    for plan in plans:
        file = plan.file
        try:
            batches = pq.ParquetFile(file).iter_batches(batch_size=BATCH_ROWS, columns=plan.columns)
            for batch in batches:
                yield from _conversations(batch, funnel)
                if on_batch is not None:
                    on_batch(batch.num_rows)
        except (pa.ArrowInvalid, OSError) as exc:
            raise CorpusError(f"{file} could not be read to the end: {exc}") from exc


def _conversations(batch: pa.RecordBatch, funnel: Funnel) -> Iterator[Conversation]:
    flagged = _any_flagged(batch)
    rows = batch.drop_columns([c for c in ("openai_moderation",) if c in batch.schema.names]).to_pylist()
    for row, moderation_flag in zip(rows, flagged):
        funnel.passed("records_read")
        raw_messages = row["conversation"] or []
        conversation_hash = row["conversation_hash"]
        if not conversation_hash or not raw_messages:
            funnel.reject("missing_conversation_hash" if not conversation_hash else "empty_conversation")
            continue
        messages = [_message(m, row["timestamp"]) for m in raw_messages]
        first_key = messages[0].key
        if first_key is None:
            funnel.reject("missing_turn_identifier")
            continue
        funnel.passed("conversations")
        # conversation_hash repeats in WildChat; the first message's turn id makes the id unique.
        conversation_id = f"{conversation_hash}-{first_key}"
        user_id = row.get("hashed_ip")
        yield Conversation(
            source=SOURCE,
            conversation_key=conversation_hash,
            conversation_id=conversation_id,
            user_id=user_id or conversation_id,
            model=row["model"] or "unknown",
            messages=messages,
            timestamp=row["timestamp"],
            language=row["language"],
            country=row.get("country"),
            toxic=bool(row["toxic"]) or bool(moderation_flag),
            redacted=bool(row["redacted"]),
            notes={} if user_id else {"user_id_from_conversation": 1},
        )
