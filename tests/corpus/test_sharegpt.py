"""The ShareGPT reader: the bundled real corpus end to end, and the faults a user's file may have."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from empathy_study import corpus


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    out = tmp_path_factory.mktemp("sharegpt")
    funnel = corpus.Funnel("sharegpt")
    corpus.build_corpus(corpus.read_source("sharegpt", [], funnel), out, corpus.CorpusConfig(), funnel)
    return out, funnel.to_dict()


def test_bundled_corpus_reads_every_whole_record_and_reports_the_cut(bundled):
    _, funnel = bundled
    assert funnel["input"]["whole_records"] == 17_671
    assert funnel["input"]["truncated"] is True
    stages = {s["name"]: s["rows"] for s in funnel["stages"]}
    assert stages["records_read"] == 17_671
    # 9,460 conversations; 3 consist only of empty parts. 123 ids occur twice.
    assert stages["conversations"] == 9_457
    assert funnel["rejected"]["duplicate_record_id"] == 123
    assert funnel["rejected"]["empty_conversation"] == 3
    # Parts that begin with an assistant turn after a part that ended with one are regenerations.
    assert funnel["repairs"]["regenerated_response_dropped"] > 6_000


def test_bundled_corpus_survivors(bundled):
    out, funnel = bundled
    pairs = pd.read_parquet(out / corpus.TURN_PAIRS_FILE)
    stages = {s["name"]: s["rows"] for s in funnel["stages"]}
    assert stages["classifier"] == len(pairs) < stages["deduplicated"]  # the default build ends with the classifier
    assert 300 < len(pairs) < 2_000, "ShareGPT is mostly tasks: a small personal remainder survives"
    # issue 23: 205 of the cheap pass's 1,972 candidates (10.4 %) carry a code fence; the kept pairs < 1 %
    assert corpus.has_fence(pairs).mean() < 0.01
    assert pairs["pair_id"].is_unique
    assert (pairs["model"] == "chatgpt").mean() > 0.95
    assert pairs[["prompt", "response", "reply"]].apply(lambda c: c.str.strip().str.len() > 0).all().all()
    corpus.validate_turn_pairs(pairs, "turn_pairs.parquet")


def test_parts_are_joined_in_suffix_order(tmp_path):
    records = [
        {"id": "conv_7", "conversations": [{"from": "human", "value": "I am so sad and lonely lately."},
                                            {"from": "gpt", "value": "I'm sorry to hear that. What happened?"}]},
        {"id": "conv_0", "conversations": [{"from": "human", "value": "Hi, how are you today?"},
                                            {"from": "gpt", "value": "I'm well, thank you for asking!"}]},
    ]
    path = tmp_path / "parts.json"
    path.write_text(json.dumps(records))
    funnel = corpus.Funnel("sharegpt")
    out = tmp_path / "out"
    corpus.build_corpus(corpus.read_source("sharegpt", [str(path)], funnel), out, corpus.CorpusConfig(), funnel)
    pairs = pd.read_parquet(out / corpus.TURN_PAIRS_FILE)
    assert len(pairs) == 1
    pair = pairs.iloc[0]
    assert pair.prompt == "Hi, how are you today?" and pair.reply == "I am so sad and lonely lately."
    assert pair.conversation_id == "conv"


def test_truncated_file_keeps_whole_records(tmp_path):
    record = {"id": "x_0", "conversations": [{"from": "human", "value": "hello"}, {"from": "gpt", "value": "hi"}]}
    text = json.dumps([record, {**record, "id": "y_0"}])
    path = tmp_path / "cut.json"
    path.write_text(text[:-25])
    funnel = corpus.Funnel("sharegpt")
    conversations = list(corpus.read_source("sharegpt", [str(path)], funnel))
    assert [c.conversation_id for c in conversations] == ["x"]
    assert funnel.notes["input"]["truncated"] is True and funnel.notes["input"]["whole_records"] == 1


def test_json_lines_are_read(tmp_path):
    lines = [json.dumps({"id": f"c{i}_0", "conversations": [{"from": "human", "value": "hi"}]}) for i in range(3)]
    path = tmp_path / "lines.json"
    path.write_text("\n".join(lines))
    assert len(list(corpus.read_source("sharegpt", [str(path)], corpus.Funnel("sharegpt")))) == 3


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty"),
        (b"\xff\xfe not json", "not valid UTF-8 JSON after record 0"),
        (b'[{"id": "a_0"} oops', "not valid UTF-8 JSON"),
        (b'[{"id": "a_0", "conversations": []}, {"id": "b_0", "conversations": [{"value": "caf\xe9"}]}]',
         "not valid UTF-8 JSON after record 1: lexical error: invalid bytes in UTF8 string"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(corpus.CorpusError, match=message):
        list(corpus.read_source("sharegpt", [str(path)], corpus.Funnel("sharegpt")))


def test_records_without_id_or_turns_are_counted_not_dropped(tmp_path):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps([{"conversations": []}, {"id": "a_0"}, {"id": "b_0", "conversations": []}]))
    funnel = corpus.Funnel("sharegpt")
    assert list(corpus.read_source("sharegpt", [str(path)], funnel)) == []
    assert funnel.rejected == {"record_without_id": 1, "record_without_conversations": 1, "empty_conversation": 1}
