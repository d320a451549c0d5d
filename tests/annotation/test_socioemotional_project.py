"""The binary socio-emotional project against a real Label Studio: drawn by the toolkit, pushed blind,
answered by a separate annotator account through the API, pulled back into the audit table."""

from __future__ import annotations

import json
import uuid

import pandas as pd
import pytest

from empathy_study import corpus, judge
from empathy_study.annotation import socioemotional as binary
from empathy_study.study import Workspace, population


def _frame(tmp_path, keep_transactional: bool = True) -> Workspace:
    prompts = ["I feel so lonely since she left", "fix this SQL query", "thank you, that helps a lot",
               "you are my best friend", "write a poem about autumn", "what is 2+2"] * 3
    pairs = pd.DataFrame({
        "pair_id": [f"p{i:02d}" for i in range(len(prompts))], "conversation_id": [f"c{i}" for i in range(len(prompts))],
        "user_id": "u", "model": "m", "turn_index": 2, "timestamp": None, "prompt": prompts, "response": "answer",
        "reply": "ok", "prev_response": "earlier answer", "prev_prompt": "my mom is sick and I am scared",
        "language": "en", "country": None,
    })
    root = tmp_path / f"frame-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    pairs.to_parquet(root / corpus.TURN_PAIRS_FILE)
    (root / "funnel.json").write_text(json.dumps({"source": "sharegpt", "stages": [], "rejected": {},
                                                  "config": {"keep_transactional": keep_transactional}}))
    (root / "study.toml").write_text(f'[study]\nname = "audit-{root.name}"\n')
    return Workspace(root)


def test_an_audit_frame_must_be_unfiltered(tmp_path):
    with pytest.raises(population.StudyError, match="keep_transactional"):
        population.draw_filter_audit(_frame(tmp_path, keep_transactional=False), {"own2": 2})


def test_push_answer_pull(tmp_path, label_studio_client, label_studio_env):
    ws = _frame(tmp_path)
    drawn = population.draw_filter_audit(ws, {"own0-context2": 4, "own1-context2+": 3, "own2": 2}, seed=1)
    assert len(drawn.sample) >= 5
    pushed = population.push_filter_audit(ws)
    assert pushed["new_tasks"] == len(drawn.sample)
    assert population.push_filter_audit(ws)["new_tasks"] == 0  # idempotent

    tasks = list(label_studio_client.tasks.list(project=pushed["project_id"], fields="all"))
    for task in tasks:  # blind: the texts and the pair's id, never a stratum or a filter's decision
        assert set(task.data) == binary.TASK_KEYS
        roles = [m["role"] for m in task.data["dialogue"]]
        assert roles[:2] == ["User (earlier)", "Assistant (earlier)"]
    project = label_studio_client.projects.get(id=pushed["project_id"])
    assert 'choice="single"' in project.label_config and 'required="true"' in project.label_config

    annotator = label_studio_client.users.create(email=f"ai-{uuid.uuid4().hex[:6]}@tests.local",
                                                 username=f"ai-{uuid.uuid4().hex[:6]}", password=uuid.uuid4().hex)
    answers = {}
    for i, task in enumerate(tasks):
        if i == 0:  # a skipped task is counted, never a label
            label_studio_client.annotations.create(id=task.id, result=[], completed_by=annotator.id, was_cancelled=True)
            continue
        answers[task.data["pair_id"]] = "lonely" in task.data["dialogue"][2]["content"] or i % 2 == 0
        clicked = [{"from_name": binary.CONTROL, "to_name": "dialogue", "type": "choices",  # what a click stores
                    "value": {"choices": [str(int(answers[task.data["pair_id"]]))]}}]
        label_studio_client.annotations.create(id=task.id, result=clicked, completed_by=annotator.id)
    pulled = population.pull_filter_audit(ws)
    assert pulled.labelled == len(answers) and pulled.skipped == 1 and pulled.unparsed == 0
    written = pd.read_parquet(ws.root / population.AUDIT_LABELS_FILE)  # what `audit pull` leaves for measuring
    assert dict(zip(written["pair_id"], written["socio_emotional"])) == answers


def test_the_label_config_is_the_rubric():
    rubric = judge.load_rubric("socioemotional")
    config = binary.label_config(rubric)
    assert rubric.levels[1].split(":")[0] in config and 'alias="1"' in config and 'alias="0"' in config
    with pytest.raises(binary.AnnotationError):
        binary.label_config(judge.load_rubric("empathy"))
