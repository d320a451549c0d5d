"""The one reader of `labels.parquet`: which human labels exist, under which rubric version, and which are gold.

Every stage that uses human labels — `agree`, `export` (the `*_gold` columns), the calibration
app and `annotate plan` — reads them here, so a change to what counts as gold is made once:

- one label per annotator × pair × construct × mode × rubric version: the last one pulled (an
  annotation edited in Label Studio replaces the earlier one);
- a label without a recorded rubric version (pulled before labels carried one) takes the version
  `annotation.json` records for its construct, else "unknown" — never a version it may not have had;
- a label without a score is no label;
- gold = the blind labels of the random audit sample (`mode == "blind"`) of sampled pairs, under
  one rubric version per construct: the version the study's claims are made under (`claim_versions`).

What a rubric edit does to gold. A rubric version is a definition of the construct: annotators and
judges read the same file, so labels under an older text measured something else. An edit does
not void the audit: until blind labels under the new version exist, a construct's claim stays
under the version the audit was labelled under — its gold, and the panel's scores `empathy export`
writes, are that version's, and the export says so. `empathy annotate push` puts the audit pairs
in front of the annotators again under the new text (new projects); as soon as blind labels under
the new version exist, the claim moves to it, scores and gold together (an audit relabelled only in
part is an audit with missing labels: the estimate weights by the labels found and warns below 90
%). Never both at once: a calibration lock made under another version than the claim's is refused
(`study.lock.check_claim`).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from empathy_study import annotation
from empathy_study.study.audit_design import current_design
from empathy_study.study.workspace import StudyConfig, StudyError, Workspace

UNKNOWN_VERSION = "unknown"
COLUMNS = ["pair_id", "construct", "annotator", "score", "mode", "prompt_version", "updated_at"]
_ONE_LABEL = ["pair_id", "construct", "annotator", "mode", "prompt_version"]


def short_version(version: str) -> str:
    """A rubric version as screens and messages show it (its first 8 hex digits; a variant keeps its suffix)."""
    return version[:8] if len(version) > 8 and "+" not in version[:8] else version[:10]


def recorded_versions(study: Workspace) -> dict[str, str]:
    """The rubric version per construct that annotation.json says annotators were shown, if it says."""
    if not study.annotation_state.exists():
        return {}
    state = json.loads(study.annotation_state.read_text(encoding="utf-8"))
    recorded = state.get("prompt_versions") or state.get("prompt_version") or {}
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}


def read_labels(study: Workspace) -> pd.DataFrame:
    """Every label of the study (`COLUMNS`, score as float), by the rules above; empty without labels.parquet."""
    if not study.labels.exists():
        return pd.DataFrame(columns=COLUMNS)
    labels = pd.read_parquet(study.labels)
    for column in ("prompt_version", "updated_at"):
        if column not in labels.columns:
            labels[column] = None
    labels = labels[labels["score"].notna()].copy()
    versions = labels["prompt_version"].astype(object)
    missing = versions.isna()
    versions[missing] = labels.loc[missing, "construct"].map(recorded_versions(study)).fillna(UNKNOWN_VERSION)
    labels["prompt_version"] = versions.astype(str)
    labels["score"] = labels["score"].astype(float)
    labels = labels.drop_duplicates(_ONE_LABEL, keep="last")
    return labels[COLUMNS].reset_index(drop=True)


def under(labels: pd.DataFrame, versions: dict[str, str]) -> pd.DataFrame:
    """The labels made under the given rubric version of their construct (`StudyConfig.prompt_versions()`:
    the current one). Labels under another text measured something else, as judgments under another
    version do."""
    return labels[labels["prompt_version"] == labels["construct"].map(versions)]


def blind(labels: pd.DataFrame, pair_ids=None) -> pd.DataFrame:
    """The blind labels of the audit sample (gold candidates), of the given pairs when given (the sample's)."""
    chosen = labels["mode"] == "blind"
    if pair_ids is not None:
        chosen &= labels["pair_id"].isin(set(pair_ids))
    return labels[chosen]


def versions_of(labels: pd.DataFrame, construct: str) -> list[str]:
    """Rubric versions under which blind labels of the construct exist, most labels first."""
    counts = blind(labels)
    counts = counts.loc[counts["construct"] == construct, "prompt_version"].value_counts(sort=True)
    return [str(v) for v in counts.index]


def claim_versions(labels: pd.DataFrame, current: dict[str, str], pair_ids=None) -> dict[str, str]:
    """Per construct of `current` (the study's rubric versions): the version its claims are made under —
    the current one when blind labels under it exist, or when no blind label exists at all; else the
    version with the most blind labels (of the given pairs: the sample's), which the audit was labelled
    under before the rubric changed."""
    audit = blind(labels, pair_ids)
    found = {}
    for construct, version in current.items():
        counts = audit.loc[audit["construct"] == construct, "prompt_version"].value_counts(sort=True)
        found[construct] = version if version in counts.index or counts.empty else str(counts.index[0])
    return found


def gold_matrix(labels: pd.DataFrame, construct: str, version: str) -> tuple[list[str], list[str], np.ndarray]:
    """(pair ids, annotators, annotators × pairs scores with NaN where unlabelled) of the blind labels of
    one construct under one rubric version."""
    own = blind(labels)
    own = own[(own["construct"] == construct) & (own["prompt_version"] == version)]
    wide = own.pivot_table(index="annotator", columns="pair_id", values="score", aggfunc="last")
    return [str(c) for c in wide.columns], [str(a) for a in wide.index], wide.to_numpy(dtype=float)


def current_scores(study: Workspace, config: StudyConfig) -> pd.DataFrame | None:
    """The annotators' mean score of each labelled pair under the study's current rubrics (pair_id,
    empathy_gold, attachment_gold) — what an active audit's next batch fits its error model on — or
    None before any label exists."""
    if not study.labels.exists():
        return None
    return annotation.gold_scores(under(read_labels(study), config.prompt_versions()))


def gold_columns(study: Workspace, sample: pd.DataFrame, versions: dict[str, str], audit: annotation.AnnotationConfig,
                 labels: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """empathy_gold, attachment_gold (mean over the annotators of the blind audit labels under the given
    rubric versions: `claim_versions`), gold_prob and gold_drawn (the pair was drawn into the audit,
    labelled or not: missing labels are then modelled, not assumed missing completely at random) for the
    sampled pairs — None before any label exists. `audit` is the configured design; the one
    annotation.json records, if any, wins. (`labels`: `read_labels`, if already read.)"""
    if not study.labels.exists():
        return None
    labels = read_labels(study) if labels is None else labels
    gold = annotation.gold_scores(under(blind(labels), versions))
    table = sample[["pair_id"]].merge(gold, on="pair_id", how="left")
    design = current_design(study, audit, table["pair_id"])  # the design used, as annotation.json records it
    if len(design.uncovered):
        raise StudyError(f"{len(design.uncovered):,} sampled pairs are in no batch of the active audit (they joined "
                         "the sample after its last batch), so their probability of being audited is unknown: run "
                         f"`empathy annotate push {study.root}` (raise [annotation] audit_labels if it draws nothing)")
    table["gold_prob"] = design.probability.to_numpy(dtype=np.float64)
    table["gold_drawn"] = design.drawn.to_numpy().astype(np.int8)
    return table
