"""A study directory: where each stage's table lives, and its `study.toml`."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from empathy_study.annotation import AnnotationConfig
from empathy_study.causal import CausalConfig
from empathy_study.corpus import SAMPLE_FILE, TERMINAL_PAIRS_FILE, TURN_PAIRS_FILE, CorpusConfig, SampleConfig
from empathy_study.judge import LOG_FILE, JudgeConfig, JudgeSettings, Rubric, default_panel, study_rubrics

CONFIG_FILE = "study.toml"
RUBRICS_DIR = "rubrics"  # DIR/rubrics/<construct>.toml replaces the packaged rubric for that study
CALIBRATION_FILE = "calibration.json"  # the calibration lock, applied by `empathy export`
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
        return study_rubrics(self.judge.attachment_context, self._root / RUBRICS_DIR if self._root else None)

    def prompt_versions(self) -> dict[str, str]:
        """The rubric version per construct that this study's judgments must carry to count."""
        return {construct: rubric.version for construct, rubric in self.rubrics().items()}


def default_config_text() -> str:
    return resources.files("empathy_study.study").joinpath("study.toml").read_text(encoding="utf-8")


def _rooted(read):
    """A configuration read from a study knows its directory (for the study's rubric copies)."""

    @functools.wraps(read)
    def config(self: "Workspace") -> StudyConfig:
        return read(self).at(self.root)

    return config


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
    def judgments(self) -> Path:
        return self.root / LOG_FILE

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

    @_rooted
    def config(self) -> StudyConfig:
        """The study's configuration; built-in defaults when the directory has no study.toml."""
        if not self.config_path.exists():
            return StudyConfig()
        try:
            raw = tomllib.loads(self.config_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise StudyError(f"{self.config_path} is not valid TOML: {exc}") from exc
        try:
            return StudyConfig.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise StudyError(f"{self.config_path}: {where}: {first['msg']}") from exc

    def init(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.config_path.exists():
            raise StudyError(f"{self.config_path} already exists; edit it or choose another directory")
        self.config_path.write_text(default_config_text(), encoding="utf-8")
        return self.config_path
