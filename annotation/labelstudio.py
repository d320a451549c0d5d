"""Syncing with real Label Studio servers (SDK 2.x): projects, tasks, predictions, annotations, accounts.

Blind ratings are independent only if no annotator can open another's. Label Studio's free
edition has no roles: every account of a server can open every project and annotation on it
(and can even switch its active organization to any other organization of the server by id).
So each annotator rates on **their own server**, which holds no other annotator's account; the
study's main server (LABEL_STUDIO_URL) keeps the review projects, which carry the judges' scores
and are never gold. Every server is reached with the same admin token (LABEL_STUDIO_API_KEY).

A project is this study's when its description carries the marker written at creation
(`empathy-study: study=…; construct=…; mode=…; rubric=…`): the rubric version its annotators
saw travels with the project, so a changed rubric makes new projects and old labels keep their
version.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # a type only: judge imports this package for its agreement figures
    from empathy_study.judge import Rubric

from ._tasks import LABEL_COLUMNS, label_config, prediction_payload, pseudonym, task_payload

TITLE_MAX = 50  # Label Studio refuses longer project titles
_MARKER = re.compile(r"empathy-study: study=(?P<study>.*?); construct=(?P<construct>\w+); mode=(?P<mode>\w+); "
                     r"rubric=(?P<version>\S+)$")


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
        raise AnnotationError("set LABEL_STUDIO_API_KEY (the admin's API token: `source .labelstudio/credentials.env` "
                              "and export LABEL_STUDIO_API_KEY=$LABEL_STUDIO_USER_TOKEN)")
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
                "token needs LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true at the server's first boot; every server of a "
                "study is started with the same credentials, see `tools/labelstudio.sh`)") from exc
        raise AnnotationError(f"Label Studio at {url} answered an error: {_api_message(exc)}") from exc
    return client


def accounts(client) -> dict[int, str]:
    """user id → e-mail of every account of the server (the admin's included)."""
    return {int(user.id): str(user.email or "") for user in client.users.list()}


def admin_id(client) -> int:
    return int(client.users.whoami().id)


def fresh_invite(client, url: str) -> str:
    """A new sign-up link for the server (the old one stops working): the only way into it."""
    invite = client.organizations.reset_token()
    return url.rstrip("/") + str(invite.invite_url)


@dataclass(frozen=True)
class Seat:
    """Who holds an account on an annotator's own server."""

    url: str
    annotator: str  # the pseudonym of the annotator the server is for
    signed_up: bool  # their account exists
    foreign: tuple[tuple[int, str], ...] = ()  # (user id, e-mail) of the accounts neither the admin's nor theirs

    @property
    def breached(self) -> bool:
        return bool(self.foreign)


def seal_seat(client, url: str, people: dict[int, str], salt: str, annotator: str) -> Seat:
    """Who is on an annotator's server; once anyone has signed up there, a fresh invite token.

    A sign-up link is spent by the first account made with it: servers started by
    `tools/labelstudio.sh` reset the token at every sign-up themselves; this closes the link on any
    other server the first time the toolkit looks at it afterwards.
    """
    admin = admin_id(client)
    theirs = {uid for uid, email in people.items() if pseudonym(email, salt) == annotator}
    foreign = tuple(sorted((uid, email) for uid, email in people.items() if uid != admin and uid not in theirs))
    if any(uid != admin for uid in people):
        client.organizations.reset_token()
    return Seat(url.rstrip("/"), annotator, bool(theirs), foreign)


ALLOW_KEY = "[annotation] allow_foreign_accounts = true"


def record_seats(recorded: dict[str, dict], seats: list[Seat], when: str) -> None:
    """Keep, per annotator's server, the foreign accounts last seen there (a count: never an e-mail);
    a server seen clean again drops out. `recorded` is the `foreign_accounts` of annotation.json."""
    for seat in seats:
        if seat.breached:
            recorded[seat.url] = {"annotator": seat.annotator, "accounts": len(seat.foreign), "seen_at": when}
        else:
            recorded.pop(seat.url, None)


def refuse_breached(seats: list[Seat], step: str, allowed: bool) -> None:
    """One line, unless the study allows it: an annotator's server holds someone else's account,
    who can open every label made there, so those labels are no longer blind."""
    breached = [s for s in seats if s.breached]
    if breached and not allowed:
        seat = breached[0]
        more = f" (and {len(breached) - 1} more server(s))" if len(breached) > 1 else ""
        uid = seat.foreign[0][0]
        raise AnnotationError(
            f"{seat.url}, {seat.annotator}'s own server, holds {len(seat.foreign)} account(s) that are neither the "
            f"admin's nor theirs ({', '.join(f'{email}: user {i}' for i, email in seat.foreign)}){more}: whoever "
            f"holds one can open every label made there, so `{step}` refuses them; delete the account on that "
            f"server (as the admin: curl -X DELETE -H \"Authorization: Token $LABEL_STUDIO_API_KEY\" "
            f"{seat.url}/api/users/{uid}/) and run it again, or, if the study accepts it, set {ALLOW_KEY} in "
            "study.toml")


def refuse_recorded(recorded: dict[str, dict], step: str, allowed: bool) -> None:
    """`refuse_breached` for steps that read labels.parquet: from what the last pull or status saw."""
    if recorded and not allowed:
        url, seen = next(iter(sorted(recorded.items())))
        more = f" (and {len(recorded) - 1} more server(s))" if len(recorded) > 1 else ""
        raise AnnotationError(
            f"{url}, {seen['annotator']}'s own server, held {seen['accounts']} account(s) that are neither the admin's "
            f"nor theirs when the toolkit last looked ({seen['seen_at']}){more}: whoever holds one can open every "
            f"label made there, so `{step}` refuses the labels; `empathy annotate pull` names the account and "
            f"how to delete it (pull again once it is gone), or, if the study accepts it, set {ALLOW_KEY} in study.toml")


def project_title(study: str, construct: str, mode: str, version: str) -> str:
    """`<study> · <construct> · <mode> · v<rubric>`, the study's name shortened to fit 50 characters."""
    tail = f" · {construct} · {mode} · v{version[:4]}"
    room = TITLE_MAX - len(tail)
    name = study if len(study) <= room else study[:room - 1] + "…"
    return name + tail


def project_marker(study: str, construct: str, mode: str, version: str) -> str:
    return f"empathy-study: study={study}; construct={construct}; mode={mode}; rubric={version}"


@dataclass(frozen=True)
class ProjectRef:
    """One of this study's projects on one server, as its description records it."""

    server: str
    id: int
    construct: str
    mode: str
    prompt_version: str


@dataclass
class PushResult:
    project: str
    project_id: int
    created: bool
    new_tasks: int
    existing_tasks: int
    new_predictions: int = 0
    server: str = ""
    annotator: str | None = None  # the annotator whose own server holds the project (blind projects)
    note: str | None = None  # what a person should know about this push (e.g. it is empty, and why)


@dataclass
class PulledLabels:
    labels: pd.DataFrame
    skipped: Counter = field(default_factory=Counter)  # pair_id → skipped (cancelled) annotations
    foreign: int = 0  # results from controls that are not ours: ignored
    unparsed: int = 0  # our control without a 1..7 choice
    other_accounts: Counter = field(default_factory=Counter)  # e-mail → annotations not counted (not the annotator)


class LabelStudioProjects:
    """This study's projects on one server."""

    def __init__(self, client, url: str, study_name: str):
        self.client = client
        self.url = url.rstrip("/")
        self.study_name = study_name
        self._found: list[ProjectRef] | None = None

    def projects(self) -> list[ProjectRef]:
        """Every project of this study on the server, any rubric version, found by its marker."""
        if self._found is None:
            self._found = []
            for project in self.client.projects.list():
                match = _MARKER.search(str(getattr(project, "description", "") or ""))
                if match and match["study"] == self.study_name:
                    self._found.append(ProjectRef(self.url, int(project.id), match["construct"], match["mode"],
                                                  match["version"]))
        return self._found

    def find(self, construct: str, mode: str, version: str) -> ProjectRef | None:
        return next((p for p in self.projects() if (p.construct, p.mode, p.prompt_version) == (construct, mode, version)),
                    None)

    def ensure(self, rubric: Rubric, mode: str, maximum_annotations: int) -> tuple[ProjectRef, bool]:
        """The project for this construct, mode and rubric version (created on first use)."""
        found = self.find(rubric.construct, mode, rubric.version)
        if found is not None:
            return found, False
        title = project_title(self.study_name, rubric.construct, mode, rubric.version)
        what = "blind ratings (no judge's score is shown anywhere)" if mode == "blind" else \
            "review of the judges' scores (never used as gold)"
        try:
            project = self.client.projects.create(
                title=title, label_config=label_config(rubric, review=mode == "review"),
                maximum_annotations=maximum_annotations, overlap_cohort_percentage=100, show_skip_button=True,
                description=f"{rubric.construct}: {what}. "
                            + project_marker(self.study_name, rubric.construct, mode, rubric.version),
            )
        except Exception as exc:
            raise AnnotationError(f"Label Studio at {self.url} rejected the label config of {title}: "
                                  f"{_api_message(exc)}") from exc
        ref = ProjectRef(self.url, int(project.id), rubric.construct, mode, rubric.version)
        self.projects().append(ref)
        return ref, True

    def tasks(self, project_id: int) -> list:
        return list(self.client.tasks.list(project=project_id, fields="all"))

    def push(self, rubric: Rubric, mode: str, rows: list[dict], kinds: dict[str, str], maximum_annotations: int = 1,
             predictions: list[tuple[str, str, dict]] = ()) -> PushResult:
        """Add the tasks (and, in review mode, predictions) that the project does not hold yet."""
        ref, created = self.ensure(rubric, mode, maximum_annotations)
        existing = {t.data.get("pair_id"): t for t in self.tasks(ref.id)}
        new = [task_payload(rubric, row, kinds[row["pair_id"]]) for row in rows if row["pair_id"] not in existing]
        if new:
            self.client.projects.import_tasks(id=ref.id, request=new)
        result = PushResult(f"{rubric.construct} · {mode}", ref.id, created, len(new), len(existing), server=self.url)
        if predictions:
            tasks = {t.data.get("pair_id"): t for t in self.tasks(ref.id)}
            for pair_id, model_version, payload in predictions:
                task = tasks.get(pair_id)
                if task is None or any(_get(p, "model_version") == model_version for p in (task.predictions or [])):
                    continue
                self.client.predictions.create(task=task.id, **payload)
                result.new_predictions += 1
        return result

    def pull(self, project: ProjectRef, annotator_of: Callable[[int], str | None],
             email_of: Callable[[int], str]) -> PulledLabels:
        """Every current annotation of a project as label rows (deleted ones are simply absent).

        `annotator_of(user id)` gives the pseudonym the labels are recorded under, or None for an
        account whose annotations do not count here (on an annotator's own server: anyone else).
        """
        rows, pulled = [], PulledLabels(pd.DataFrame(columns=LABEL_COLUMNS))
        for task in self.tasks(project.id):
            pair_id = task.data.get("pair_id")
            kind = task.data.get("kind")
            for annotation in task.annotations or []:
                who = annotator_of(annotation.get("completed_by"))
                if who is None:
                    pulled.other_accounts[email_of(annotation.get("completed_by"))] += 1
                    continue
                if annotation.get("was_cancelled"):
                    pulled.skipped[pair_id] += 1
                    continue
                score = None
                for item in annotation.get("result") or []:
                    if item.get("from_name") != project.construct:
                        pulled.foreign += 1
                        continue
                    choices = (item.get("value") or {}).get("choices") or []
                    score = _score(choices[0]) if choices else None
                if score is None:
                    pulled.unparsed += 1
                    continue
                rows.append({
                    "pair_id": pair_id, "construct": project.construct, "annotator": who, "score": score,
                    "mode": "review" if project.mode == "review" else ("blind" if kind == "audit" else "calibration"),
                    "annotation_id": int(annotation["id"]), "updated_at": annotation.get("updated_at"),
                    "prompt_version": project.prompt_version,
                })
        pulled.labels = pd.DataFrame(rows, columns=LABEL_COLUMNS)
        return pulled

    def delete_skips(self, project: ProjectRef) -> int:
        """Remove skipped (cancelled) annotations so the task goes back into the queue."""
        removed = 0
        for task in self.tasks(project.id):
            for annotation in task.annotations or []:
                if annotation.get("was_cancelled"):
                    self.client.annotations.delete(id=annotation["id"])
                    removed += 1
        return removed

    def status(self, project: ProjectRef, annotator_of: Callable[[int], str | None]) -> dict:
        """Tasks, labelled, skipped, per-annotator counts, and which pairs carry a label."""
        per_annotator: Counter = Counter()
        labelled_pairs, skipped, other = set(), 0, 0
        tasks = self.tasks(project.id)
        for task in tasks:
            for annotation in task.annotations or []:
                who = annotator_of(annotation.get("completed_by"))
                if who is None:
                    other += 1
                elif annotation.get("was_cancelled"):
                    skipped += 1
                else:
                    per_annotator[who] += 1
                    labelled_pairs.add(task.data.get("pair_id"))
        return {"project": f"{project.construct} · {project.mode}", "server": self.url, "id": project.id,
                "construct": project.construct, "mode": project.mode, "prompt_version": project.prompt_version,
                "tasks": len(tasks), "labelled": len(labelled_pairs), "skipped": skipped,
                "other_accounts": other, "per_annotator": dict(per_annotator), "labelled_pairs": labelled_pairs}


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


def annotator_lookup(people: dict[int, str], salt: str, only: str | None = None) -> Callable[[int], str | None]:
    """user id → pseudonym; with `only`, every account but that annotator's maps to None."""
    def lookup(user_id) -> str | None:
        email = people.get(int(user_id)) if user_id is not None else None
        if email is None:
            return None
        name = pseudonym(email, salt)
        return name if only is None or name == only else None
    return lookup
