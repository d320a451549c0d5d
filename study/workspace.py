"""A study directory: where each stage's table lives, and its `study.toml`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from empathy_study.corpus import SAMPLE_FILE, TERMINAL_PAIRS_FILE, TURN_PAIRS_FILE
from empathy_study.judge import LOG_FILE
from empathy_study.study.config import (
    RUBRICS_DIR,
    StudyConfig,
    config_problem,
    template,
    unknown_key,
    unknown_key_message,
)

CONFIG_FILE = "study.toml"
CALIBRATION_FILE = "calibration.json"  # the calibration lock, applied by `empathy export`
TERMINAL_SAMPLE_FILE = "terminal_sample.parquet"  # terminal pairs drawn for the selection-on-replying analysis
SIMULATION_FILE = "simulated.json"  # present only in a study whose labels and judgments were simulated

__all__ = ["CONFIG_FILE", "StudyConfig", "StudyError", "Workspace"]


class StudyError(Exception):
    """A study directory or its configuration is not usable as given."""


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
            raise StudyError(f"{self.config_path}: {unknown_key_message(*unknown, raw)}")
        try:
            return StudyConfig.model_validate(raw)
        except ValidationError as exc:
            raise StudyError(f"{self.config_path}: {config_problem(exc, raw)}") from exc

    def init(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.config_path.exists():
            raise StudyError(f"{self.config_path} already exists; edit it or choose another directory")
        self.config_path.write_text(template(), encoding="utf-8")
        return self.config_path
