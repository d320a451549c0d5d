"""What annotators see and what comes back, as pure functions: label configs, task and prediction
payloads, the audit draw, who rates which pair, and the labels table with its gold scores."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # a type only: judge imports this package for its agreement figures
    from empathy_study.judge import Rubric

LABEL_COLUMNS = ("pair_id", "construct", "annotator", "score", "mode", "annotation_id", "updated_at", "prompt_version")
MODES = ("blind", "review", "calibration")
BLIND_TASK_KEYS = {"pair_id", "construct", "kind", "dialogue"}  # nothing else, ever, in a blind task
_ROLES = {"prompt": "User", "response": "Assistant", "reply": "User (next message)"}


def control_name(rubric: Rubric) -> str:
    """The rating control is named after its construct: `empathy` or `attachment`."""
    return rubric.construct


def label_config(rubric: Rubric, review: bool = False) -> str:
    """Label Studio XML for one construct, generated from the same rubric file the judge reads.

    The annotator sees the instruction, the texts the rubric's `context` names (attachment: not
    the assistant's response), and the seven level descriptions as the choices of one required
    control. Review projects add a read-only box for the judge's rationale.
    """
    header = "Empathy of the assistant's response" if rubric.construct == "empathy" else \
        "Attachment to the assistant, expressed in the user's reply"
    lines = ["<View>", f"  <Header value={quoteattr(header)} size=\"4\"/>"]
    for paragraph in rubric.instruction.strip().split("\n\n"):  # TOML line breaks are not paragraph breaks
        lines.append(f"  <Header value={quoteattr(' '.join(paragraph.split()))} size=\"6\"/>")
    if "response" not in rubric.context:
        lines.append('  <Header value="(The assistant\'s answer between these two messages is hidden on purpose.)" size="6"/>')
    lines.append('  <Paragraphs name="dialogue" value="$dialogue" layout="dialogue" nameKey="role" textKey="content"/>')
    lines.append(f'  <Choices name="{control_name(rubric)}" toName="dialogue" choice="single" required="true" '
                 'showInline="false">')
    for level, text in sorted(rubric.levels.items()):
        lines.append(f"    <Choice value={quoteattr(f'{level} — {text}')} alias=\"{level}\"/>")
    lines.append("  </Choices>")
    if review:
        lines.append('  <Header value="The judge\'s rationale (prediction)" size="6"/>')
        lines.append('  <TextArea name="rationale" toName="dialogue" editable="false" rows="2" maxSubmissions="0"/>')
    lines.append("</View>")
    return "\n".join(lines)


def dialogue(rubric: Rubric, row: dict) -> list[dict[str, str]]:
    return [{"role": _ROLES[name], "content": str(row.get(name) or "")} for name in rubric.context]


def task_payload(rubric: Rubric, row: dict, kind: str) -> dict:
    """A task: the pair's id, construct, whether it is audit or calibration, and the texts. No scores."""
    return {"pair_id": str(row["pair_id"]), "construct": rubric.construct, "kind": kind, "dialogue": dialogue(rubric, row)}


def prediction_payload(rubric: Rubric, judge_name: str, prompt_version: str, score: int, rationale: str | None) -> dict:
    result = [{"from_name": control_name(rubric), "to_name": "dialogue", "type": "choices",
               "value": {"choices": [str(int(score))]}}]
    if rationale:
        result.append({"from_name": "rationale", "to_name": "dialogue", "type": "textarea",
                       "value": {"text": [rationale]}})
    return {"model_version": f"{judge_name}@{prompt_version}", "score": float(score), "result": result}


def audit_draw(pair_ids: pd.Series, rate: float, seed: int) -> np.ndarray:
    """Poisson sampling: each pair enters the audit sample independently with probability `rate`.

    The draw hashes the pair's id with the seed, so a pair added to the sample later gets the same
    known probability and every earlier decision stays as it was.
    """
    uniform = np.array([int(hashlib.sha256(f"{seed}:{p}".encode()).hexdigest()[:15], 16) / 16**15 for p in pair_ids])
    return uniform < rate


def pseudonym(email: str, salt: str) -> str:
    """Stable within a study (and across the servers a person works on), never the e-mail itself."""
    return "annotator-" + hashlib.sha256(f"{salt}:{email.strip().lower()}".encode()).hexdigest()[:10]


def _unit(*parts) -> float:
    """A uniform draw in [0, 1) from a hash of the parts: the same parts, the same draw, on any machine."""
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:15], 16) / 16**15


def assign_annotators(pair_ids, annotators: list[str], overlap: int, overlap_share: int, seed: int) -> dict[str, list[str]]:
    """pair_id → the annotators who rate it, each on their own server (blind to one another).

    `overlap_share` percent of the pairs (a hash draw) go to `overlap` annotators, the rest to one;
    which ones by rendezvous hashing: the load is even, and a pair's draw does not depend on the
    other pairs, so pairs added later leave earlier ones as they were. An annotator added later is
    given the pairs where they now rank among the first k (tasks already pushed stay with whoever
    had them). Capped at the number of annotators.
    """
    out: dict[str, list[str]] = {}
    if not annotators:
        return out
    for pair in pair_ids:
        k = overlap if _unit("overlap", seed, pair) < overlap_share / 100 else 1
        ranked = sorted(annotators, key=lambda a: _unit("rater", seed, pair, a))
        out[str(pair)] = ranked[:min(k, len(annotators))]
    return out


def gold_scores(labels: pd.DataFrame) -> pd.DataFrame:
    """pair_id → empathy_gold, attachment_gold: mean over annotators of blind audit labels only.

    Review labels (annotators saw the judge) and calibration labels (not a random draw) never count.
    """
    blind = labels[labels["mode"] == "blind"]
    columns = ["pair_id", "empathy_gold", "attachment_gold"]
    if blind.empty:
        return pd.DataFrame(columns=columns)
    wide = blind.groupby(["pair_id", "construct"])["score"].mean().unstack("construct")
    wide = wide.rename(columns={c: f"{c}_gold" for c in wide.columns})
    for column in columns[1:]:
        if column not in wide.columns:
            wide[column] = np.nan
    return wide.reset_index()[columns]
