"""Rubrics: versioned data, distinct examples, and attachment blind to the response by default."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest

from empathy_study import judge
from empathy_study.judge import _rubric


@pytest.mark.parametrize("construct", judge.CONSTRUCTS)
def test_rubric_is_versioned_by_its_bytes_and_complete(construct):
    rubric = judge.load_rubric(construct)
    data = resources.files("empathy_study.prompts").joinpath(f"{construct}.toml").read_bytes()
    assert len(rubric.version) == 16 and rubric.version != hashlib.sha256(data).hexdigest()[:16]
    edited = data.replace(b"Pick the single level", b"Choose the single level")
    assert edited != data and _rubric.prompt_version(edited, rubric) != rubric.version
    assert sorted(rubric.levels) == list(range(1, 8))
    assert sorted(e.level for e in rubric.examples) == list(range(1, 8))
    texts = [(e.prompt, e.response, e.reply) for e in rubric.examples]
    assert len(set(texts)) == 7 and len({t[0] for t in texts}) == 7  # every example its own situation


def test_the_version_changes_when_the_prompt_template_changes(monkeypatch):
    """Cached judgments are reused by version: a changed template must not reuse them."""
    data = resources.files("empathy_study.prompts").joinpath("empathy.toml").read_bytes()
    rubric = judge.load_rubric("empathy")
    assert _rubric.prompt_version(data, rubric) == rubric.version
    monkeypatch.setitem(_rubric.LABELS, "response", "AI's answer")
    assert _rubric.prompt_version(data, rubric) != rubric.version
    monkeypatch.undo()
    monkeypatch.setattr(_rubric, "MAX_CHARS", 800)
    assert _rubric.prompt_version(data, rubric) != rubric.version


def test_attachment_raters_do_not_see_the_response_by_default():
    rubric = judge.load_rubric("attachment")
    assert rubric.context == ["prompt", "reply"]
    messages = judge.render_messages(rubric, {"prompt": "P-TEXT", "response": "R-TEXT", "reply": "Y-TEXT"})
    text = " ".join(m["content"] for m in messages)
    assert "P-TEXT" in text and "Y-TEXT" in text and "R-TEXT" not in text


def test_empathy_raters_see_prompt_and_response():
    messages = judge.render_messages(judge.load_rubric("empathy"), {"prompt": "P-TEXT", "response": "R-TEXT",
                                                                   "reply": "Y-TEXT"})
    user = messages[-1]["content"]
    assert "P-TEXT" in user and "R-TEXT" in user and "Y-TEXT" not in user


def test_opting_in_to_show_the_response_changes_the_version():
    default = judge.load_rubric("attachment")
    shown = judge.load_rubric("attachment", ["prompt", "response", "reply"])
    assert shown.version != default.version and shown.version.endswith("+prompt-response-reply")


def test_score_schema_is_an_enum_of_1_to_7():
    schema = judge.Judgment.model_json_schema()
    assert schema["properties"]["score"]["enum"] == [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(ValueError):
        judge.Judgment(rationale="x", score=9)
