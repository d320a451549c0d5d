"""Wiring the study to Label Studio: which pairs go where, what comes back, and agreement.

State that must survive between runs (project ids, the pseudonym salt, the audit design) lives in
DIR/annotation.json; the API key never does.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from empathy_study import annotation, judge
from empathy_study.shared import write_json, write_parquet
from empathy_study.study.judging import load_sample
from empathy_study.study.workspace import StudyConfig, Workspace


@dataclass
class AnnotationState:
    path: Path
    projects: dict
    salt: str

    @classmethod
    def load(cls, study: Workspace) -> "AnnotationState":
        path = study.annotation_state
        data = json.loads(path.read_text()) if path.exists() else {}
        return cls(path, data.get("projects", {}), data.get("salt") or secrets.token_hex(8))

    def save(self, url: str, config: annotation.AnnotationConfig) -> None:
        write_json(self.path, {"url": url, "projects": self.projects, "salt": self.salt,
                               "audit": {"rate": config.audit_rate, "seed": config.audit_seed}})


def server(study: Workspace) -> tuple[str, object]:
    config = study.config().annotation
    url = os.environ.get("LABEL_STUDIO_URL") or config.url
    return url, annotation.connect(url, os.environ.get("LABEL_STUDIO_API_KEY"))


def audit_kinds(sample: pd.DataFrame, config: annotation.AnnotationConfig) -> dict[str, str]:
    """pair_id → "audit" (random, known probability) or "calibration"; pairs in neither are absent."""
    audit = annotation.audit_draw(sample["pair_id"], config.audit_rate, config.audit_seed)
    kinds = {p: "audit" for p in sample.loc[audit, "pair_id"]}
    rest = sample.loc[~audit, "pair_id"].sort_values()
    if config.calibration_pairs:
        chosen = rest.sample(n=min(config.calibration_pairs, len(rest)), random_state=config.audit_seed)
        kinds.update({p: "calibration" for p in chosen})
    return kinds


def push(study: Workspace, review: bool) -> list[annotation.labelstudio.PushResult]:
    config = study.config()
    url, client = server(study)
    state = AnnotationState.load(study)
    projects = annotation.LabelStudioProjects(client, config.study.name, state.projects)
    sample = load_sample(study)
    rubrics = config.rubrics()
    kinds = audit_kinds(sample, config.annotation)
    rows = sample.to_dict("records")
    chosen = [r for r in rows if r["pair_id"] in kinds]
    results = []
    try:
        for rubric in rubrics.values():
            results.append(projects.push(rubric, "blind", chosen, kinds, config.annotation.overlap,
                                         config.annotation.overlap_share))
        if review:
            scores, rationales = _judge_output(study, config)
            judged = set(scores["pair_id"])
            for rubric in rubrics.values():
                predictions = annotation.review_predictions(rubric, scores, rationales)
                results.append(projects.push(rubric, "review", [r for r in rows if r["pair_id"] in judged],
                                             {p: "review" for p in judged}, 1, 100, predictions))
    finally:
        state.projects = projects.known
        state.save(url, config.annotation)
    return results


def _judge_output(study: Workspace, config: StudyConfig) -> tuple[pd.DataFrame, dict]:
    """The current panel's scores and each judge's sample-0 rationale, for review predictions."""
    log = judge.JudgmentLog(study.require(study.judgments, f"empathy judge run {study.root}"))
    records = log.read().records
    versions = config.prompt_versions()
    frame = judge.first_draws(judge.current_judgments(judge.records_frame(records), config.judges, versions))
    rationales = {(r.pair_id, r.judge): r.rationale for r in frame.itertuples()}
    return judge.judge_scores(records, config.judges, versions), rationales


@dataclass
class PullSummary:
    labels: pd.DataFrame
    skipped: int
    foreign: int
    unparsed: int


def pull(study: Workspace) -> PullSummary:
    """Fetch every annotation; write DIR/labels.parquet only once everything was read."""
    config = study.config()
    url, client = server(study)
    state = AnnotationState.load(study)
    projects = annotation.LabelStudioProjects(client, config.study.name, state.projects)
    frames, skipped, foreign, unparsed = [], 0, 0, 0
    for rubric in config.rubrics().values():
        for mode in ("blind", "review"):
            pulled = projects.pull(rubric, mode, state.salt)
            frames.append(pulled.labels)
            skipped += sum(pulled.skipped.values()) if mode == "blind" else 0
            foreign += pulled.foreign
            unparsed += pulled.unparsed
    labels = pd.concat([f for f in frames if not f.empty] or [pd.DataFrame(columns=annotation.LABEL_COLUMNS)],
                       ignore_index=True)
    labels["score"] = labels["score"].astype("Int64")
    write_parquet(study.labels, labels)
    state.projects = projects.known
    state.save(url, config.annotation)
    return PullSummary(labels, skipped, foreign, unparsed)


def status(study: Workspace) -> list[dict]:
    config = study.config()
    _, client = server(study)
    state = AnnotationState.load(study)
    projects = annotation.LabelStudioProjects(client, config.study.name, state.projects)
    rows = []
    for rubric in config.rubrics().values():
        for mode in ("blind", "review"):
            found = annotation.project_status(projects, rubric, mode, state.salt, config.annotation.overlap)
            if found:
                rows.append(found)
    return rows


def requeue_skipped(study: Workspace) -> int:
    config = study.config()
    _, client = server(study)
    state = AnnotationState.load(study)
    projects = annotation.LabelStudioProjects(client, config.study.name, state.projects)
    return sum(projects.delete_skips(r, "blind") for r in config.rubrics().values())


def read_labels(study: Workspace) -> pd.DataFrame | None:
    return pd.read_parquet(study.labels) if study.labels.exists() else None


def agree(study: Workspace, boot: int = 1_000, seed: int = 0) -> dict:
    """Agreement per construct between annotators (blind and calibration labels) and judges (sample 0)
    → DIR/agreement.json."""
    config = study.config()
    labels = read_labels(study)
    versions = config.prompt_versions()
    frame = judge.records_frame(judge.JudgmentLog(study.judgments).read().records)
    frame = judge.first_draws(judge.current_judgments(frame, config.judges, versions))
    judges = [j.name for j in config.judges]
    report = {"prompt_version": versions, "judges": judges}
    for construct in versions:
        humans = pd.DataFrame()
        if labels is not None and not labels.empty:
            own = labels[(labels["construct"] == construct) & labels["mode"].isin(["blind", "calibration"])]
            humans = own.pivot_table(index="pair_id", columns="annotator", values="score", aggfunc="last")
        machines = frame[frame["construct"] == construct].pivot(index="pair_id", columns="judge", values="score")
        ratings = pd.concat([humans, machines], axis=1).astype(float)
        try:
            report[construct] = annotation.agreement(ratings, list(humans.columns), list(machines.columns),
                                                     boot=boot, seed=seed)
        except annotation.AgreementError as exc:
            report[construct] = {"note": str(exc), "raters": list(ratings.columns)}
    write_json(study.agreement, report)
    return report


def gold_columns(study: Workspace, sample: pd.DataFrame) -> pd.DataFrame | None:
    """empathy_gold, attachment_gold (blind audit labels) and gold_prob for the export, if labels exist."""
    labels = read_labels(study)
    if labels is None:
        return None
    gold = annotation.gold_scores(labels)
    table = sample[["pair_id"]].merge(gold, on="pair_id", how="left")
    state = study.annotation_state
    recorded = json.loads(state.read_text()).get("audit", {}).get("rate") if state.exists() else None
    table["gold_prob"] = np.float64(recorded or study.config().annotation.audit_rate)  # the design actually used
    return table
