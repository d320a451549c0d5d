"""A simulated calibration study (planted truth, simulated annotators and judges) for the calibration tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from empathy_study.study import simulated
from empathy_study.study.workspace import Workspace
from tests.judge.conftest import sample_frame


def turn_pairs(n: int) -> pd.DataFrame:
    pairs = sample_frame([f"Today I feel a bit lost about thing number {i}" for i in range(n)])
    pairs["user_id"] = [f"u{i % (n // 3)}" for i in range(n)]  # three pairs per user: folds group them
    pairs["model"] = [("gpt-3.5-turbo", "gpt-4")[i % 2] for i in range(n)]
    return pairs


def make_simulated(root: Path, n: int = 240, gold: int = 80, seed: int = 0) -> Workspace:
    return simulated.simulated_study(root, turn_pairs(3 * n), n=n, gold=gold, annotators=4, overlap=2, seed=seed)


@pytest.fixture
def simulated_study(tmp_path) -> Workspace:
    return make_simulated(tmp_path / "simulated-study")
