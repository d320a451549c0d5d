"""The calibration lock, `DIR/calibration.json`: written by the calibration app, read by every stage
that must know whether scores were validated, and applied by `empathy export`.

A lock holds, per construct, the locked judges (name, model, temperature, rubric version, score
source), each judge's isotonic map, the panel aggregate and the evidence the app measured on
held-out folds. Applying it never refits anything: the maps are read back and applied to the
judgments of the locked judges under the locked rubric version.

Two rules keep a lock's claim true:

- **A floor.** The calibrated panel's held-out α ordinal against the gold labels must reach
  `MIN_ALPHA` (0.667, Krippendorff's lowest level for tentative conclusions — the `tentative`
  threshold of every agreement verdict); below it (or undefined) a lock is refused unless the user
  overrides, and the override is written into the lock's evidence and said wherever the lock is.
- **One rubric version.** A lock's judges were scored, and its gold labels made, under one rubric
  version; `empathy export` applies it only while the construct's claim is made under that version
  (`study.labels.claim_versions`), and refuses the export otherwise.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import numpy as np
import pandas as pd

from empathy_study import judge
from empathy_study.annotation import calibration as stats
from empathy_study.annotation.agreement import TENTATIVE
from empathy_study.shared import write_json
from empathy_study.study.provenance import provenance
from empathy_study.study.workspace import StudyConfig, StudyError, Workspace

LOCK_SCHEMA = 1
MIN_ALPHA = TENTATIVE  # held-out α ordinal a lock needs, unless overridden (recorded in the lock)


def below_floor(alpha: float | None) -> bool:
    return alpha is None or alpha < MIN_ALPHA


def check_claim(construct: str, locked: dict, version: str) -> None:
    """Refuse a lock whose judges or labels are under another rubric version than the construct's claim."""
    judged = sorted({j["rubric_version"] for j in locked["judges"]})
    labelled = locked["evidence"].get("label_version")
    if judged == [version] and labelled == version:
        return
    raise StudyError(
        f"the calibration lock of {construct} was fitted on judges under rubric {', '.join(judged)} and gold labels "
        f"under {labelled}, but the study's {construct} scores and gold are now under rubric {version} (the version "
        "of its blind audit labels): one claim is made under one rubric — lock again in `empathy calibrate`, or "
        "remove calibration.json")


def read_lock(study: Workspace) -> dict | None:
    """The study's lock, or None when nothing was locked."""
    if not study.calibration.exists():
        return None
    try:
        lock = json.loads(study.calibration.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise StudyError(f"{study.calibration} is not valid JSON: {exc}") from exc
    if lock.get("schema_version") != LOCK_SCHEMA:
        raise StudyError(f"{study.calibration} has lock schema {lock.get('schema_version')}, this version reads "
                         f"{LOCK_SCHEMA}")
    return lock


def lock_sha256(study: Workspace) -> str:
    return hashlib.sha256(study.calibration.read_bytes()).hexdigest()


def entry(*, judges: list[judge.JudgeConfig], version: str, source: str, final: stats.PanelFit, how: str,
          evidence: dict, locked_at: datetime) -> dict:
    """One construct's lock: the judges as the panel names them, their maps, the aggregate, the evidence."""
    return {
        "judges": [{"name": j.name, "model": j.model, "temperature": float(j.temperature), "rubric_version": version,
                    "source": source, "map": final.maps[k].to_json()} for k, j in enumerate(judges)],
        "aggregate": {"how": how, "weights": (dict(zip((j.name for j in judges), map(float, final.weights)))
                                              if final.weights is not None else None)},
        "evidence": {"locked_at": locked_at.isoformat(timespec="seconds"), **evidence},
    }


def write_lock(study: Workspace, construct: str, locked: dict) -> dict:
    """Put one construct's lock into DIR/calibration.json (the other constructs' locks stay); the whole
    lock as written."""
    current = read_lock(study) or {"schema_version": LOCK_SCHEMA, "constructs": {}}
    current["constructs"][construct] = locked
    current["simulated"] = any(c["evidence"]["simulated"] for c in current["constructs"].values())
    current["provenance"] = provenance(inputs={"labels": study.labels, "judgments": study.judgments})
    write_json(study.calibration, current)
    return current


def apply_lock(frame: pd.DataFrame, config: StudyConfig, lock: dict, versions: dict[str, str]
               ) -> tuple[pd.DataFrame, dict]:
    """Apply a lock to the judgment records: pair_id → `<construct>`, `<construct>_judges` for each
    locked construct, and what was applied. `versions`: the rubric version each construct's claim is
    made under (`check_claim` refuses a lock made under another).

    Only judgments of the locked judges (same name, model and temperature as in the panel now) under
    the locked rubric version count; a pair gets a calibrated score only where every locked judge has
    a value, as the raw panel mean does.
    """
    panel = {j.name: j for j in config.judges}
    identity = ["judge", "model", "temperature"]
    own = judge.of_panel(frame[identity].drop_duplicates(), config.judges) if not frame.empty else frame[identity]
    scores = judge.version_scores(frame.merge(own, on=identity, how="inner"))
    out, applied = None, {}
    for construct, locked_entry in lock.get("constructs", {}).items():
        check_claim(construct, locked_entry, versions[construct])
        columns = []
        for locked in locked_entry["judges"]:
            now = panel.get(locked["name"])
            if now is None or now.model != locked["model"] or float(now.temperature) != locked["temperature"]:
                raise StudyError(f"the calibration lock of {construct} names judge {locked['name']} "
                                 f"({locked['model']}, temperature {locked['temperature']}), which is not in the "
                                 "panel of study.toml as locked: lock again in `empathy calibrate` or remove "
                                 "calibration.json")
            mine = scores[(scores["construct"] == construct) & (scores["judge"] == locked["name"])
                          & (scores["prompt_version"] == locked["rubric_version"])]
            mapped = stats.IsotonicMap.from_json(locked["map"]).apply(mine[locked["source"]].to_numpy(dtype=float))
            columns.append(pd.Series(mapped, index=mine["pair_id"].to_numpy(), name=locked["name"]))
        wide = pd.concat(columns, axis=1)
        weights = locked_entry["aggregate"]["weights"]
        complete = wide.notna().all(axis=1)
        values = stats.aggregate(wide[complete].to_numpy(), locked_entry["aggregate"]["how"],
                                 [weights[n] for n in wide.columns] if weights else None)
        result = pd.DataFrame({"pair_id": wide.index, construct: np.nan,
                               f"{construct}_judges": wide.notna().sum(axis=1).to_numpy()})
        result.loc[complete.to_numpy(), construct] = values
        out = result if out is None else out.merge(result, on="pair_id", how="outer")
        applied[construct] = locked_entry
    return (out if out is not None else pd.DataFrame(columns=["pair_id"])), applied


def validation_record(locked: dict, lock_hash: str) -> dict:
    """What scored_pairs.parquet says about a construct's validated scores: which lock, judges, evidence."""
    evidence = locked["evidence"]
    after = evidence["after_held_out"].get("panel", {})
    return {
        "lock_sha256": lock_hash,
        "locked_at": evidence["locked_at"],
        "simulated": evidence["simulated"],
        "judges": [{k: j[k] for k in ("name", "model", "temperature", "rubric_version", "source")}
                   for j in locked["judges"]],
        "aggregate": locked["aggregate"],
        "n_gold": evidence["n_gold"],
        "label_version": evidence["label_version"],
        "alpha_held_out": after.get("alpha"),
        "alpha_ci": after.get("ci"),
        "mae_held_out": after.get("mae"),
        "ceiling": evidence["ceiling"],
        "override": evidence.get("override"),
    }

