"""Syncing with a real Label Studio server (SDK 2.x): projects, tasks, predictions, annotations.

One project per construct and mode: `<study> · empathy · blind`, `<study> · attachment · blind`,
and — only when review is asked for — `… · review`. Blind and review never share a project: the
free edition shows predictions to every annotator, and a blind project never receives one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # a type only: judge imports this package for its agreement figures
    from empathy_study.judge import Rubric

from ._tasks import LABEL_COLUMNS, control_name, label_config, prediction_payload, pseudonym, task_payload


class AnnotationError(Exception):
    """Label Studio cannot be used as configured (down, wrong token, rejected config): one line."""


def _api_message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        return json.dumps(body.get("validation_errors") or body.get("detail") or body)[:400]
    return str(body or error)[:400]


def connect(url: str, api_key: str | None):
    """A client for the server at `url`, after checking it answers and accepts the key."""
    from label_studio_sdk import LabelStudio

    if not api_key:
        raise AnnotationError("set LABEL_STUDIO_API_KEY (the API token; `make labelstudio` prints it)")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=10) as answer:
            healthy = answer.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as exc:
        raise AnnotationError(f"cannot reach Label Studio at {url} ({getattr(exc, 'reason', exc)}): "
                              "is it running? start it with `make labelstudio`, or set LABEL_STUDIO_URL") from exc
    if not healthy:
        raise AnnotationError(f"Label Studio at {url} is not healthy (GET /health did not answer 200)")
    client = LabelStudio(base_url=url.rstrip("/"), api_key=api_key)
    try:
        client.users.whoami()
    except Exception as exc:  # the SDK raises ApiError for 401/403
        if getattr(exc, "status_code", None) in (401, 403):
            raise AnnotationError(
                f"Label Studio at {url} refused the API key in LABEL_STUDIO_API_KEY: check the token (a legacy "
                "token needs LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true at the server's first boot)") from exc
        raise AnnotationError(f"Label Studio at {url} answered an error: {_api_message(exc)}") from exc
    return client


@dataclass
class PushResult:
    project: str
    project_id: int
    created: bool
    new_tasks: int
    existing_tasks: int
    new_predictions: int = 0


@dataclass
class PulledLabels:
    labels: pd.DataFrame
    skipped: Counter = field(default_factory=Counter)  # project → skipped (cancelled) annotations
    foreign: int = 0  # results from controls that are not ours: ignored
    unparsed: int = 0  # our control without a 1..7 choice


class LabelStudioProjects:
    def __init__(self, client, study_name: str, known: dict[str, int]):
        self.client = client
        self.study_name = study_name
        self.known = dict(known)  # project key → id, remembered in DIR/annotation.json

    @staticmethod
    def key(construct: str, mode: str) -> str:
        return f"{construct}-{mode}"

    def _find(self, key: str, title: str) -> int | None:
        if key in self.known:
            try:
                self.client.projects.get(id=self.known[key])
                return self.known[key]
            except Exception:  # deleted on the server: look it up again by title
                self.known.pop(key)
        for project in self.client.projects.list():
            if project.title == title:
                return project.id
        return None

    def ensure(self, rubric: Rubric, mode: str, overlap: int, overlap_share: int) -> tuple[int, bool]:
        """The project's id (created on first use with the rubric's label config)."""
        key = self.key(rubric.construct, mode)
        title = f"{self.study_name} · {rubric.construct} · {mode}"
        found = self._find(key, title)
        if found is not None:
            self.known[key] = found
            return found, False
        config = label_config(rubric, review=mode == "review")
        try:
            project = self.client.projects.create(
                title=title, label_config=config, maximum_annotations=overlap,
                overlap_cohort_percentage=overlap_share, show_skip_button=True,
                description=f"empathy-study {mode} ratings of {rubric.construct} (rubric {rubric.version})",
            )
        except Exception as exc:
            raise AnnotationError(f"Label Studio rejected the label config of {title}: {_api_message(exc)}") from exc
        self.known[key] = project.id
        return project.id, True

    def tasks(self, project_id: int) -> list:
        return list(self.client.tasks.list(project=project_id, fields="all"))

    def push(self, rubric: Rubric, mode: str, rows: list[dict], kinds: dict[str, str], overlap: int,
             overlap_share: int, predictions: list[tuple[str, str, dict]] = ()) -> PushResult:
        """Add the tasks (and, in review mode, predictions) that the project does not hold yet."""
        project_id, created = self.ensure(rubric, mode, overlap, overlap_share)
        existing = {t.data.get("pair_id"): t for t in self.tasks(project_id)}
        new = [task_payload(rubric, row, kinds[row["pair_id"]]) for row in rows if row["pair_id"] not in existing]
        if new:
            self.client.projects.import_tasks(id=project_id, request=new)
        result = PushResult(f"{rubric.construct} · {mode}", project_id, created, len(new), len(existing))
        if predictions:
            tasks = {t.data.get("pair_id"): t for t in self.tasks(project_id)}
            for pair_id, model_version, payload in predictions:
                task = tasks.get(pair_id)
                if task is None or any(_get(p, "model_version") == model_version for p in (task.predictions or [])):
                    continue
                self.client.predictions.create(task=task.id, **payload)
                result.new_predictions += 1
        return result

    def pull(self, rubric: Rubric, mode: str, salt: str) -> PulledLabels:
        """Every current annotation of the project as label rows (deleted ones are simply absent)."""
        key = self.key(rubric.construct, mode)
        title = f"{self.study_name} · {rubric.construct} · {mode}"
        project_id = self._find(key, title)
        if project_id is None:
            return PulledLabels(pd.DataFrame(columns=LABEL_COLUMNS))
        self.known[key] = project_id
        rows, pulled = [], PulledLabels(pd.DataFrame(columns=LABEL_COLUMNS))
        control = control_name(rubric)
        for task in self.tasks(project_id):
            pair_id = task.data.get("pair_id")
            kind = task.data.get("kind")
            for annotation in task.annotations or []:
                if annotation.get("was_cancelled"):
                    pulled.skipped[pair_id] += 1
                    continue
                score = None
                for item in annotation.get("result") or []:
                    if item.get("from_name") != control:
                        pulled.foreign += 1
                        continue
                    choices = (item.get("value") or {}).get("choices") or []
                    score = _score(choices[0]) if choices else None
                if score is None:
                    pulled.unparsed += 1
                    continue
                rows.append({
                    "pair_id": pair_id, "construct": rubric.construct,
                    "annotator": pseudonym(annotation.get("completed_by"), salt), "score": score,
                    "mode": "review" if mode == "review" else ("blind" if kind == "audit" else "calibration"),
                    "annotation_id": int(annotation["id"]), "updated_at": annotation.get("updated_at"),
                })
        pulled.labels = pd.DataFrame(rows, columns=LABEL_COLUMNS)
        return pulled

    def delete_skips(self, rubric: Rubric, mode: str) -> int:
        """Remove skipped (cancelled) annotations so the task goes back into the queue."""
        project_id = self.known.get(self.key(rubric.construct, mode))
        if project_id is None:
            return 0
        removed = 0
        for task in self.tasks(project_id):
            for annotation in task.annotations or []:
                if annotation.get("was_cancelled"):
                    self.client.annotations.delete(id=annotation["id"])
                    removed += 1
        return removed


def _get(item, name: str):
    """SDK lists hold dicts for some resources and models for others."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _score(choice: str) -> int | None:
    head = str(choice).split("—")[0].strip()
    return int(head) if head.isdigit() and 1 <= int(head) <= 7 else None


def review_predictions(rubric: Rubric, scores: pd.DataFrame, rationales: dict[tuple[str, str], str]) -> list:
    """(pair_id, model_version, payload) for each judge's score of each pair."""
    out = []
    for row in scores[(scores["construct"] == rubric.construct) & scores["score"].notna()].itertuples():
        payload = prediction_payload(rubric, row.judge, row.prompt_version, round(row.score),
                                     rationales.get((row.pair_id, row.judge)))
        out.append((row.pair_id, payload["model_version"], payload))
    return out


def project_status(projects: LabelStudioProjects, rubric: Rubric, mode: str, salt: str, overlap: int) -> dict | None:
    """Tasks, labelled, overlap reached, skips and per-annotator counts of one project."""
    key = projects.key(rubric.construct, mode)
    project_id = projects._find(key, f"{projects.study_name} · {rubric.construct} · {mode}")
    if project_id is None:
        return None
    per_annotator: Counter = Counter()
    labelled = reached = skipped = 0
    tasks = projects.tasks(project_id)
    for task in tasks:
        done = [a for a in task.annotations or [] if not a.get("was_cancelled")]
        skipped += sum(1 for a in task.annotations or [] if a.get("was_cancelled"))
        labelled += bool(done)
        reached += len(done) >= overlap
        per_annotator.update(pseudonym(a.get("completed_by"), salt) for a in done)
    return {"project": f"{rubric.construct} · {mode}", "id": project_id, "tasks": len(tasks), "labelled": labelled,
            "overlap_reached": reached, "skipped": skipped, "per_annotator": dict(per_annotator)}
