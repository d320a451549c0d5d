"""The study's population: which turn-pairs are socio-emotional, and how well the filter knows it.

Two passes decide it. `empathy corpus build` runs the cheap pre-filter (rules over the pair and
its preceding exchange, tuned for recall). `classify` sends the candidates it kept to the judge
panel with the binary rubric `prompts/socioemotional.toml`, through the same machinery as the
study's judgments (versions, an append-only log, cache, cost accounting, dry run).

The filter audit measures both passes: a stratified sample of a frame built *without* the filter
(`[corpus] keep_transactional = true`), labelled blind in a binary Label Studio project, from
which design-weighted precision and recall follow (`corpus` audit design).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from empathy_study import annotation, corpus, judge
from empathy_study.annotation import socioemotional as binary
from empathy_study.shared import write_json, write_parquet
from empathy_study.study.workspace import StudyError, Workspace

AUDIT_FILE = "filter_audit.parquet"
AUDIT_DESIGN_FILE = "filter_audit.json"
AUDIT_LABELS_FILE = "filter_audit_labels.parquet"
RUBRIC = "socioemotional"


def _frame(study: Workspace) -> pd.DataFrame:
    """The audit frame: the study's turn-pairs, which must have been built with the filter off."""
    pairs = corpus.read_table(study.require(study.turn_pairs, f"empathy corpus build --out {study.root}"))
    funnel = json.loads(study.funnel.read_text()) if study.funnel.exists() else {}
    if not funnel.get("config", {}).get("keep_transactional", False):
        raise StudyError(f"{study.turn_pairs} was built with the socio-emotional filter on: an audit frame needs "
                         "every pair, so build it with `[corpus] keep_transactional = true`")
    return pairs


@dataclass
class AuditDraw:
    sample: pd.DataFrame
    design: dict
    written: list[Path]


def draw_filter_audit(study: Workspace, sizes: Mapping[str, int], seed: int = 0) -> AuditDraw:
    """The stratified audit sample of the study's (unfiltered) turn-pairs → filter_audit.parquet/.json.

    Drawing again with the same seed and larger sizes keeps every pair drawn before (a second wave).
    """
    sample, design = corpus.draw_audit(_frame(study), sizes, seed)
    state = _audit_state(study)
    previous = state.get("design")
    if previous and previous["seed"] == seed and _shrinks(previous, design):
        raise StudyError("a new draw may only add pairs to each stratum of the earlier audit sample")
    design["turn_pairs_file"] = str(study.turn_pairs)
    state["design"] = design
    write_parquet(study.root / AUDIT_FILE, sample)
    write_json(study.root / AUDIT_DESIGN_FILE, state)
    return AuditDraw(sample, design, [study.root / AUDIT_FILE, study.root / AUDIT_DESIGN_FILE])


def _shrinks(before: dict, after: dict) -> bool:
    sizes = {s["stratum"]: s["sample"] for s in after["strata"]}
    return any(sizes.get(s["stratum"], 0) < s["sample"] for s in before["strata"])


def _audit_state(study: Workspace) -> dict:
    path = study.root / AUDIT_DESIGN_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _project(study: Workspace) -> tuple[binary.SocioEmotionalProject, dict, str]:
    url = os.environ.get("LABEL_STUDIO_URL") or study.config().annotation.url
    client = annotation.connect(url, os.environ.get("LABEL_STUDIO_API_KEY"))
    state = _audit_state(study)
    title = f"{study.config().study.name} · population"
    return binary.SocioEmotionalProject(client, title, state.get("project_id")), state, url


def push_filter_audit(study: Workspace) -> dict:
    """Send the audit sample to its Label Studio project (created on first use); blind tasks only."""
    sample = pd.read_parquet(study.require(study.root / AUDIT_FILE, f"empathy corpus audit draw {study.root}"))
    project, state, url = _project(study)
    new, existing = project.push(judge.load_rubric(RUBRIC), sample.to_dict("records"))
    state.update(project_id=project.project_id, url=url, salt=state.get("salt") or secrets.token_hex(8))
    write_json(study.root / AUDIT_DESIGN_FILE, state)
    return {"project": project.title, "project_id": project.project_id, "new_tasks": new, "existing_tasks": existing}


@dataclass
class AuditLabels:
    labels: pd.DataFrame  # LABEL_COLUMNS of annotation.socioemotional
    labelled: int  # audit pairs with at least one answer
    sampled: int
    skipped: int
    unparsed: int
    path: Path


def pull_filter_audit(study: Workspace) -> AuditLabels:
    """Every answer of the project → filter_audit_labels.parquet (replaced whole; written only after
    everything was read)."""
    sample = pd.read_parquet(study.require(study.root / AUDIT_FILE, f"empathy corpus audit draw {study.root}"))
    project, state, _ = _project(study)
    if project.find() is None:
        raise StudyError(f"no Label Studio project {project.title!r}: run `empathy corpus audit push {study.root}`")
    pulled = project.pull(state.get("salt") or "")
    labels = pulled.labels[pulled.labels["pair_id"].isin(set(sample["pair_id"]))]
    path = study.root / AUDIT_LABELS_FILE
    write_parquet(path, labels)
    return AuditLabels(labels, labels["pair_id"].nunique(), len(sample), sum(pulled.skipped.values()),
                       pulled.unparsed, path)


def audit_table(study: Workspace) -> pd.DataFrame:
    """The audit sample with its labels: one row per labelled pair (AUDIT_COLUMNS + texts +
    socio_emotional). A pair with several answers keeps the majority (ties: the latest answer)."""
    sample = pd.read_parquet(study.require(study.root / AUDIT_FILE, f"empathy corpus audit draw {study.root}"))
    labels = pd.read_parquet(study.require(study.root / AUDIT_LABELS_FILE, f"empathy corpus audit pull {study.root}"))
    if labels.empty:
        raise StudyError("no answers pulled yet: label the project in Label Studio, then pull again")
    ordered = labels.sort_values("updated_at", kind="stable")
    votes = ordered.groupby("pair_id")["socio_emotional"].agg(["mean", "last", "size"])
    answer = (votes["mean"] > 0.5) | ((votes["mean"] == 0.5) & votes["last"].astype(bool))
    table = sample.merge(answer.rename("socio_emotional").reset_index(), on="pair_id", how="inner")
    return table.merge(votes["size"].rename("answers").reset_index(), on="pair_id")
