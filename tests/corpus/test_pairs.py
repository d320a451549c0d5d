"""Role normalisation and turn-pair cutting on hand-made conversations."""

from __future__ import annotations

from empathy_study.corpus._conversation import Conversation, Message
from empathy_study.corpus._pairs import cut_pairs, normalise_roles, pair_id


def msg(role: str, text: str, key: str | None = None) -> Message:
    return Message(role=role, content=text, key=key)


def conversation(messages: list[Message]) -> Conversation:
    return Conversation(source="t", conversation_key="c", conversation_id="c", user_id="u", model="m", messages=messages)


def test_regenerated_answers_keep_the_last_and_system_is_dropped():
    messages = [msg("system", "be nice"), msg("assistant", "hello"), msg("user", "p"), msg("assistant", "first"),
                msg("assistant", "second"), msg("user", "r")]
    kept, repairs, problem = normalise_roles(messages)
    assert problem is None
    assert [m.content for m in kept] == ["p", "second", "r"]
    assert repairs == {"system_message_dropped": 1, "leading_assistant_message_dropped": 1,
                       "regenerated_response_dropped": 1, "unanswered_last_prompt": 1}


def test_two_user_messages_in_a_row_or_unknown_roles_are_malformed():
    assert normalise_roles([msg("user", "a"), msg("user", "b")])[2] == "consecutive_user_messages"
    assert normalise_roles([msg("user", "a"), msg("narrator", "b")])[2] == "unknown_role"


def test_cut_pairs_context_and_terminal():
    messages = [msg("user", "p1", "k1"), msg("assistant", "r1"), msg("user", "p2", "k2"), msg("assistant", "r2")]
    first, terminal = cut_pairs(conversation(messages), messages, "en")
    assert (first.prompt, first.response, first.reply, first.prev_response) == ("p1", "r1", "p2", "")
    assert (terminal.prompt, terminal.response, terminal.reply, terminal.prev_response) == ("p2", "r2", None, "r1")
    assert (first.prev_prompt, terminal.prev_prompt) == ("", "p1")  # the preceding exchange: p1 → r1
    assert (first.turn_index, terminal.turn_index) == (1, 2)
    assert first.pair_id == pair_id("t", "c", "k1")


def test_pair_id_falls_back_to_turn_index_without_message_keys():
    messages = [msg("user", "p1"), msg("assistant", "r1"), msg("user", "p2"), msg("assistant", "r2")]
    pairs = cut_pairs(conversation(messages), messages, None)
    assert [p.pair_id for p in pairs] == [pair_id("t", "c", "1"), pair_id("t", "c", "2")]
