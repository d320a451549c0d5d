"""The binary socio-emotional project in Label Studio: is a turn-pair part of the study's population?

The labelled sample that measures the corpus filter (`corpus` audit design) is rated here. The
annotator reads the pair with its preceding exchange and answers yes or no; the instruction and
the two answers come from the same rubric file the judge pass reads (`prompts/socioemotional.toml`).
Tasks are blind: they hold the texts and the pair's id, never a stratum, a cue count or any
filter's decision.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

import pandas as pd

from ._tasks import pseudonym
from .labelstudio import AnnotationError, _api_message

if TYPE_CHECKING:  # a type only: judge imports this package for its agreement figures
    from empathy_study.judge import Rubric

CONTROL = "socioemotional"
TASK_KEYS = {"pair_id", "kind", "dialogue"}  # nothing else, ever, in a task
LABEL_COLUMNS = ("pair_id", "annotator", "socio_emotional", "annotation_id", "updated_at")
_ROLES = {"prev_prompt": "User (earlier)", "prev_response": "Assistant (earlier)", "prompt": "User",
          "response": "Assistant", "reply": "User (next message)"}
_ANSWERS = {1: "yes", 0: "no"}


def label_config(rubric: Rubric) -> str:
    """Label Studio XML: the rubric's instruction, the dialogue, one required yes/no choice."""
    if rubric.level_set != (0, 1):
        raise AnnotationError(f"rubric {rubric.construct} is not binary (levels {rubric.level_set})")
    lines = ["<View>", '  <Header value="Is this turn socio-emotional?" size="4"/>']
    for paragraph in rubric.instruction.strip().split("\n\n"):
        lines.append(f"  <Header value={quoteattr(' '.join(paragraph.split()))} size=\"6\"/>")
    lines.append('  <Paragraphs name="dialogue" value="$dialogue" layout="dialogue" nameKey="role" textKey="content"/>')
    lines.append(f'  <Choices name="{CONTROL}" toName="dialogue" choice="single" required="true" showInline="false">')
    for level in (1, 0):
        lines.append(f"    <Choice value={quoteattr(f'{_ANSWERS[level]} — {rubric.levels[level]}')} alias=\"{level}\"/>")
    lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines)


def task_payload(rubric: Rubric, row: dict) -> dict:
    """The pair's texts in the order the rubric names them; an empty earlier exchange is left out."""
    dialogue = [{"role": _ROLES[name], "content": str(row.get(name) or "")} for name in rubric.context
                if name in ("prompt", "response", "reply") or str(row.get(name) or "").strip()]
    if not any(name.startswith("prev_") and str(row.get(name) or "").strip() for name in rubric.context):
        dialogue.insert(0, {"role": "Note", "content": "(the conversation starts with the user's message below)"})
    return {"pair_id": str(row["pair_id"]), "kind": "audit", "dialogue": dialogue}


def _answer(choice: str) -> bool | None:
    head = str(choice).split("—")[0].strip().lower()
    return {"1": True, "yes": True, "0": False, "no": False}.get(head)


@dataclass
class PulledAnswers:
    labels: pd.DataFrame  # LABEL_COLUMNS
    skipped: Counter = field(default_factory=Counter)  # pair_id → skipped (cancelled) annotations
    unparsed: int = 0  # an annotation without a yes/no answer of our control


class SocioEmotionalProject:
    """One binary project on a Label Studio server, found by id or by title."""

    def __init__(self, client, title: str, project_id: int | None = None):
        self.client = client
        self.title = title
        self.project_id = project_id

    def find(self) -> int | None:
        if self.project_id is not None:
            try:
                self.client.projects.get(id=self.project_id)
                return self.project_id
            except Exception:  # deleted on the server: look it up again by title
                self.project_id = None
        for project in self.client.projects.list():
            if project.title == self.title:
                self.project_id = project.id
                return project.id
        return None

    def ensure(self, rubric: Rubric) -> tuple[int, bool]:
        """The project's id, created on first use with the rubric's label config."""
        if self.find() is not None:
            return self.project_id, False
        try:
            project = self.client.projects.create(
                title=self.title, label_config=label_config(rubric), maximum_annotations=1, show_skip_button=True,
                description=f"empathy-study: is each turn-pair socio-emotional? (rubric {rubric.version})",
            )
        except Exception as exc:
            raise AnnotationError(f"Label Studio rejected the project {self.title}: {_api_message(exc)}") from exc
        self.project_id = project.id
        return project.id, True

    def tasks(self) -> list:
        if self.find() is None:
            return []
        return list(self.client.tasks.list(project=self.project_id, fields="all"))

    def push(self, rubric: Rubric, rows: list[dict]) -> tuple[int, int]:
        """Add the pairs the project does not hold yet; (new tasks, tasks already there)."""
        self.ensure(rubric)
        existing = {t.data.get("pair_id") for t in self.tasks()}
        new = [task_payload(rubric, row) for row in rows if str(row["pair_id"]) not in existing]
        for start in range(0, len(new), 500):
            self.client.projects.import_tasks(id=self.project_id, request=new[start:start + 500])
        return len(new), len(existing)

    def pull(self, salt: str) -> PulledAnswers:
        """Every current annotation as a label row; skipped ones are counted, never labels."""
        rows, pulled = [], PulledAnswers(pd.DataFrame(columns=LABEL_COLUMNS))
        for task in self.tasks():
            pair_id = task.data.get("pair_id")
            for annotation in task.annotations or []:
                if annotation.get("was_cancelled"):
                    pulled.skipped[pair_id] += 1
                    continue
                answer = None
                for item in annotation.get("result") or []:
                    choices = (item.get("value") or {}).get("choices") or []
                    if item.get("from_name") == CONTROL and choices:
                        answer = _answer(choices[0])
                if answer is None:
                    pulled.unparsed += 1
                    continue
                rows.append({"pair_id": pair_id, "annotator": pseudonym(f"user-{annotation.get('completed_by')}", salt),
                             "socio_emotional": answer, "annotation_id": int(annotation["id"]),
                             "updated_at": annotation.get("updated_at")})
        pulled.labels = pd.DataFrame(rows, columns=LABEL_COLUMNS)
        return pulled
