"""The WildChat path end to end on a fixture with the published schema, one conversation per filter."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from empathy_study import corpus
from tests.support.wildchat import conversation_row, write_shard

PERSONAL_A = [
    "I've been feeling really lonely since I moved to a new city.",
    "I'm sorry you're going through that. Moving away from everyone you know is hard. What do you miss most?",
    "Mostly my best friend. We used to talk every day.",
    "That sounds like a close bond. Have you two been able to stay in touch since the move?",
    "Thank you for listening, honestly you are so kind.",
    "You're welcome. I'm glad to be here whenever you want to talk.",
]


def fixture_rows() -> dict[str, dict]:
    """Each key names what the conversation is there to exercise."""
    return {
        "kept_lonely": conversation_row(PERSONAL_A, conversation_hash="a" * 32),
        "kept_breakup": conversation_row([
            "My girlfriend broke up with me yesterday and I can't stop crying.",
            "I'm really sorry. Breakups hurt, especially when they're fresh. Do you want to talk about it?",
            "I just feel so lost and lonely without her.",
            "Feeling lost after a breakup is very common. Be gentle with yourself these days.",
        ], model="gpt-4-0314", hashed_ip="ip-2"),
        "kept_no_ip": conversation_row([
            "Hi! How are you today?",
            "I'm doing well, thanks for asking! How about you?",
            "I'm a bit tired after work, to be honest.",
            "That's understandable after a long day. Anything nice planned for the evening?",
        ], hashed_ip=None),
        "french": conversation_row([
            "Je me sens seul ce soir.", "Je suis désolé de l'entendre.", "Merci, tu es gentil.", "Avec plaisir.",
        ], language="French"),
        "toxic": conversation_row(["I feel sad.", "I'm sorry.", "You are so kind.", "Thanks."], toxic=True),
        "flagged": conversation_row(["I feel sad today.", "I'm sorry.", "You are so sweet.", "Thanks."], flagged=True),
        "redacted": conversation_row(["I feel so sad.", "I'm sorry.", "You are so kind.", "Thanks."], redacted=True),
        "single_turn": conversation_row([
            "I feel so anxious about my exam tomorrow.",
            "It's normal to feel anxious before an exam. You've prepared for this.",
        ]),
        "kept_continuing": conversation_row([
            "My dog died last week and the house feels so empty.",
            "I'm so sorry. Losing a companion like that leaves a gap in every routine.",
            "Twelve years together.",
            "That is a long time to share with someone.",
            "It is. Anyway, thanks for that.",
        ], hashed_ip="ip-3", conversation_hash="c" * 32),
        "code": conversation_row([
            "My code keeps failing:\n```python\nprint(x)\n```",
            "You need to define x before printing it.",
            "Thanks, and how do I loop over a list?",
            "Use a for loop over the list.",
        ]),
        "task": conversation_row([
            "Write an essay about the French revolution.",
            "The French Revolution began in 1789 and transformed France.",
            "Now summarize it in three bullet points.",
            "1789 · the monarchy falls · the republic is born.",
        ]),
        "malformed": conversation_row(
            ["I feel sad.", "Are you there?", "I'm here.", "Thanks, you are so kind."],
            roles=["user", "user", "assistant", "user"],
        ),
        "empty_response": conversation_row([
            "I miss my mom so much.", "", "Are you there?", "Yes, I'm here with you.",
        ]),
        "duplicate_of_lonely": conversation_row(PERSONAL_A, conversation_hash="a" * 32),
        "prompt_too_long": conversation_row([
            "I feel so sad. " * 170,
            "I'm sorry you feel this way.",
            "Thanks for hearing me out, I'm so sad today.",
            "Of course, I'm here for you.",
        ]),
    }


def build(tmp_path: Path, rows: list[dict], shards: int = 1, name: str = "study") -> tuple[Path, dict]:
    data = tmp_path / f"{name}-data"
    data.mkdir()
    for i in range(shards):
        write_shard(rows[i::shards], data / f"train-{i:05d}-of-{shards:05d}.parquet")
    out = tmp_path / name
    funnel = corpus.Funnel("wildchat")
    conversations = corpus.read_source("wildchat", [str(data)], funnel)
    corpus.build_corpus(conversations, out, corpus.CorpusConfig(), funnel)
    return out, funnel.to_dict()


def test_exact_funnel_and_only_clean_personal_conversations_kept(tmp_path):
    rows = fixture_rows()
    out, funnel = build(tmp_path, list(rows.values()))
    stages = {s["name"]: s["rows"] for s in funnel["stages"]}
    assert stages == {
        "records_read": 15, "conversations": 15, "english": 14, "non_toxic": 12, "not_redacted": 11,
        "well_formed": 10, "multi_turn": 9, "turn_pairs": 12, "non_empty": 11, "prefilter": 9,
        "length_bounds": 8, "deduplicated": 6, "classifier": 6,
    }
    assert funnel["rejected"] == {
        "not_english": 1, "toxic": 2, "redacted": 1, "consecutive_user_messages": 1, "single_turn": 1,
        "empty_message": 1, "prefilter_code": 1, "prefilter_task": 1, "prompt_too_long": 1,
        "duplicate_pair": 2, "classifier_code_response": 0, "classifier_not_socioemotional": 0,
    }
    assert funnel["repairs"] == {"user_id_from_conversation": 1, "unanswered_last_prompt": 1}

    pairs = pd.read_parquet(out / corpus.TURN_PAIRS_FILE)
    kept_hashes = {cid.split("-")[0] for cid in pairs["conversation_id"]}
    expected = {rows[k]["conversation_hash"] for k in ("kept_lonely", "kept_breakup", "kept_no_ip", "kept_continuing")}
    assert kept_hashes == expected
    assert len(pairs) == 6 and pairs["pair_id"].is_unique


def test_a_continuing_turn_is_judged_with_its_preceding_exchange(tmp_path):
    """"Twelve years together." → "It is." holds nothing personal of its own: it is a candidate
    because the exchange before it was about the user's dead dog, and only because of that."""
    out, _ = build(tmp_path, [fixture_rows()["kept_continuing"]])
    pairs = pd.read_parquet(out / corpus.TURN_PAIRS_FILE).sort_values("turn_index")
    second = pairs.iloc[1]
    assert second.prompt == "Twelve years together." and second.prev_prompt.startswith("My dog died")
    assert corpus.prefilter_reason(second.prompt, second.response, second.reply) == "prefilter_impersonal"
    assert corpus.prefilter_reason(second.prompt, second.response, second.reply, second.prev_prompt,
                                   second.prev_response) is None


def test_turn_pair_columns_and_context(tmp_path):
    rows = fixture_rows()
    out, _ = build(tmp_path, [rows["kept_lonely"], rows["kept_no_ip"]])
    pairs = pd.read_parquet(out / corpus.TURN_PAIRS_FILE).sort_values(["conversation_id", "turn_index"])
    assert set(corpus.TURN_PAIR_COLUMNS) | set(corpus.OPTIONAL_TURN_PAIR_COLUMNS) <= set(pairs.columns)
    lonely = pairs[pairs["conversation_id"].str.startswith("a" * 32)]
    first, second = lonely.iloc[0], lonely.iloc[1]
    assert (first.prompt, first.response, first.reply) == tuple(PERSONAL_A[:3])
    assert first.prev_response == "" and first.turn_index == 1
    assert second.prev_response == PERSONAL_A[1] and second.turn_index == 2
    assert first.prev_prompt == "" and second.prev_prompt == PERSONAL_A[0]
    assert first.user_id == "ip-1" and first.model == "gpt-3.5-turbo-0613"
    no_ip = pairs[~pairs["conversation_id"].str.startswith("a" * 32)].iloc[0]
    assert no_ip.user_id == no_ip.conversation_id  # no hashed_ip: the conversation stands in for the user
    assert str(first.timestamp.tz) == "UTC"


def test_terminal_pairs_are_kept_apart(tmp_path):
    out, funnel = build(tmp_path, list(fixture_rows().values()))
    terminal = pd.read_parquet(out / corpus.TERMINAL_PAIRS_FILE)
    assert "reply" not in terminal.columns
    assert funnel["terminal_pairs"]["cut"] == 9
    assert funnel["terminal_pairs"]["kept"] == len(terminal) == 6
    assert "I feel so anxious about my exam tomorrow." in set(terminal["prompt"])  # the single-turn one


def test_pair_ids_do_not_depend_on_shards_or_order(tmp_path):
    rows = list(fixture_rows().values())
    one, _ = build(tmp_path, rows, shards=1, name="one")
    three, _ = build(tmp_path, rows[::-1], shards=3, name="three")
    a = pd.read_parquet(one / corpus.TURN_PAIRS_FILE).set_index("pair_id").sort_index()
    b = pd.read_parquet(three / corpus.TURN_PAIRS_FILE).set_index("pair_id").sort_index()
    pd.testing.assert_frame_equal(a, b)


def test_existing_study_files_are_left_alone(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    (out / "study.toml").write_text("# mine\n")
    (out / "notes.txt").write_text("keep me")
    data = tmp_path / "data"
    data.mkdir()
    write_shard([fixture_rows()["kept_lonely"]], data / "a.parquet")
    funnel = corpus.Funnel("wildchat")
    corpus.build_corpus(corpus.read_source("wildchat", [str(data)], funnel), out, corpus.CorpusConfig(), funnel)
    assert (out / "notes.txt").read_text() == "keep me" and (out / "study.toml").read_text() == "# mine\n"
    assert not list(out.glob(".*"))  # no temporary files left behind


@pytest.mark.parametrize(
    "drop, message",
    [("toxic", "missing column 'toxic'"), ("conversation_hash", "missing column 'conversation_hash'")],
)
def test_missing_column_names_column_and_file(tmp_path, drop, message):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.support.wildchat import SCHEMA

    table = pa.Table.from_pylist([fixture_rows()["kept_lonely"]], schema=SCHEMA).drop_columns([drop])
    path = tmp_path / "shard.parquet"
    pq.write_table(table, path)
    with pytest.raises(corpus.CorpusError, match=message) as info:
        list(corpus.read_source("wildchat", [str(path)], corpus.Funnel("wildchat")))
    assert str(path) in str(info.value)


def test_wrong_type_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "conversation_hash": ["x"], "model": ["m"], "timestamp": pa.array([0], pa.timestamp("us", tz="UTC")),
        "conversation": ["not a list"], "language": ["English"], "toxic": [False], "redacted": [False],
    })
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    with pytest.raises(corpus.CorpusError, match="column 'conversation' has type string"):
        list(corpus.read_source("wildchat", [str(path)], corpus.Funnel("wildchat")))


def test_truncated_shard_is_a_clear_error(tmp_path):
    path = write_shard(list(fixture_rows().values()), tmp_path / "cut.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(corpus.CorpusError, match="not a readable parquet file"):
        list(corpus.read_source("wildchat", [str(path)], corpus.Funnel("wildchat")))


def test_inputs_empty_glob_and_missing_path(tmp_path):
    with pytest.raises(corpus.CorpusError, match="matches no files"):
        corpus.resolve_inputs([str(tmp_path / "*.parquet")])
    with pytest.raises(corpus.CorpusError, match="input not found"):
        corpus.resolve_inputs([str(tmp_path / "nope.parquet")])
    with pytest.raises(corpus.CorpusError, match="no .parquet files in directory"):
        corpus.resolve_inputs([str(tmp_path)])


def test_funnel_json_is_consistent(tmp_path):
    """Every stage loses exactly the rows its rejection reasons count."""
    out, funnel = build(tmp_path, list(fixture_rows().values()))
    json.dumps(funnel)  # serialisable as written to funnel.json
    rows = [s["rows"] for s in funnel["stages"] if s["unit"] == "turn_pairs"]
    assert rows == sorted(rows, reverse=True)
