"""`scored_pairs.parquet`: the sample joined with the panel's scores (and, once they exist, blind gold labels).

The one place where stages meet: the sample (corpus), scores (judge) and labels (annotation).
The file carries its own provenance in the Parquet metadata, read back by `empathy estimate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from empathy_study import judge
from empathy_study.annotation import labelstudio
from empathy_study.shared import CONSTRUCTS, expected_key, judge_column
from empathy_study.study.annotate import AnnotationState
from empathy_study.study.judging import load_sample, read_judgments, scored_counts
from empathy_study.study.labels import blind, claim_versions, gold_columns, read_labels, short_version
from empathy_study.study.lock import apply_lock, lock_sha256, read_lock, validation_record
from empathy_study.study.provenance import provenance, write_with_provenance
from empathy_study.study.selection import export_terminal
from empathy_study.study.workspace import StudyConfig, Workspace


def claim(config: StudyConfig, sample: pd.DataFrame, labels: pd.DataFrame) -> dict[str, dict]:
    """Per construct: the rubric version of the scores and the gold this export writes (one version:
    `labels.claim_versions`), the study's current version, and how many blind labels lie under others."""
    current = config.prompt_versions()
    audit = blind(labels, sample["pair_id"])
    versions = claim_versions(audit, current)
    found = {}
    for construct in CONSTRUCTS:
        own = audit[audit["construct"] == construct]
        found[construct] = {"scores": versions[construct], "gold": versions[construct] if len(own) else None,
                            "current": current[construct],
                            "labels_under_other_versions": int((own["prompt_version"] != versions[construct]).sum())}
    return found


def judge_columns(scores: pd.DataFrame, panel: list[str]) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    """Each panel judge's own score of each construct — its mean over its samples, under the same rubric
    version as the panel column, never calibrated — one column per judge and construct (`judge_column`),
    and construct → judge → column, the record that tells `estimate` which columns these are. Where a
    judge recorded logprob-expected scores of a construct (`logprobs = true`), their mean is a column
    too, under `expected_key(construct)` in the record. NaN where the judge has no successful sample."""
    names = {c: {name: judge_column(c, name) for name in panel} for c in CONSTRUCTS}
    own = scores[scores["construct"].isin(CONSTRUCTS) & scores["judge"].isin(panel)]
    if own.empty:
        return pd.DataFrame(columns=["pair_id", *(col for c in CONSTRUCTS for col in names[c].values())]), names
    wide = own.set_index(["pair_id", "construct", "judge"])[["score", "expected_score"]].unstack(["construct", "judge"])
    columns = {column: wide[("score", c, name)] if ("score", c, name) in wide.columns
               else pd.Series(float("nan"), wide.index) for c in CONSTRUCTS for name, column in names[c].items()}
    for c in CONSTRUCTS:
        expected = {name: wide[("expected_score", c, name)] for name in panel
                    if ("expected_score", c, name) in wide.columns and wide[("expected_score", c, name)].notna().any()}
        if expected:
            names[expected_key(c)] = {name: judge_column(expected_key(c), name) for name in expected}
            columns.update({names[expected_key(c)][name]: values for name, values in expected.items()})
    table = pd.DataFrame(columns, index=wide.index)
    return table.astype(float).rename_axis("pair_id").reset_index(), names


def scored_pairs(study: Workspace, judgments: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict]:
    """The joined table and what it was made from (`judgments`: the log's frame, if already read).

    Scores and gold of each construct are under one rubric version (`claim`): the current one once
    the audit has blind labels under it, until then the version the audit was labelled under.
    """
    config = study.config()
    sample = load_sample(study)
    labels = read_labels(study)
    under_version = claim(config, sample, labels)
    claimed = {c: v["scores"] for c, v in under_version.items()}
    versions = {**config.judged_versions(), **claimed}  # the study's constructs and the checks it opted in to
    judgments = read_judgments(study) if judgments is None else judgments
    scores = judge.judge_scores(judgments, config.judges, versions)
    panel = [j.name for j in config.judges]
    controls = [c for c in judge.CONTROLS if c in versions]  # e.g. prompt_attachment: a column of its own
    table = sample.merge(judge.panel_scores(scores, panel, [*CONSTRUCTS, *controls]), on="pair_id", how="left")
    own, own_columns = judge_columns(scores, panel)
    table = table.merge(own, on="pair_id", how="left")  # kept raw below, whatever a lock does to the panel column
    lock = read_lock(study)
    validated: dict[str, dict | None] = {c: None for c in CONSTRUCTS}
    if lock and lock.get("constructs"):
        calibrated, applied = apply_lock(judgments, config, lock, claimed)
        lock_hash = lock_sha256(study)
        for construct, entry in applied.items():
            # The raw panel mean stays beside the calibrated score it was replaced by.
            table[f"{construct}_raw"] = table[construct]
            table = table.drop(columns=[construct, f"{construct}_judges"]).merge(
                calibrated[["pair_id", construct, f"{construct}_judges"]], on="pair_id", how="left")
            validated[construct] = validation_record(entry, lock_hash)
    for construct in [*CONSTRUCTS, *controls]:
        table[f"{construct}_judges"] = table[f"{construct}_judges"].fillna(0).astype(int)
    if study.labels.exists():
        labelstudio.refuse_recorded(AnnotationState.load(study).foreign_accounts, "empathy export",
                                    config.annotation.allow_foreign_accounts)
    gold = gold_columns(study, sample, claimed, config.annotation, labels)
    if gold is not None:
        table = table.merge(gold, on="pair_id", how="left")
    current = judge.current_judgments(judgments, config.judges, versions)
    warnings = judge.judge_warnings(current)
    made_from = {
        "prompt_versions": versions,  # of the scores in the file (`rubric` says why, where not the current ones)
        "rubric": under_version,
        "judges": [j.model_dump(exclude={"api_key_env"}) for j in config.judges],
        "scores_from": scored_counts(scores),  # the judges whose scores are actually in the table
        "judged": {c: int(table[c].notna().sum()) for c in [*CONSTRUCTS, *controls]},
        "partial_panel": {c: int(((table[f"{c}_judges"] > 0) & table[c].isna()).sum()) for c in CONSTRUCTS},
        "gold": {c: int(table[f"{c}_gold"].notna().sum()) for c in CONSTRUCTS} if gold is not None else None,
        "rows": int(len(table)),
        "aggregate": "empathy / attachment = mean over the panel's judges of each judge's mean over its samples, "
                     "only where every judge of the panel scored the pair; a construct locked in calibration.json "
                     "instead holds the locked aggregate of the locked judges' calibrated scores (the raw mean in "
                     "<construct>_raw); <construct>__<judge> (the columns `panel_columns` names) = that judge's own "
                     "mean over its samples under the same rubric version, raw even where a lock replaced the panel "
                     "column, NaN where it has no successful sample",
        "panel_columns": own_columns,  # construct → judge → its column: what `estimate` reads, not guessed from names
        "validated": validated,
        "judge_warnings": warnings,
        # The panel cannot make a study (embedded judges only, flat scores): said on screen and kept here.
        "panel_note": judge.study_judge_note(config.judges, warnings, str(study.root)),
    }
    return table, made_from


def export_notes(study: Workspace, made_from: dict) -> list[str]:
    """What the researcher must read before estimating from the file just written, one paragraph each:
    a construct kept on an older rubric (and how to move it), gold missing, a panel that cannot make a study."""
    notes = []
    for construct, v in made_from["rubric"].items():
        if v["scores"] != v["current"]:
            notes.append(
                f"{construct}: the rubric changed (now {short_version(v['current'])}) after the blind audit was labelled under "
                f"{short_version(v['scores'])}: {construct} and {construct}_gold stay under {short_version(v['scores'])} — judges' "
                f"scores and gold alike — until blind labels under {short_version(v['current'])} exist. `empathy annotate push "
                f"{study.root}` puts the audit pairs before the annotators under the new text; pull and export again")
        elif v["labels_under_other_versions"]:
            notes.append(f"{construct}: {v['labels_under_other_versions']} blind label(s) under earlier rubric versions "
                         f"are not gold (the gold is under the current rubric {short_version(v['current'])})")
    gold = made_from["gold"]
    if gold is not None:
        empty = [c for c, n in gold.items() if n == 0]
        if empty:
            notes.append(f"{' and '.join(f'{c}_gold' for c in empty)} empty: labels.parquet holds no blind audit label "
                         f"of {' or '.join(empty)} for the sampled pairs; the estimate has no human labels to correct "
                         "the judges with there")
    notes += [w["message"] for w in made_from["judge_warnings"]]
    return notes + ([made_from["panel_note"]] if made_from["panel_note"] else [])


@dataclass
class ExportResult:
    table: pd.DataFrame
    record: dict  # the provenance written into the file
    path: Path
    terminal: Path | None = None  # scored_terminal_pairs.parquet, written when a terminal sample exists
    notes: list[str] = field(default_factory=list)  # what to read before estimating (`export_notes`)


def export(study: Workspace) -> ExportResult:
    """Write DIR/scored_pairs.parquet, the input of `empathy estimate`."""
    judgments = read_judgments(study)
    table, made_from = scored_pairs(study, judgments)
    inputs = {"sample": study.sample, **({"judgments": study.judgments} if study.judgments.exists() else {}),
              **({"calibration": study.calibration} if study.calibration.exists() else {})}
    record = provenance(inputs=inputs, **made_from)
    write_with_provenance(table, record, study.scored_pairs)
    terminal = export_terminal(study, judgments, {"empathy": made_from["rubric"]["empathy"]["scores"]})
    return ExportResult(table, record, study.scored_pairs, terminal, export_notes(study, made_from))


def validation_note(recorded: dict) -> str:
    """One line on whether a scored-pairs file's scores were validated against human labels, and by what."""
    validated = recorded.get("validated")
    if not validated or not any(validated.values()):
        return ("warning: these scores were never validated against human labels (no calibration lock): "
                "`empathy calibrate DIR` locks a validated panel, `empathy export DIR` applies it")
    parts, doubtful = [], False
    gold = recorded.get("gold") or {}
    for construct, entry in validated.items():
        if entry is None:
            parts.append(f"{construct} NOT validated (raw panel mean)")
            continue
        alpha, ci = entry.get("alpha_held_out"), entry.get("alpha_ci")
        figure = f"α {alpha:.2f}" if alpha is not None else "α undefined"
        figure += f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        judges = "+".join(j["name"] for j in entry["judges"])
        version = entry.get("label_version")
        caveats = []
        if entry.get("override"):
            caveats.append(f"LOCKED BELOW THE AGREEMENT FLOOR {entry['override']['floor']} (override)")
        if not gold.get(construct):
            caveats.append(f"none of those labels is in this file's {construct}_gold")
        doubtful |= bool(caveats)
        parts.append(f"{construct} validated ({judges}, {entry['aggregate']['how']}; held-out {figure} on "
                     f"{entry['n_gold']} gold labels{f' under rubric {short_version(version)}' if version else ''}; "
                     f"locked {entry['locked_at'][:10]}{'; SIMULATED labels' if entry.get('simulated') else ''}"
                     + "".join(f"; {c}" for c in caveats) + ")")
    prefix = "scores: " if all(validated.values()) and not doubtful else "warning: scores only partly validated: "
    return prefix + "; ".join(parts)
