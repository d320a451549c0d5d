"""What annotators see and what comes back, as pure functions: label configs, task and prediction
payloads, who rates which pair, and the labels table with its gold scores."""

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
# What each text is called where annotators read it (the judge's prompt has its own labels).
_ROLES = {"prev_prompt": "User (an earlier message)", "prev_response": "Assistant (an earlier answer)",
          "prompt": "User", "response": "Assistant", "reply": "User (their next message)"}
# Every control, prediction and annotation points at the object named `dialogue` (the name projects
# made before this view used too): here, the first text of the pair.
TARGET = "dialogue"
# Label Studio's Text shows each line of a text as its own line but collapses the spaces in it;
# `pre-wrap` keeps a code block's indentation as well.
_STYLE = ".lsf-richtext__line { white-space: pre-wrap; }"
_BOX = {"User": "border-left: 4px solid #9fa8da;", "Assistant": "border-left: 4px solid #ffb74d;"}


def control_name(rubric: Rubric) -> str:
    """The rating control is named after its construct: `empathy` or `attachment`."""
    return rubric.construct


def _text(name: str, value: str) -> str:
    """A read-only text: no selection, so no region tools; `value` is `$field` or the text itself."""
    return f"<Text name={quoteattr(name)} value={quoteattr(value)} selectionEnabled=\"false\"/>"


def _message(role: str, text: str, indent: str = "  ") -> list[str]:
    box = _BOX["Assistant" if role.startswith("Assistant") else "User"]
    return [f'{indent}<View style="{box} padding: 0 12px; margin: 8px 0 14px;">',
            f"{indent}  <Header value={quoteattr(role)} size=\"6\"/>", f"{indent}  {text}", f"{indent}</View>"]


def _paragraphs(text: str) -> str:
    """A TOML multi-line string as paragraphs: its line breaks within a paragraph are not breaks."""
    return "\n\n".join(" ".join(p.split()) for p in text.strip().split("\n\n"))


def label_config(rubric: Rubric, review: bool = False) -> str:
    """Label Studio XML for one construct, generated from the same rubric file the judge reads.

    The annotator sees the instruction, the texts the rubric's `context` names (attachment: not
    the assistant's response, and a note where it would be), each as it was written — its line
    breaks, lists and code kept, no timestamps, nothing to select — then the seven level
    descriptions as the choices of one required control, and the rubric's examples of each level
    in a block that opens on a click. Review projects add a read-only box for the judge's rationale.
    """
    header = "Empathy of the assistant's response" if rubric.construct == "empathy" else \
        "Attachment to the assistant, expressed in the user's reply"
    lines = ["<View>", f"  <Style>{_STYLE}</Style>", f"  <Header value={quoteattr(header)} size=\"4\"/>",
             "  " + _text("instruction", _paragraphs(rubric.instruction))]
    for i, name in enumerate(rubric.context):
        if name == "reply" and "response" not in rubric.context:
            lines += ['  <View style="font-style: italic;">',
                      "    " + _text("hidden", "(The assistant's answer between these two messages is hidden on purpose.)"),
                      "  </View>"]
        lines += _message(_ROLES[name], _text(TARGET if i == 0 else name, f"$dialogue.{name}"))
    lines.append(f'  <Choices name="{control_name(rubric)}" toName="{TARGET}" choice="single" required="true" '
                 'showInline="false">')
    for level, text in sorted(rubric.levels.items()):
        lines.append(f"    <Choice value={quoteattr(f'{level} — {text}')} alias=\"{level}\"/>")
    lines.append("  </Choices>")
    examples = [e for e in rubric.examples if all(getattr(e, t) is not None for t in rubric.context)]
    if examples:
        lines += ["  <Collapse>", '    <Panel value="Examples of each level (from the rubric)">', "      <View>"]
        for n, example in enumerate(sorted(examples, key=lambda e: e.level)):
            lines.append(f"        <Header value={quoteattr(f'Level {example.level}: {rubric.levels[example.level]}')} "
                         'size="6"/>')
            texts = "\n\n".join(f"{_ROLES[t]}:\n{getattr(example, t)}" for t in rubric.context)
            lines.append("        " + _text(f"example_{n + 1}", texts))
        lines += ["      </View>", "    </Panel>", "  </Collapse>"]
    if review:
        lines.append('  <Header value="The judge\'s rationale (prediction)" size="6"/>')
        lines.append(f'  <TextArea name="rationale" toName="{TARGET}" editable="false" rows="2" maxSubmissions="0"/>')
    lines.append("</View>")
    return "\n".join(lines)


def dialogue(rubric: Rubric, row: dict) -> dict[str, str]:
    """The texts the rubric's `context` names, by name: the label config shows them in that order."""
    return {name: str(row.get(name) or "") for name in rubric.context}


def task_payload(rubric: Rubric, row: dict, kind: str) -> dict:
    """A task: the pair's id, construct, whether it is audit or calibration, and the texts. No scores."""
    return {"pair_id": str(row["pair_id"]), "construct": rubric.construct, "kind": kind, "dialogue": dialogue(rubric, row)}


def prediction_payload(rubric: Rubric, judge_name: str, prompt_version: str, score: int, rationale: str | None) -> dict:
    result = [{"from_name": control_name(rubric), "to_name": TARGET, "type": "choices",
               "value": {"choices": [str(int(score))]}}]
    if rationale:
        result.append({"from_name": "rationale", "to_name": TARGET, "type": "textarea",
                       "value": {"text": [rationale]}})
    return {"model_version": f"{judge_name}@{prompt_version}", "score": float(score), "result": result}


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
