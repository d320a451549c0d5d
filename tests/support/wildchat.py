"""WildChat-1M rows with exactly the published schema (nested types included), for tests and benchmarks."""

from __future__ import annotations

import hashlib
import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

_MODERATION_CATEGORIES = [
    "harassment", "harassment/threatening", "harassment_threatening", "hate", "hate/threatening",
    "hate_threatening", "self-harm", "self-harm/instructions", "self-harm/intent", "self_harm",
    "self_harm_instructions", "self_harm_intent", "sexual", "sexual/minors", "sexual_minors",
    "violence", "violence/graphic", "violence_graphic",
]
_DETOXIFY = ["identity_attack", "insult", "obscene", "severe_toxicity", "sexual_explicit", "threat", "toxicity"]
HEADER = pa.struct([("accept-language", pa.string()), ("user-agent", pa.string())])
TIME = pa.timestamp("us", tz="UTC")
MESSAGE = pa.struct([
    ("content", pa.string()), ("country", pa.string()), ("hashed_ip", pa.string()), ("header", HEADER),
    ("language", pa.string()), ("redacted", pa.bool_()), ("role", pa.string()), ("state", pa.string()),
    ("timestamp", TIME), ("toxic", pa.bool_()), ("turn_identifier", pa.int64()),
])
MODERATION = pa.struct([
    ("categories", pa.struct([(c, pa.bool_()) for c in _MODERATION_CATEGORIES])),
    ("category_scores", pa.struct([(c, pa.float64()) for c in _MODERATION_CATEGORIES])),
    ("flagged", pa.bool_()),
])
DETOXIFY = pa.struct([(c, pa.float64()) for c in _DETOXIFY])
SCHEMA = pa.schema([
    ("conversation_hash", pa.string()), ("model", pa.string()), ("timestamp", TIME),
    ("conversation", pa.list_(MESSAGE)), ("turn", pa.int64()), ("language", pa.string()),
    ("openai_moderation", pa.list_(MODERATION)), ("detoxify_moderation", pa.list_(DETOXIFY)),
    ("toxic", pa.bool_()), ("redacted", pa.bool_()), ("state", pa.string()), ("country", pa.string()),
    ("hashed_ip", pa.string()), ("header", HEADER),
])

_turn_ids = itertools.count(1_000_000)
START = datetime(2023, 6, 1, 12, 0, tzinfo=timezone.utc)


def conversation_row(
    texts: list[str],
    *,
    model: str = "gpt-3.5-turbo-0613",
    language: str = "English",
    toxic: bool = False,
    flagged: bool = False,
    redacted: bool = False,
    hashed_ip: str | None = "ip-1",
    roles: list[str] | None = None,
    conversation_hash: str | None = None,
    when: datetime = START,
) -> dict:
    """One WildChat row; `texts` alternate user/assistant unless `roles` says otherwise."""
    roles = roles or [("user", "assistant")[i % 2] for i in range(len(texts))]
    messages, turn_id = [], None
    for i, (role, text) in enumerate(zip(roles, texts)):
        if role == "user" or turn_id is None:
            turn_id = next(_turn_ids)
        is_user = role == "user"
        messages.append({
            "content": text, "country": "United States" if is_user else None,
            "hashed_ip": hashed_ip if is_user else None,
            "header": {"accept-language": "en-US", "user-agent": "Mozilla/5.0"} if is_user else None,
            "language": language, "redacted": redacted, "role": role, "state": "California" if is_user else None,
            "timestamp": when + timedelta(seconds=30 * i), "toxic": toxic, "turn_identifier": turn_id,
        })
    score = 0.9 if flagged else 0.001
    moderation = [{
        "categories": {c: flagged and c == "harassment" for c in _MODERATION_CATEGORIES},
        "category_scores": {c: score if c == "harassment" else 0.0001 for c in _MODERATION_CATEGORIES},
        "flagged": flagged,
    } for _ in texts]
    digest = conversation_hash or hashlib.md5("".join(texts).encode()).hexdigest()
    return {
        "conversation_hash": digest, "model": model, "timestamp": when, "conversation": messages,
        "turn": sum(r == "user" for r in roles), "language": language, "openai_moderation": moderation,
        "detoxify_moderation": [{c: 0.0005 for c in _DETOXIFY} for _ in texts], "toxic": toxic,
        "redacted": redacted, "state": "California", "country": "United States", "hashed_ip": hashed_ip,
        "header": {"accept-language": "en-US", "user-agent": "Mozilla/5.0"},
    }


def write_shard(rows: list[dict], path: Path, row_group_size: int = 1_000) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), path, row_group_size=row_group_size)
    return path
