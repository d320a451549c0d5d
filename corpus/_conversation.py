"""The normalised conversation every reader yields, whatever the source."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

USER = "user"
ASSISTANT = "assistant"
SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # USER, ASSISTANT, SYSTEM, or the source's unknown label verbatim
    content: str | None
    key: str  # the source's own identifier of this message's turn (used in pair_id)
    model: str | None = None  # set where the source names the speaking model per message
    language: str | None = None
    timestamp: datetime | None = None


@dataclass(slots=True)
class Conversation:
    source: str
    conversation_key: str  # the source's own conversation key (part of pair_id)
    conversation_id: str  # unique within the corpus
    user_id: str
    model: str
    messages: list[Message]
    timestamp: datetime | None = None
    language: str | None = None  # as the source reports it; None = detect
    country: str | None = None
    toxic: bool = False
    redacted: bool = False
    notes: dict[str, int] = field(default_factory=dict)  # per-conversation repairs, counted in the funnel
