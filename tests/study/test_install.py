"""The wheel installs under one name: nothing called `prompts`, `judge` or `study` lands in
site-packages, and the installed CLI works beside a user's own `prompts` package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.judge.conftest import sample_frame

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                   check=True, capture_output=True, text=True)
    return next(out.glob("empathy_study-*.whl"))


def test_the_wheel_holds_one_top_level_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"empathy_study"}
    assert "empathy_study/prompts/empathy.toml" in names and "empathy_study/study/config.py" in names
    assert "empathy_study/study/tui/app.py" in names and "empathy_study/study/tui/calibrate.tcss" in names


def test_installed_cli_runs_beside_a_users_own_prompts_package(wheel, tmp_path):
    """A clean virtualenv gets only the wheel; its dependencies come from this test's environment
    through a path entry (so no site packages of ours, editable finder included, are activated)."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, text=True)
    site = Path(subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # Every site-packages folder this interpreter reads (a venv may take its packages from another).
    dependencies = [p for p in sys.path if p.endswith("site-packages")] or [sysconfig.get_paths()["purelib"]]
    (site / "zz-dependencies.pth").write_text("\n".join(dependencies) + "\n")
    installed = {p.name for p in site.iterdir() if p.is_dir() and not p.name.endswith((".dist-info", "__pycache__"))}
    assert not installed & {"prompts", "judge", "study", "corpus", "annotation", "causal"}

    work = tmp_path / "work"
    (work / "prompts").mkdir(parents=True)
    (work / "prompts" / "__init__.py").write_text("raise ImportError('the user\\'s own prompts package was imported')\n")
    environment = {**os.environ, "PYTHONPATH": str(work)}
    empathy = env_dir / "bin" / "empathy"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(empathy), *args], cwd=work, env=environment, capture_output=True, text=True)

    created = run("init", "my-study")
    assert created.returncode == 0, created.stderr
    sample_frame(["I feel lonely tonight", "Thank you for listening"]).to_parquet(work / "my-study" / "sample.parquet")
    dry = run("judge", "run", "my-study", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Dry run" in dry.stdout and "smollm2" in dry.stdout
    where = subprocess.run([str(python), "-c", "import empathy_study.judge as j; print(j.__file__)"], cwd=work,
                           env=environment, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site))
