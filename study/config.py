"""`study.toml`: its model (`StudyConfig`, one table per stage, each stage's own pydantic model), the
messages for a file with a mistake in it, and the two documents rendered from the models' field
descriptions — the commented template `empathy init` writes and the reference page
docs/configuration.md (`make docs` writes it; a test fails when it is stale or when a key has no
description).
"""

from __future__ import annotations

import difflib
import json
import textwrap
import typing
from pathlib import Path

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from empathy_study.annotation import AnnotationConfig
from empathy_study.causal import CausalConfig
from empathy_study.corpus import CorpusConfig, SampleConfig
from empathy_study.judge import JudgeConfig, JudgeSettings, Rubric, control_rubrics, default_panel, study_rubrics

RUBRICS_DIR = "rubrics"  # DIR/rubrics/<construct>.toml replaces the packaged rubric for that study


class StudySection(BaseModel):
    """The `[study]` table."""

    model_config = ConfigDict(extra="forbid")
    # Label Studio titles hold at most 50 characters: "<name> · attachment · review" must fit.
    name: str = Field("empathy-study", min_length=1, max_length=28,
                      description="names the Label Studio projects and reports")


class StudyConfig(BaseModel):
    """The whole of `study.toml`; each stage reads its own table."""

    model_config = ConfigDict(extra="forbid")
    study: StudySection = Field(default_factory=StudySection, description="the study's name")
    corpus: CorpusConfig = Field(
        default_factory=CorpusConfig,
        description="how `empathy corpus build` filters turn-pairs (lengths in characters), how it runs, and who "
                    "judges `empathy corpus classify`")
    sample: SampleConfig = Field(default_factory=SampleConfig,
                                 description="the strata of `empathy corpus sample` and how its sample is allocated")
    judge: JudgeSettings = Field(default_factory=JudgeSettings,
                                 description="what applies to the whole judge panel")
    judges: list[JudgeConfig] = Field(
        default_factory=default_panel,
        description="the judge panel: one [[judges]] table per judge. `model` is any LiteLLM model string "
                    "(openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest, gemini/gemini-1.5-flash, groq/…, "
                    "mistral/…, ollama/…, or any OpenAI-compatible server through api_base), or local/smollm2, "
                    "local/gemma3-270m: the embedded llama.cpp judge, no network. API keys never go here: "
                    "api_key_env names the environment variable that holds one")
    annotation: AnnotationConfig = Field(
        default_factory=AnnotationConfig,
        description="Label Studio and the blind audit. The admin key only ever comes from LABEL_STUDIO_API_KEY; "
                    "`make labelstudio` starts the study's main server, `make labelstudio-annotator NAME=…` an "
                    "annotator's own, which `empathy annotate add-annotator DIR EMAIL --url URL` registers (in "
                    "DIR/annotation.json, not here)")
    causal: CausalConfig = Field(default_factory=CausalConfig,
                                 description="the defaults of `empathy estimate` on this study's scored pairs "
                                             "(its options override them)")
    _root: Path | None = PrivateAttr(None)  # the study directory it was read from (its rubric copies)

    def at(self, root: Path) -> "StudyConfig":
        """This configuration as the study in `root` uses it (its own rubric copies included)."""
        self._root = root
        return self

    @field_validator("judges")
    @classmethod
    def _unique_names(cls, judges: list[JudgeConfig]) -> list[JudgeConfig]:
        names = [j.name for j in judges]
        if len(set(names)) != len(names):
            raise ValueError("two [[judges]] tables share a name")
        if not judges:
            raise ValueError("the panel needs at least one [[judges]] table")
        return judges

    def rubrics(self) -> dict[str, Rubric]:
        """Each construct's rubric as this study uses it: the study's copy `DIR/rubrics/<construct>.toml`
        where one exists, else the packaged one (attachment's context from `[judge]`)."""
        return study_rubrics(self.judge.attachment_context, self.rubrics_dir)

    @property
    def rubrics_dir(self) -> Path | None:
        """Where the study keeps its own rubric copies (None for a configuration read from no study)."""
        return self._root / RUBRICS_DIR if self._root else None

    def prompt_versions(self) -> dict[str, str]:
        """The rubric version per construct that this study's judgments must carry to count."""
        return {construct: rubric.version for construct, rubric in self.rubrics().items()}

    def judged_rubrics(self) -> dict[str, Rubric]:
        """What `empathy judge run` scores: the study's constructs, and the checks it opted in to
        (`prompt_attachment`, the negative-control outcome). Annotation and agreement use `rubrics()`."""
        return {**self.rubrics(), **control_rubrics(self.judge.negative_control, self.rubrics_dir)}

    def judged_versions(self) -> dict[str, str]:
        """The rubric version of everything the judges score (`judged_rubrics`)."""
        return {construct: rubric.version for construct, rubric in self.judged_rubrics().items()}


def config_problem(error: ValidationError, raw: dict) -> str:
    """The first thing wrong with a study.toml, said the way its author wrote it: the table as it is
    written in the file, the key it probably meant, single versus double brackets."""
    problems = error.errors()
    # A misspelt key also makes the key it stands for "missing": the misspelling explains both.
    first = next((p for p in problems if p["type"] == "extra_forbidden"), problems[0])
    loc, kind = tuple(first["loc"]), first["type"]
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    if kind == "extra_forbidden":
        *parent, key = loc
        return unknown_key_message(tuple(parent), str(key), raw) + more
    if kind == "model_type" and len(loc) == 1 and isinstance(first.get("input"), list):
        name = loc[0]
        if name == "judge":
            return ("[[judge]] (double brackets) makes a list of tables, but [judge] is one table of settings for the "
                    "whole panel; each judge of the panel is its own [[judges]] table (with an s)")
        return f"[[{name}]] (double brackets) makes a list of tables; [{name}] is one table: write [{name}]{more}"
    if kind == "list_type" and len(loc) == 1 and isinstance(first.get("input"), dict):
        name = loc[0]
        return (f"[{name}] (single brackets) is one table, but {name} is a list: write one [[{name}]] table "
                f"(double brackets) per item{more}")
    *parent, key = loc if loc else ("",)
    got = first.get("input")
    shown = "" if kind == "missing" or isinstance(got, (dict, list)) else f" (got {got!r})"
    return f"{_where(tuple(parent), raw)}: {key}: {first['msg']}{shown}{more}"


# Keys that were renamed because one name meant two things; an old name gets the new one in its error.
RENAMED = {
    ("corpus", "backend"): ("build_backend", "[causal] backend is where the estimate runs"),
    ("corpus", "judges"): ("classify_judges", "[[judges]] is the panel itself"),
}


def unknown_key_message(parent: tuple, key: str, raw: dict) -> str:
    renamed = RENAMED.get((*(p for p in parent if not isinstance(p, int)), key))
    if renamed:
        new, why = renamed
        return (f"{_where(parent, raw)}: {key!r} is now called {new!r} ({why}): rename it to "
                f"{new} = {toml_value(_lookup(raw, (*parent, key)))}")
    known = _keys_at(parent)
    guess = _guess(key, known)
    if not parent:
        tables = ", ".join(f"[[{k}]]" if k == "judges" else f"[{k}]" for k in known)
        hint = f"did you mean {'[[judges]]' if guess == 'judges' else f'[{guess}]'}? " if guess else ""
        return f"unknown table [{key}]: {hint}the tables are {tables}"
    hint = f"did you mean {guess!r}?" if guess else f"the keys of this table are {', '.join(known)}"
    return f"{_where(parent, raw)}: unknown key {key!r}: {hint}"


def unknown_key(raw: dict, loc: tuple = ()) -> tuple[tuple, str] | None:
    """The first key of study.toml that no model field takes — also in tables whose model would
    ignore it silently — as (where, key)."""
    known = _keys_at(loc)
    for key, value in raw.items():
        if key not in known:
            return loc, key
        listed = _is_list((*loc, key))
        if isinstance(value, dict) and not listed and _keys_at((*loc, key)):
            found = unknown_key(value, (*loc, key))
        elif isinstance(value, list) and listed and _keys_at((*loc, key)):
            found = next((hit for i, item in enumerate(value) if isinstance(item, dict)
                          for hit in [unknown_key(item, (*loc, key, i))] if hit), None)
        else:
            found = None
        if found:
            return found
    return None


def _lookup(raw: dict, loc: tuple):
    for part in loc:
        raw = raw[part]
    return raw


def _is_list(loc: tuple) -> bool:
    parent = _model_at(loc[:-1])
    field = getattr(parent, "model_fields", {}).get(loc[-1])
    return field is not None and typing.get_origin(field.annotation) is list


def _keys_at(loc: tuple) -> list[str]:
    """The keys allowed at a location of study.toml, read from the pydantic models."""
    return list(getattr(_model_at(loc), "model_fields", {}))


def _model_at(loc: tuple) -> object:
    model: object = StudyConfig
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        model = fields[part].annotation
        while typing.get_origin(model) in (list, typing.Union) or type(model).__name__ == "UnionType":
            model = next((a for a in typing.get_args(model) if a is not type(None)), None)
    return model


def _guess(key: str, known: list[str]) -> str | None:
    found = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return found[0] if found else None


def _where(loc: tuple, raw: dict) -> str:
    """`[annotation]`, or `[[judges]] table 2 (name = "x")` — how the author finds the place."""
    if not loc:
        return "top level"
    table = loc[0]
    if table == "judges" and len(loc) > 1 and isinstance(loc[1], int):
        index = loc[1]
        entries = raw.get("judges") if isinstance(raw.get("judges"), list) else []
        name = entries[index].get("name") if index < len(entries) and isinstance(entries[index], dict) else None
        label = f"[[judges]] table {index + 1}" + (f" (name = {name!r})" if name else "")
        rest = loc[2:]
    else:
        label, rest = f"[{table}]", loc[1:]
    return label + "".join(f".{part}" if not isinstance(part, int) else f"[{part}]" for part in rest)


# ---------------------------------------------------------------------------------------------- rendering

WIDTH = 118
COMMENT_AT = 32  # the column where a key's comment starts in the template
EXAMPLE_JUDGE = JudgeConfig(name="gpt4o-mini", model="openai/gpt-4o-mini", api_key_env="OPENAI_API_KEY", samples=2,
                            rpm=500, concurrency=16, logprobs=True)  # a second judge, commented out, in the template


def tables() -> list[tuple[str, FieldInfo, type[BaseModel], bool]]:
    """(name, its field in StudyConfig, its model, whether it is a list of tables) for each table of study.toml."""
    found = []
    for name, info in StudyConfig.model_fields.items():
        listed = typing.get_origin(info.annotation) is list
        model = typing.get_args(info.annotation)[0] if listed else info.annotation
        found.append((name, info, model, listed))
    return found


def undocumented() -> list[str]:
    """Every table and key of study.toml without a description (a test keeps this empty)."""
    missing = []
    for name, info, model, listed in tables():
        if not info.description:
            missing.append(f"[{name}]")
        missing += [f"{_heading(name, listed)} {key}" for key, field in model.model_fields.items() if not field.description]
    return missing


def _heading(name: str, listed: bool) -> str:
    return f"[[{name}]]" if listed else f"[{name}]"


def _default(field: FieldInfo):
    return None if field.default is PydanticUndefined and field.default_factory is None else \
        field.get_default(call_default_factory=True)


def toml_value(value) -> str:
    """A value as study.toml writes it (strings, numbers, booleans, and lists of them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{value:.1f}"
    return repr(value)


def _comment_lines(text: str, first: str = "") -> list[str]:
    """`first` (a `key = value` line, or nothing) with `text` as a comment beside it, wrapped."""
    if not first:
        return textwrap.wrap(text, WIDTH, initial_indent="# ", subsequent_indent="# ")
    start = max(COMMENT_AT, len(first) + 2)
    wrapped = textwrap.wrap(text, WIDTH - start - 2) or [""]
    return [first.ljust(start) + "# " + wrapped[0], *(" " * start + "# " + line for line in wrapped[1:])]


def _key_lines(key: str, field: FieldInfo, value) -> list[str]:
    description = field.description or ""
    if value is None:  # unset by default: shown commented, with an example where the model gives one
        example = toml_value(field.examples[0]) if field.examples else "…"
        return _comment_lines(description + " (unset by default)", f"# {key} = {example}")
    return _comment_lines(description, f"{key} = {toml_value(value)}")


def template() -> str:
    """The study.toml `empathy init` writes: every table and key with its default and its description."""
    lines = ["# empathy-study configuration. Each value shown is the default; change what your study needs.",
             "# Secrets never go in this file: judges name the environment variable that holds their key.",
             "# Every key is described in docs/configuration.md (rendered, like this file, from the same models)."]
    for name, info, model, listed in tables():
        lines += ["", *_comment_lines(_sentence(info.description or ""))]
        if listed:
            for item in _default(info) or []:
                lines.append(_heading(name, listed))
                for key, field in model.model_fields.items():
                    lines += _key_lines(key, field, getattr(item, key))
            lines += ["", f"# {_heading(name, listed)}  (another judge, for example)"]
            for key, field in model.model_fields.items():
                value = getattr(EXAMPLE_JUDGE, key)
                if key in ("name", "model") or value != _default(field):
                    lines.append(f"# {key} = {toml_value(value)}")
            continue
        lines.append(_heading(name, listed))
        for key, field in model.model_fields.items():
            lines += _key_lines(key, field, _default(field))
    return "\n".join(lines) + "\n"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _kind(annotation) -> str:
    """What a key accepts, in words."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(f"`{json.dumps(a)}`" for a in args)
    if origin is list:
        return f"list of {_kind(args[0])}"
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        kinds = [_kind(a) for a in args if a is not type(None)]
        return " or ".join(kinds) + (", or unset" if type(None) in args else "")
    return {int: "integer", float: "number", bool: "true / false", str: "text"}.get(annotation, str(annotation))


def _bounds(field: FieldInfo) -> str:
    words = []
    for rule in field.metadata:
        for attribute, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if isinstance(rule, getattr(annotated_types, attribute.capitalize())):
                words.append(f"{sign} {getattr(rule, attribute)}")
        if isinstance(rule, annotated_types.MinLen):
            words.append(f"at least {rule.min_length} character{'s' if rule.min_length != 1 else ''}")
        if isinstance(rule, annotated_types.MaxLen):
            words.append(f"at most {rule.max_length} characters")
    return ", ".join(words)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference() -> str:
    """docs/configuration.md: every table and key of study.toml with its default, what it accepts and what it does."""
    lines = ["# Configuration — `study.toml`", "",
             "Generated from the configuration models (their field descriptions) by "
             "`make docs`; do not edit by hand "
             "(`tests/study/test_config_reference.py` fails when this page is stale). `empathy init DIR` writes "
             "the same keys with their defaults as a commented `DIR/study.toml`. An unknown key is an error "
             "that names it; so is a key under its old name (`[corpus] backend` is now `build_backend`, "
             "`[corpus] judges` is now `classify_judges`)."]
    for name, info, model, listed in tables():
        lines += ["", f"## `{_heading(name, listed)}`", "", _sentence(info.description or ""), "",
                  "| key | default | accepts | what it does |", "|---|---|---|---|"]
        for key, field in model.model_fields.items():
            if listed:
                default = "required" if field.is_required() else toml_value(_default(field)) \
                    if _default(field) is not None else "unset"
            else:
                default = toml_value(_default(field)) if _default(field) is not None else "unset"
            accepts = _kind(field.annotation) + (f" ({_bounds(field)})" if _bounds(field) else "")
            shown = default if default in ("required", "unset") else f"`{_cell(default)}`"
            lines.append(f"| `{key}` | {shown} | {_cell(accepts)} | {_cell(field.description or '')} |")
        if listed:
            panel = ", ".join(f"`{j.name}` (`{j.model}`)" for j in _default(info))
            lines += ["", f"Without a [[{name}]] table the panel is {panel}."]
    return "\n".join(lines) + "\n"
