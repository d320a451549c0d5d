"""A study directory: where each stage's table lives, and its `study.toml`."""

from __future__ import annotations

import difflib
import tomllib
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from empathy_study.annotation import AnnotationConfig
from empathy_study.causal import CausalConfig
from empathy_study.corpus import SAMPLE_FILE, TERMINAL_PAIRS_FILE, TURN_PAIRS_FILE, CorpusConfig, SampleConfig
from empathy_study.judge import (
    LOG_FILE,
    JudgeConfig,
    JudgeSettings,
    Rubric,
    control_rubrics,
    default_panel,
    study_rubrics,
)

CONFIG_FILE = "study.toml"
RUBRICS_DIR = "rubrics"  # DIR/rubrics/<construct>.toml replaces the packaged rubric for that study
CALIBRATION_FILE = "calibration.json"  # the calibration lock, applied by `empathy export`
TERMINAL_SAMPLE_FILE = "terminal_sample.parquet"  # terminal pairs drawn for the selection-on-replying analysis
SIMULATION_FILE = "simulated.json"  # present only in a study whose labels and judgments were simulated


class StudyError(Exception):
    """A study directory or its configuration is not usable as given."""


class StudySection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Label Studio titles hold at most 50 characters: "<name> · attachment · review" must fit.
    name: str = Field("empathy-study", min_length=1, max_length=28,
                      description="names the Label Studio projects and reports")


class StudyConfig(BaseModel):
    """The whole of `study.toml`; each stage reads its own table."""

    model_config = ConfigDict(extra="forbid")
    study: StudySection = Field(default_factory=StudySection)
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    judges: list[JudgeConfig] = Field(default_factory=default_panel)
    annotation: AnnotationConfig = Field(default_factory=AnnotationConfig)
    causal: CausalConfig = Field(default_factory=CausalConfig)
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
        return _unknown_key_message(tuple(parent), str(key), raw) + more
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


def _unknown_key_message(parent: tuple, key: str, raw: dict) -> str:
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


def default_config_text() -> str:
    return resources.files("empathy_study.study").joinpath("study.toml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def turn_pairs(self) -> Path:
        return self.root / TURN_PAIRS_FILE

    @property
    def terminal_pairs(self) -> Path:
        return self.root / TERMINAL_PAIRS_FILE

    @property
    def funnel(self) -> Path:
        return self.root / "funnel.json"

    @property
    def sample(self) -> Path:
        return self.root / SAMPLE_FILE

    @property
    def sample_design(self) -> Path:
        return self.root / "sample.json"

    @property
    def terminal_sample(self) -> Path:
        return self.root / TERMINAL_SAMPLE_FILE

    @property
    def terminal_sample_design(self) -> Path:
        return self.root / "terminal_sample.json"

    @property
    def scored_terminal_pairs(self) -> Path:
        return self.root / "scored_terminal_pairs.parquet"

    @property
    def judgments(self) -> Path:
        return self.root / LOG_FILE

    @property
    def judgments_cache(self) -> Path:
        """The parsed copy of the judgment log (`judge.JudgmentLog.frame`); safe to delete."""
        return self.root / ".cache" / "judgments.parquet"

    @property
    def scores(self) -> Path:
        return self.root / "scores.parquet"

    @property
    def scored_pairs(self) -> Path:
        return self.root / "scored_pairs.parquet"

    @property
    def judge_report(self) -> Path:
        return self.root / "judge_report.json"

    @property
    def annotation_state(self) -> Path:
        return self.root / "annotation.json"

    @property
    def labels(self) -> Path:
        return self.root / "labels.parquet"

    @property
    def agreement(self) -> Path:
        return self.root / "agreement.json"

    @property
    def estimates(self) -> Path:
        return self.root / "estimates"

    @property
    def rubrics(self) -> Path:
        return self.root / RUBRICS_DIR

    def rubric_copy(self, construct: str) -> Path:
        return self.rubrics / f"{construct}.toml"

    @property
    def calibration(self) -> Path:
        return self.root / CALIBRATION_FILE

    @property
    def simulation(self) -> Path:
        return self.root / SIMULATION_FILE

    def require(self, path: Path, made_by: str) -> Path:
        """The path of a stage's input, or a clear error naming the command that makes it."""
        if not path.exists():
            raise StudyError(f"{path} does not exist yet: run `{made_by}` first")
        return path

    def config(self) -> StudyConfig:
        """The study's configuration (built-in defaults when the directory has no study.toml), rooted at
        the study so its rubric copies take precedence."""
        return self._read_config().at(self.root)

    def _read_config(self) -> StudyConfig:
        if not self.config_path.exists():
            return StudyConfig()
        try:
            raw = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise StudyError(f"{self.config_path} is not valid TOML: {exc}") from exc
        unknown = unknown_key(raw)
        if unknown:
            raise StudyError(f"{self.config_path}: {_unknown_key_message(*unknown, raw)}")
        try:
            return StudyConfig.model_validate(raw)
        except ValidationError as exc:
            raise StudyError(f"{self.config_path}: {config_problem(exc, raw)}") from exc

    def init(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.config_path.exists():
            raise StudyError(f"{self.config_path} already exists; edit it or choose another directory")
        self.config_path.write_text(default_config_text(), encoding="utf-8")
        return self.config_path
