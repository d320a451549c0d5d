"""Wiring the study to Label Studio: who rates which pair where, what comes back, and agreement.

Each annotator rates blind on their own Label Studio server (`add_annotator`), so that no one can
open another's labels; the study's main server (LABEL_STUDIO_URL) holds the review projects.
State that must survive between runs (the annotators' servers, the pseudonym salt, the audit
design) lives in DIR/annotation.json; the API key and the e-mails never do.
"""

from __future__ import annotations

import json
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from empathy_study import annotation, judge
from empathy_study.annotation import labelstudio
from empathy_study.shared import write_json, write_parquet
from empathy_study.study.audit_design import (
    AUDIT_NEED,
    current_design,
    judge_features,
    next_batch,
    save_batches,
    with_batches,
)
from empathy_study.study.audit_plan import AuditReach, audit_reach
from empathy_study.study.judging import load_sample, read_judgments
from empathy_study.study.labels import current_scores, read_labels, under
from empathy_study.study.workspace import StudyConfig, StudyError, Workspace


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


@dataclass
class AnnotationState:
    path: Path
    salt: str
    annotators: list[dict] = field(default_factory=list)  # {"annotator": pseudonym, "url": their own server}
    pushed: bool = False  # a push has run (projects may exist on the servers)
    review: bool = False  # review projects were pushed to the main server
    foreign_accounts: dict = field(default_factory=dict)  # annotator's server → foreign accounts last seen there
    audit: dict = field(default_factory=dict)  # the audit design as last pushed (active: its batch records)
    blind: bool = False  # a blind audit reached an annotator's server (review projects alone do not count)

    @classmethod
    def load(cls, study: Workspace) -> "AnnotationState":
        path = study.annotation_state
        data = json.loads(path.read_text()) if path.exists() else {}
        return cls(path, data.get("salt") or secrets.token_hex(8), list(data.get("annotators") or []),
                   bool(data.get("pushed")), bool(data.get("review")), dict(data.get("foreign_accounts") or {}),
                   dict(data.get("audit") or {}),
                   bool(data.get("blind", data.get("pushed") and data.get("annotators"))))

    def save(self, url: str) -> None:
        """The audit design as `push` last set it (`audit`): adding an annotator or reading the servers
        never rewrites it, so the record stays the draw the pushed tasks came from."""
        write_json(self.path, {"url": url, "salt": self.salt, "annotators": self.annotators, "pushed": self.pushed,
                               "review": self.review, "blind": self.blind, "audit": self.audit,
                               "foreign_accounts": self.foreign_accounts})

    def look(self, seat: labelstudio.Seat) -> labelstudio.Seat:
        labelstudio.record_seats(self.foreign_accounts, [seat], datetime.now(timezone.utc).isoformat(timespec="seconds"))
        return seat

    def save_seen(self) -> None:
        """Only what was seen on the servers: the audit design stays as the last push recorded it."""
        if self.path.exists():
            write_json(self.path, {**json.loads(self.path.read_text()), "foreign_accounts": self.foreign_accounts})


def main_url(study: Workspace) -> str:
    return os.environ.get("LABEL_STUDIO_URL") or study.config().annotation.url


def _key() -> str | None:
    return os.environ.get("LABEL_STUDIO_API_KEY")


def server(study: Workspace) -> tuple[str, object]:
    """The study's main server (review projects): its URL and a client."""
    url = main_url(study)
    return url, annotation.connect(url, _key())


def audit_kinds(sample: pd.DataFrame, drawn: pd.Series, config: annotation.AnnotationConfig) -> dict[str, str]:
    """pair_id → "audit" (`drawn`: random, known probability) or "calibration"; pairs in neither are absent."""
    audit = sample["pair_id"].map(drawn).fillna(False).to_numpy(dtype=bool)
    kinds = {p: "audit" for p in sample.loc[audit, "pair_id"]}
    rest = sample.loc[~audit, "pair_id"].sort_values()
    if config.calibration_pairs:
        chosen = rest.sample(n=min(config.calibration_pairs, len(rest)), random_state=config.audit_seed)
        kinds.update({p: "calibration" for p in chosen})
    return kinds


@dataclass
class AddedAnnotator:
    annotator: str  # the pseudonym their labels carry
    url: str
    invite: str  # the sign-up link (a new one each time: older links stop working)
    signed_up: bool  # an account with their e-mail exists on the server already


def add_annotator(study: Workspace, email: str, url: str) -> AddedAnnotator:
    """Register `url` — a Label Studio server of this annotator's own — and make its sign-up link.

    The server must hold no other person's account: whoever has an account on a Label Studio
    server can open every annotation on it. The admin token (LABEL_STUDIO_API_KEY) must work
    there too (`make labelstudio-annotator NAME=…` starts such a server).
    """
    study.config()  # a broken study.toml stops here, before any server is asked
    email = email.strip()
    if "@" not in email or len(email) < 3:
        raise annotation.AnnotationError(f"{email!r} is not an e-mail address: the annotator signs up with it")
    state = AnnotationState.load(study)
    name = annotation.pseudonym(email, state.salt)
    main = main_url(study)
    if _same(url, main):
        raise annotation.AnnotationError(
            f"{url} is the study's main server (LABEL_STUDIO_URL), where the review projects show the judges' scores "
            "to every account: give each annotator a server of their own (`make labelstudio-annotator NAME=…`)")
    taken = [a for a in state.annotators if _same(a["url"], url) and a["annotator"] != name]
    if taken:
        raise annotation.AnnotationError(f"{url} is already another annotator's server ({taken[0]['annotator']}): "
                                         "two annotators on one server could open each other's labels")
    client = annotation.connect(url, _key())
    admin = labelstudio.admin_id(client)
    others = [e for uid, e in labelstudio.accounts(client).items()
              if uid != admin and annotation.pseudonym(e, state.salt) != name]
    if others:
        raise annotation.AnnotationError(
            f"{url} already has an account other than the admin's ({others[0]}): an annotator's server must hold "
            "only that annotator, or they could open each other's labels; start a fresh one with "
            "`make labelstudio-annotator NAME=…`")
    signed_up = any(annotation.pseudonym(e, state.salt) == name for e in labelstudio.accounts(client).values())
    invite = labelstudio.fresh_invite(client, url)
    state.annotators = [a for a in state.annotators if a["annotator"] != name] + [{"annotator": name,
                                                                                  "url": url.rstrip("/")}]
    state.save(main)
    return AddedAnnotator(name, url.rstrip("/"), invite, signed_up)


@dataclass
class Pushed:
    projects: list[labelstudio.PushResult]
    audit: AuditReach | None  # what the blind audit drew and buys (None: review projects only)
    batches: list[dict] = field(default_factory=list)  # the active audit's batches this push drew (their records)


def push(study: Workspace, review: bool, small_audit: bool = False) -> Pushed:
    """Blind tasks to each annotator's own server (who rates which pair: `annotation.assign_annotators`);
    with `review`, the judges' scores as predictions to review projects on the main server.

    An audit that cannot reach `[causal] min_arm` in an arm (`AuditReach.short`) is refused before any
    server is touched, unless `small_audit` (its labels then serve agreement and calibration only)."""
    config = study.config()
    state = AnnotationState.load(study)
    if not state.annotators and not review:
        raise annotation.AnnotationError(
            f"no annotator yet: each annotator rates on a Label Studio server of their own; start one with "
            f"`make labelstudio-annotator NAME=…` and add it with "
            f"`empathy annotate add-annotator {study.root} EMAIL --url URL`")
    sample = load_sample(study)
    pushed = state.audit if state.blind and state.audit.get("design") == "uniform" else {}
    a = config.annotation
    if a.audit == "uniform" and pushed and (a.audit_rate < pushed["rate"] or a.audit_seed != pushed["seed"]):
        raise StudyError(f"blind audit tasks were pushed at audit_rate {pushed['rate']:g}, audit_seed {pushed['seed']}; "
                         f"study.toml now says {a.audit_rate:g}, {a.audit_seed}: a lower rate or another seed would drop "
                         "pairs already on the annotators' servers from the audit — only raise the rate")
    # A uniform audit draws at the configured rate; an active one starts from what was pushed before.
    design = current_design(study, config.annotation, sample["pair_id"], pushing=config.annotation.audit == "uniform")
    batches = []
    if config.annotation.audit == "active" and state.annotators:
        features = judge_features(study, config, sample["pair_id"])
        gold = current_scores(study, config)
        need_file = study.estimates / AUDIT_NEED
        weight = pd.read_parquet(need_file).set_index("pair_id")["weight"] if need_file.exists() else None
        batches = next_batch(design, config, features, gold, pushed_uniform=state.blind and design.design == "uniform",
                             arm_weight=weight)
        design = with_batches(design, batches)
    elif design.design == "active":
        raise StudyError(f"this audit was drawn actively ({design.describe()}); [annotation] audit = \"uniform\" "
                         "cannot continue it: set audit = \"active\" again")
    reach = audit_reach(study, config, design) if state.annotators else None
    if reach is not None and reach.short and not small_audit:
        raise StudyError(f"{reach.describe()}, which this audit cannot reach: {reach.remedy(str(study.root))} — or push "
                         "with --small-audit to label it anyway, for agreement and calibration only (the estimate "
                         "then has no judge-error-corrected row)")
    save_batches(study, batches)  # the probabilities are on record before any of their pairs is labelled
    if design.design == "active":
        state.audit = {"design": "active", "seed": config.annotation.audit_seed, "batches": design.batches}
        state.save(main_url(study))  # the records beside the rows they describe, at once
    elif config.annotation.audit == "uniform":
        state.audit = {"design": "uniform", "rate": design.rate, "seed": design.seed}
    rubrics = config.rubrics()
    kinds = audit_kinds(sample, design.drawn, config.annotation)
    rows = {r["pair_id"]: r for r in sample.to_dict("records")}
    who = annotation.assign_annotators(sorted(kinds), [a["annotator"] for a in state.annotators],
                                       config.annotation.overlap, config.annotation.overlap_share,
                                       config.annotation.audit_seed)
    results = []
    try:
        for seat in state.annotators:
            projects = annotation.LabelStudioProjects(annotation.connect(seat["url"], _key()), seat["url"],
                                                      config.study.name)
            state.look(labelstudio.seal_seat(projects.client, seat["url"], labelstudio.accounts(projects.client),
                                             state.salt, seat["annotator"]))
            mine = [rows[p] for p in sorted(kinds) if seat["annotator"] in who.get(p, [])]
            for rubric in rubrics.values():
                result = projects.push(rubric, "blind", mine, kinds)
                result.annotator = seat["annotator"]
                if not kinds:
                    result.note = (f"empty: none of the {len(sample):,} sampled pairs drew into the audit (audit_rate "
                                   f"{config.annotation.audit_rate:g}, audit_seed {config.annotation.audit_seed}) and "
                                   "no calibration pairs are asked for; raise [annotation] audit_rate or sample more")
                elif not mine:
                    result.note = (f"empty: the {len(kinds):,} audit pairs went to the other annotators "
                                   f"(overlap {config.annotation.overlap}, overlap_share "
                                   f"{config.annotation.overlap_share} %)")
                results.append(result)
            state.pushed = True
            state.blind = state.blind or bool(mine)
        if review:
            url, client = server(study)
            projects = annotation.LabelStudioProjects(client, url, config.study.name)
            scores, rationales = _judge_output(study, config)
            judged = sorted(set(scores["pair_id"]) & set(rows))
            for rubric in rubrics.values():
                predictions = annotation.review_predictions(rubric, scores, rationales)
                result = projects.push(rubric, "review", [rows[p] for p in judged], {p: "review" for p in judged},
                                       predictions=predictions)
                if not judged:
                    result.note = f"empty: no pair is judged yet (run `empathy judge run {study.root}` first)"
                results.append(result)
            state.pushed = state.review = True
    finally:
        state.save(main_url(study))
    return Pushed(results, reach, [b.record for b in batches])


def _judge_output(study: Workspace, config: StudyConfig) -> tuple[pd.DataFrame, dict]:
    """The current panel's scores and each judge's sample-0 rationale, for review predictions."""
    study.require(study.judgments, f"empathy judge run {study.root}")
    judgments = read_judgments(study)
    versions = config.prompt_versions()
    frame = judge.first_draws(judge.current_judgments(judgments, config.judges, versions))
    rationales = {(r.pair_id, r.judge): r.rationale for r in frame.itertuples()}
    return judge.judge_scores(judgments, config.judges, versions), rationales


@dataclass
class _Server:
    """One server this study uses, with what pull and status need from it."""

    url: str
    projects: annotation.LabelStudioProjects
    people: dict[int, str]
    lookup: object  # user id → pseudonym, or None for accounts that do not count here
    annotator: str | None  # whose own server it is (None: the main server)
    seat: labelstudio.Seat | None = None  # who holds an account there (annotators' servers)


def _servers(study: Workspace, state: AnnotationState, main: bool) -> list[_Server]:
    config = study.config()
    found = []
    for seat in state.annotators:
        client = annotation.connect(seat["url"], _key())
        people = labelstudio.accounts(client)
        found.append(_Server(seat["url"], annotation.LabelStudioProjects(client, seat["url"], config.study.name),
                             people, labelstudio.annotator_lookup(people, state.salt, only=seat["annotator"]),
                             seat["annotator"], state.look(labelstudio.seal_seat(client, seat["url"], people, state.salt,
                                                                                 seat["annotator"]))))
    state.save_seen()  # agree and export refuse by it
    if main:
        url, client = server(study)
        people = labelstudio.accounts(client)
        found.append(_Server(url, annotation.LabelStudioProjects(client, url, config.study.name), people,
                             labelstudio.annotator_lookup(people, state.salt), None))
    return found


@dataclass
class PullSummary:
    labels: pd.DataFrame
    skipped: int
    foreign: int
    unparsed: int
    other_accounts: dict[str, int] = field(default_factory=dict)  # "<e-mail> on <server>" → annotations not counted
    other_versions: int = 0  # labels made under a rubric version the study no longer uses


def pull(study: Workspace) -> PullSummary:
    """Fetch every annotation; write DIR/labels.parquet only once everything was read."""
    config = study.config()
    state = AnnotationState.load(study)
    frames, skipped, foreign, unparsed, others = [], 0, 0, 0, Counter()
    places = _servers(study, state, main=state.review)
    labelstudio.refuse_breached([p.seat for p in places if p.seat], "empathy annotate pull",
                                config.annotation.allow_foreign_accounts)
    for place in places:
        for project in place.projects.projects():
            if place.annotator is not None and project.mode != "blind":
                continue
            if place.annotator is None and project.mode != "review":
                continue  # blind projects live on annotators' own servers only
            pulled = place.projects.pull(project, place.lookup, lambda uid, p=place: p.people.get(int(uid), "?"))
            frames.append(pulled.labels)
            skipped += sum(pulled.skipped.values()) if project.mode == "blind" else 0
            foreign += pulled.foreign
            unparsed += pulled.unparsed
            others.update({f"{email} on {place.url}": n for email, n in pulled.other_accounts.items()})
    labels = pd.concat([f for f in frames if not f.empty] or [pd.DataFrame(columns=annotation.LABEL_COLUMNS)],
                       ignore_index=True)
    labels["score"] = labels["score"].astype("Int64")
    write_parquet(study.labels, labels)
    other_versions = len(labels) - len(under(labels, config.prompt_versions()))
    return PullSummary(labels, skipped, foreign, unparsed, dict(others), other_versions)


@dataclass
class AnnotationStatus:
    projects: list[dict]  # one row per project: server, construct, mode, tasks, labelled, skipped, …
    annotators: list[dict]  # per annotator: their server, whether they signed up, other accounts there
    overlap_reached: dict[str, int]  # construct → audit pairs labelled by as many annotators as were assigned
    next_step: str | None = None  # what to run when there is nothing to show yet
    design: str | None = None  # the audit's design as drawn so far, in words
    batches: list[dict] = field(default_factory=list)  # the active audit's batch records


def status(study: Workspace) -> AnnotationStatus:
    config = study.config()
    state = AnnotationState.load(study)
    add = f"`empathy annotate add-annotator {study.root} EMAIL --url URL` (one Label Studio server per annotator: " \
          "`make labelstudio-annotator NAME=…`)"
    if not state.annotators and not state.pushed:
        return AnnotationStatus([], [], {}, f"no annotator and nothing pushed yet: add an annotator with {add}, "
                                            f"then run `empathy annotate push {study.root}`")
    versions = config.prompt_versions()
    rows, people, labelled = [], [], {c: Counter() for c in versions}
    for place in _servers(study, state, main=state.review):
        if place.seat is not None:
            people.append({"annotator": place.annotator, "server": place.url, "signed_up": place.seat.signed_up,
                           "other_accounts": [email for _, email in place.seat.foreign]})
        for project in place.projects.projects():
            row = place.projects.status(project, place.lookup)
            if project.mode == "blind" and project.prompt_version == versions.get(project.construct):
                labelled[project.construct].update(row["labelled_pairs"])
            rows.append({k: v for k, v in row.items() if k != "labelled_pairs"})
    kinds, design = {}, None
    if study.sample.exists():
        sample = load_sample(study)
        design = current_design(study, config.annotation, sample["pair_id"])
        kinds = audit_kinds(sample, design.drawn, config.annotation)
    who = annotation.assign_annotators(sorted(kinds), [a["annotator"] for a in state.annotators],
                                       config.annotation.overlap, config.annotation.overlap_share,
                                       config.annotation.audit_seed)
    reached = {c: sum(1 for p, names in who.items() if kinds.get(p) == "audit" and counts[p] >= len(names))
               for c, counts in labelled.items()}
    next_step = None
    if not rows:
        next_step = f"nothing pushed yet: run `empathy annotate push {study.root}`"
        if not state.annotators:
            next_step = f"no annotator yet: add one with {add}"
    return AnnotationStatus(rows, people, reached, next_step, design.describe() if design else None,
                            design.batches if design else [])


def requeue_skipped(study: Workspace) -> int:
    """Delete skipped annotations of blind tasks so the tasks go back into their annotator's queue."""
    state = AnnotationState.load(study)
    removed = 0
    for place in _servers(study, state, main=False):
        removed += sum(place.projects.delete_skips(p) for p in place.projects.projects() if p.mode == "blind")
    return removed


def agree(study: Workspace, boot: int = 1_000, seed: int = 0) -> dict:
    """Agreement per construct between annotators (blind and calibration labels under the current
    rubric) and judges (sample 0) → DIR/agreement.json."""
    config = study.config()
    labels = read_labels(study)
    if not labels.empty:
        labelstudio.refuse_recorded(AnnotationState.load(study).foreign_accounts, "empathy agree",
                                    config.annotation.allow_foreign_accounts)
    versions = config.prompt_versions()
    frame = judge.first_draws(judge.current_judgments(read_judgments(study), config.judges, versions))
    judges = [j.name for j in config.judges]
    report = {"prompt_version": versions, "judges": judges}
    for construct in versions:
        humans = pd.DataFrame()
        other_rubric = 0
        if not labels.empty:
            own = labels[(labels["construct"] == construct) & labels["mode"].isin(["blind", "calibration"])]
            current = under(own, versions)
            other_rubric = len(own) - len(current)
            humans = current.pivot_table(index="pair_id", columns="annotator", values="score", aggfunc="last")
        machines = frame[frame["construct"] == construct].pivot(index="pair_id", columns="judge", values="score")
        ratings = pd.concat([humans, machines], axis=1).astype(float)
        try:
            report[construct] = annotation.agreement(ratings, list(humans.columns), list(machines.columns),
                                                     boot=boot, seed=seed)
        except annotation.AgreementError as exc:
            report[construct] = {"note": str(exc), "raters": list(ratings.columns)}
        report[construct]["labels_under_other_rubric_versions"] = other_rubric
    write_json(study.agreement, report)
    return report
