"""Against a real Label Studio server (one per test session, shared): push, annotate as two users,
pull, agree, re-push, edit, delete, review mode kept apart from gold, skips, foreign fields, and a
server that cannot be reached. Each test makes its own study (its own projects): any order passes."""

from __future__ import annotations

import itertools
import json
import uuid

import pandas as pd
import pytest
from typer.testing import CliRunner

from empathy_study import annotation, judge
from empathy_study.study.cli import app
from tests.judge.conftest import sample_frame
from tests.judge.test_log import record

runner = CliRunner()
N_PAIRS = 20
_names = itertools.count()


@pytest.fixture(scope="module")
def annotators(label_studio_client):
    """Two annotators (created once per module; e-mails unique on the shared server)."""
    tag = uuid.uuid4().hex[:8]
    return [label_studio_client.users.create(email=f"rater{i}-{tag}@tests.local", username=f"rater{i}-{tag}",
                                             password="pw-rater-123").id for i in (1, 2)]


@pytest.fixture
def study(tmp_path, label_studio_env):
    """A study of N_PAIRS pairs, all in the audit sample, judged by two judges; its own project names."""
    root = tmp_path / "study"
    root.mkdir()
    prompts = [f"I feel lonely tonight, day {i}" for i in range(N_PAIRS)]
    sample_frame(prompts).to_parquet(root / "sample.parquet")
    (root / "study.toml").write_text(
        f'[study]\nname = "ls-{next(_names)}-{uuid.uuid4().hex[:8]}"\n[annotation]\naudit_rate = 1.0\noverlap = 2\n'
        '[[judges]]\nname = "judgeA"\nmodel = "openai/a"\n[[judges]]\nname = "judgeB"\nmodel = "openai/b"\n')
    versions = {c: r.version for c, r in judge.study_rubrics(["prompt", "reply"]).items()}
    records = [record(f"p{i:03d}").model_copy(update={
        "construct": construct, "judge": name, "model": f"openai/{name[-1].lower()}", "prompt_version": versions[construct],
        "score": 1 + (i + offset) % 7, "rationale": f"SECRET-RATIONALE-{name}"})
        for i in range(N_PAIRS) for construct in versions for name, offset in (("judgeA", 0), ("judgeB", 1))]
    judge.JudgmentLog(root / "judgments.jsonl").append(records)
    return root


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def project_ids(study_dir) -> dict:
    return json.loads((study_dir / "annotation.json").read_text())["projects"]


def annotate(client, task_id, user, construct, score, cancelled=False):
    result = [] if cancelled else [{"from_name": construct, "to_name": "dialogue", "type": "choices",
                                    "value": {"choices": [str(score)]}}]
    return client.annotations.create(id=task_id, result=result, completed_by=user, was_cancelled=cancelled)


def tasks_by_pair(client, project) -> list:
    return sorted(client.tasks.list(project=project, fields="all"), key=lambda t: t.data["pair_id"])


def label_all(client, study, annotators) -> None:
    """Both annotators label every blind task: the second disagrees by one point on every third pair."""
    assert invoke("annotate", "push", study).exit_code == 0
    ids = project_ids(study)
    for construct in ("empathy", "attachment"):
        for task in client.tasks.list(project=ids[f"{construct}-blind"], fields="all"):
            index = int(task.data["pair_id"][1:])
            annotate(client, task.id, annotators[0], construct, 1 + index % 7)
            annotate(client, task.id, annotators[1], construct, 1 + (index + (index % 3 == 0)) % 7)


def test_push_creates_blind_projects_without_any_judge_field_and_repush_adds_nothing(study, label_studio_client):
    client = label_studio_client
    result = invoke("annotate", "push", study)
    assert result.exit_code == 0, result.output
    ids = project_ids(study)
    assert set(ids) == {"empathy-blind", "attachment-blind"}
    for key, project in ids.items():
        tasks = list(client.tasks.list(project=project, fields="all"))
        assert len(tasks) == N_PAIRS
        for task in tasks:
            assert set(task.data) == annotation.BLIND_TASK_KEYS
            assert not task.predictions
            text = json.dumps(task.data)
            assert "judge" not in text and "SECRET-RATIONALE" not in text and "score" not in text
        config = client.projects.get(id=project).label_config
        assert f'name="{key.split("-")[0]}"' in config  # the control is named after its construct
    attachment_task = list(client.tasks.list(project=ids["attachment-blind"], fields="all"))[0]
    roles = [turn["role"] for turn in attachment_task.data["dialogue"]]
    assert roles == ["User", "User (next message)"]  # attachment raters never see the response
    assert invoke("annotate", "push", study).exit_code == 0
    for project in project_ids(study).values():
        assert len(list(client.tasks.list(project=project))) == N_PAIRS


def test_two_annotators_pull_agree_export_then_edits_and_deletions(study, label_studio_client, annotators):
    client = label_studio_client
    label_all(client, study, annotators)
    result = invoke("annotate", "pull", study)
    assert result.exit_code == 0, result.output
    labels = pd.read_parquet(study / "labels.parquet")
    assert list(labels.columns) == list(annotation.LABEL_COLUMNS)
    assert len(labels) == 2 * 2 * N_PAIRS and set(labels["mode"]) == {"blind"}
    assert labels["annotator"].nunique() == 2 and not labels["annotator"].str.contains("@").any()
    agreed = invoke("agree", study)
    assert agreed.exit_code == 0, agreed.output
    report = json.loads((study / "agreement.json").read_text())
    kinds = {p["kind"] for p in report["empathy"]["pairs"]}
    assert {"human-human", "judge-human", "panel-human", "judge-judge"} <= kinds
    human = [p for p in report["empathy"]["pairs"] if p["kind"] == "human-human"][0]
    assert human["n"] == N_PAIRS and human["mae"] == pytest.approx(sum(
        abs((1 + i % 7) - (1 + (i + (i % 3 == 0)) % 7)) for i in range(N_PAIRS)) / N_PAIRS)
    exported = invoke("export", study)
    assert exported.exit_code == 0, exported.output
    pairs = pd.read_parquet(study / "scored_pairs.parquet")
    assert pairs["empathy_gold"].notna().all() and (pairs["gold_prob"] == 1.0).all()

    task = tasks_by_pair(client, project_ids(study)["empathy-blind"])[0]
    first, second = task.annotations[0], task.annotations[1]
    client.annotations.update(id=first["id"], result=[{"from_name": "empathy", "to_name": "dialogue",
                                                       "type": "choices", "value": {"choices": ["7"]}}])
    client.annotations.delete(id=second["id"])
    assert invoke("annotate", "pull", study).exit_code == 0
    labels = pd.read_parquet(study / "labels.parquet")
    mine = labels[(labels["pair_id"] == task.data["pair_id"]) & (labels["construct"] == "empathy")]
    assert mine["score"].tolist() == [7] and mine["annotation_id"].tolist() == [first["id"]]


def test_review_labels_never_reach_gold(study, label_studio_client, annotators):
    client = label_studio_client
    label_all(client, study, annotators)
    assert invoke("annotate", "pull", study).exit_code == 0 and invoke("export", study).exit_code == 0
    result = invoke("annotate", "push", study, "--review")
    assert result.exit_code == 0, result.output
    review = project_ids(study)["empathy-review"]
    tasks = list(client.tasks.list(project=review, fields="all"))
    assert all(len(t.predictions) == 2 for t in tasks)  # one per judge, model_version = judge@prompt version
    versions = {getattr(p, "model_version", None).split("@")[0] for p in tasks[0].predictions}
    assert versions == {"judgeA", "judgeB"}
    assert invoke("annotate", "push", study, "--review").exit_code == 0  # idempotent: no duplicate predictions
    assert all(len(t.predictions) == 2 for t in client.tasks.list(project=review, fields="all"))
    target = sorted(tasks, key=lambda t: t.data["pair_id"])[5]
    annotate(client, target.id, annotators[0], "empathy", 7)
    before = pd.read_parquet(study / "scored_pairs.parquet").set_index("pair_id").loc[target.data["pair_id"], "empathy_gold"]
    assert invoke("annotate", "pull", study).exit_code == 0
    labels = pd.read_parquet(study / "labels.parquet")
    assert (labels["mode"] == "review").sum() == 1
    assert invoke("export", study).exit_code == 0
    after = pd.read_parquet(study / "scored_pairs.parquet").set_index("pair_id").loc[target.data["pair_id"], "empathy_gold"]
    assert after == before  # the review label changed nothing in the gold column


def test_skips_foreign_fields_and_requeue(study, label_studio_client, annotators):
    client = label_studio_client
    label_all(client, study, annotators)
    task = tasks_by_pair(client, project_ids(study)["attachment-blind"])[1]
    client.annotations.delete(id=task.annotations[1]["id"])
    annotate(client, task.id, annotators[1], "attachment", 0, cancelled=True)
    other = tasks_by_pair(client, project_ids(study)["attachment-blind"])[2]
    client.annotations.update(id=other.annotations[0]["id"], result=[
        {"from_name": "attachment", "to_name": "dialogue", "type": "choices", "value": {"choices": ["3"]}},
        {"from_name": "sentiment", "to_name": "dialogue", "type": "choices", "value": {"choices": ["pos"]}}])
    pulled = invoke("annotate", "pull", study)
    assert "1 audit task(s) were skipped" in pulled.output and "ignored 1 result(s)" in pulled.output
    status = invoke("annotate", "status", study)
    assert status.exit_code == 0 and "attachment" in status.output and "skipped" in status.output
    assert "re-queued 1" in invoke("annotate", "requeue", study).output
    assert not any(a.get("was_cancelled") for a in client.tasks.get(id=task.id).annotations)


def test_server_down_or_wrong_token_is_one_clear_line(study, label_studio, monkeypatch):
    assert invoke("annotate", "push", study).exit_code == 0 and invoke("annotate", "pull", study).exit_code == 0
    labels_before = (study / "labels.parquet").read_bytes()
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    for command in ("pull", "status", "push"):
        down = runner.invoke(app, ["annotate", command, str(study)])
        assert down.exit_code == 1 and "cannot reach Label Studio at http://127.0.0.1:9" in down.output, down.output
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "0" * 40)
    refused = runner.invoke(app, ["annotate", "pull", str(study)])
    assert refused.exit_code == 1 and "refused the API key" in refused.output
    assert (study / "labels.parquet").read_bytes() == labels_before  # nothing pulled earlier was lost


def test_rejected_label_config_shows_labelstudios_message(label_studio_client, monkeypatch):
    import empathy_study.annotation.labelstudio as labelstudio_module

    broken = "<View><Choices name='x' toName='missing'/></View>"
    monkeypatch.setattr(labelstudio_module, "label_config", lambda rubric, review=False: broken)
    projects = annotation.LabelStudioProjects(label_studio_client, "broken", {})
    with pytest.raises(annotation.AnnotationError, match="rejected the label config"):
        projects.ensure(judge.load_rubric("empathy"), "blind", 1, 100)
