"""Rubrics as versioned data: one TOML file per construct renders the judge prompt and the annotator view."""

from __future__ import annotations

import hashlib
import json
import tomllib
import warnings
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from empathy_study.shared import CONSTRUCTS, Construct

from ._errors import JudgeError

Text = Literal["prev_prompt", "prev_response", "prompt", "response", "reply"]
LABELS = {"prompt": "User's message", "response": "Assistant's response", "reply": "User's reply",
          "prev_prompt": "User's earlier message", "prev_response": "Assistant's earlier response"}
# Which level sets a rubric may have: the 1–7 scales of the study's constructs, and binary (0 = no,
# 1 = yes) for classification rubrics such as the corpus's socio-emotional pass.
SCALE = tuple(range(1, 8))
BINARY = (0, 1)
CLASSIFIERS = ("socioemotional",)  # rubrics that classify pairs; never constructs of the study
# Scales judged only as checks of the design, never a treatment or outcome of the study: the attachment
# the prompt already expresses is the negative-control outcome (opt-in: `[judge] negative_control`).
CONTROLS = ("prompt_attachment",)
MAX_CHARS = 1_500  # per text in a judge prompt: small local models have short contexts


class Example(BaseModel):
    level: int = Field(ge=0, le=7)
    prompt: str
    response: str | None = None
    reply: str | None = None
    prev_prompt: str | None = None
    prev_response: str | None = None


# `construct` is the contract's column name; it shadows pydantic's deprecated BaseModel.construct.
warnings.filterwarnings("ignore", message='Field name "construct"', category=UserWarning)


class Rubric(BaseModel):
    construct: Construct | Literal["socioemotional", "prompt_attachment"]
    instruction: str
    context: list[Text]
    levels: dict[int, str]
    examples: list[Example]
    version: str  # see `load_rubric`

    @field_validator("levels", mode="before")
    @classmethod
    def _integer_levels(cls, value: dict) -> dict[int, str]:
        levels = {int(k): v for k, v in value.items()}
        if tuple(sorted(levels)) not in (SCALE, BINARY):
            raise ValueError("levels must be exactly 1..7 (a scale) or 0, 1 (binary)")
        return levels

    @property
    def level_set(self) -> tuple[int, ...]:
        """The levels a judgment may take: a judge's answer is constrained to exactly these."""
        return tuple(sorted(self.levels))


def rubric_bytes(construct: str, directory: Path | None = None) -> bytes:
    """The rubric file of a construct: `directory/<construct>.toml` where it exists (a study's own
    copy), else the packaged one."""
    if construct not in CONSTRUCTS + CLASSIFIERS + CONTROLS:
        known = ", ".join(CONSTRUCTS + CLASSIFIERS + CONTROLS)
        raise JudgeError(f"unknown construct {construct!r}: choose one of {known}")
    if directory is not None and (directory / f"{construct}.toml").is_file():
        return (directory / f"{construct}.toml").read_bytes()
    return resources.files("empathy_study.prompts").joinpath(f"{construct}.toml").read_bytes()


def load_rubric(construct: str, context: list[str] | None = None, directory: Path | None = None) -> Rubric:
    """The rubric of a construct (a copy in `directory` replaces the packaged one); `context`
    overrides which texts the rater sees."""
    data = rubric_bytes(construct, directory)
    where = directory / f"{construct}.toml" if directory is not None and (directory / f"{construct}.toml").is_file() \
        else f"the packaged rubric {construct}"
    try:
        raw = tomllib.loads(data.decode("utf-8"))
        if raw.get("construct", construct) != construct:
            raise JudgeError(f"{where}: construct = {raw.get('construct')!r}, expected {construct!r}")
        return _versioned(raw, data, construct, context)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValidationError, TypeError, KeyError) as exc:
        raise JudgeError(f"{where} is not a valid rubric: {_first_error(exc)}") from exc


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'file'}: {first['msg']}"
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}"
    return str(exc)


def _versioned(raw: dict, data: bytes, construct: str, context: list[str] | None) -> Rubric:
    suffix = ""
    if context is not None and list(context) != raw["context"]:
        raw["context"] = list(context)
        suffix = f"+{'-'.join(context)}"
    rubric = Rubric(version="unversioned", **raw)
    rubric.version = prompt_version(data, rubric) + suffix
    for example in rubric.examples:
        missing = [t for t in rubric.context if getattr(example, t) is None]
        if missing and context is None:
            raise JudgeError(f"rubric {construct}: an example lacks {', '.join(missing)}")
    return rubric


def prompt_version(data: bytes, rubric: Rubric) -> str:
    """The rubric file's bytes and the prompt rendered around a probe pair, hashed together.

    A judgment is reused only under the same version, so the version must change whenever the
    judge would read something different: an edited rubric file, and equally an edited template,
    label or clipping rule in this module.
    """
    probe = {name: f"<{name}>" + "x" * MAX_CHARS for name in LABELS}
    rendered = json.dumps(render_messages(rubric, probe), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data + b"\0" + rendered).hexdigest()[:16]


def _clip(text: str) -> str:
    text = (text or "").strip()
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + " […]"


def render_texts(rubric: Rubric, texts: dict[str, str]) -> str:
    return "\n\n".join(f"{LABELS[name]}:\n\"\"\"\n{_clip(texts.get(name, ''))}\n\"\"\"" for name in rubric.context)


def scale_text(rubric: Rubric) -> str:
    return "\n".join(f"{level} = {text}" for level, text in sorted(rubric.levels.items()))


def render_messages(rubric: Rubric, texts: dict[str, str]) -> list[dict[str, str]]:
    """Chat messages for one judgment: instruction, scale, one example per level, then the pair."""
    examples = "\n\n".join(
        f"Example at level {e.level}:\n" + render_texts(rubric, e.model_dump()) for e in rubric.examples
        if all(getattr(e, t) is not None for t in rubric.context)
    )
    system = (
        f"{rubric.instruction.strip()}\n\nScale:\n{scale_text(rubric)}\n\n{examples}\n\n"
        "Answer with a JSON object: a one-sentence \"rationale\", then the integer \"score\" "
        f"({min(rubric.levels)}-{max(rubric.levels)})."
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": render_texts(rubric, texts) + "\n\nRate it."},
    ]


def study_rubrics(attachment_context: list[str], directory: Path | None = None) -> dict[str, Rubric]:
    """The rubric of each construct as a study uses it: a copy in `directory` (the study's
    `rubrics/`) replaces the packaged file; attachment's context may be overridden."""
    return {"empathy": load_rubric("empathy", directory=directory),
            "attachment": load_rubric("attachment", attachment_context, directory)}


def control_rubrics(negative_control: bool, directory: Path | None = None) -> dict[str, Rubric]:
    """The check constructs a study opted in to: `prompt_attachment` (the negative-control outcome)."""
    return {"prompt_attachment": load_rubric("prompt_attachment", directory=directory)} if negative_control else {}


def swap_check_rubrics(directory: Path | None = None) -> tuple[Rubric, Rubric]:
    """The response-swap check's two attachment rubrics: the response shown, and another pair's
    response shown in its place (same text; its own version, so its scores never mix). A study's
    own attachment rubric in `directory` is the one checked, as it is the one its judges read."""
    shown = load_rubric("attachment", context=["prompt", "response", "reply"], directory=directory)
    return shown, shown.model_copy(update={"version": shown.version + "+swapped"})
