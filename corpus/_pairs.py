"""Cutting a conversation into turn-pairs (prompt → response → reply) and terminal pairs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from ._conversation import ASSISTANT, SYSTEM, USER, Conversation, Message


@dataclass(frozen=True, slots=True)
class TurnPair:
    pair_id: str
    conversation_id: str
    user_id: str
    model: str
    turn_index: int  # 1 = the conversation's first user prompt
    timestamp: datetime | None
    prompt: str
    response: str
    reply: str | None  # None: the conversation ends after the response (a terminal pair)
    prev_response: str  # the assistant message before the prompt; "" on the first turn
    prev_prompt: str  # the user message that prev_response answered; "" on the first turn
    language: str | None
    country: str | None


def pair_id(source: str, conversation_key: str, prompt_key: str) -> str:
    """A short stable id from the source's own keys, never from row positions."""
    return hashlib.sha256(f"{source}\x1f{conversation_key}\x1f{prompt_key}".encode()).hexdigest()[:20]


def normalise_roles(messages: list[Message]) -> tuple[list[Message] | None, dict[str, int], str | None]:
    """Make the sequence strictly user/assistant alternating, or say why it cannot be.

    Returns (messages, repairs made, None) or (None, {}, the reason the conversation is malformed).

    Repairs, each counted: system messages are dropped; assistant messages before the first user
    prompt are dropped; a run of assistant messages keeps only its last (earlier ones are
    regenerated answers the user did not reply to). Two user messages in a row or an unknown role
    make the conversation malformed.
    """
    repairs: dict[str, int] = {}

    def note(name: str) -> None:
        repairs[name] = repairs.get(name, 0) + 1

    kept: list[Message] = []
    for message in messages:
        if message.role == SYSTEM:
            note("system_message_dropped")
        elif message.role not in (USER, ASSISTANT):
            return None, {}, "unknown_role"
        elif message.role == ASSISTANT and not kept:
            note("leading_assistant_message_dropped")
        elif kept and kept[-1].role == message.role == ASSISTANT:
            note("regenerated_response_dropped")
            kept[-1] = message
        elif kept and kept[-1].role == message.role == USER:
            return None, {}, "consecutive_user_messages"
        else:
            kept.append(message)
    if kept and kept[-1].role == USER:
        note("unanswered_last_prompt")
    return kept, repairs, None


def cut_pairs(conversation: Conversation, messages: list[Message], language: str | None) -> list[TurnPair]:
    """All turn-pairs of an alternating message list, the last one terminal if the user never replied."""
    pairs = []
    for turn, start in enumerate(range(0, len(messages) - 1, 2), start=1):
        prompt, response = messages[start], messages[start + 1]
        reply = messages[start + 2] if start + 2 < len(messages) else None
        previous = messages[start - 1] if start > 0 else None
        previous_prompt = messages[start - 2] if start > 1 else None
        key = prompt.key if prompt.key is not None else str(turn)
        pairs.append(
            TurnPair(
                pair_id=pair_id(conversation.source, conversation.conversation_key, key),
                conversation_id=conversation.conversation_id,
                user_id=conversation.user_id,
                model=response.model or conversation.model,
                turn_index=turn,
                timestamp=prompt.timestamp or conversation.timestamp,
                prompt=prompt.content or "",
                response=response.content or "",
                reply=None if reply is None else (reply.content or ""),
                prev_response="" if previous is None else (previous.content or ""),
                prev_prompt="" if previous_prompt is None else (previous_prompt.content or ""),
                language=prompt.language or language,
                country=conversation.country,
            )
        )
    return pairs
