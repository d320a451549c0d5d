"""`empathy init | corpus build | corpus sample` through the real Typer app."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from empathy_study.study.cli import app
from tests.corpus.test_wildchat_build import fixture_rows
from tests.support.wildchat import write_shard

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("init", "corpus", "demo"):
        assert command in result.output
    assert "--n" in invoke("corpus", "sample", "--help").output


def test_init_writes_a_commented_config_and_refuses_to_overwrite(tmp_path):
    study = tmp_path / "study"
    assert invoke("init", str(study)).exit_code == 0
    text = (study / "study.toml").read_text()
    assert "[corpus]" in text and "[sample]" in text and "#" in text
    again = invoke("init", str(study))
    assert again.exit_code == 1 and "already exists" in again.output


def test_build_then_sample_from_wildchat(tmp_path):
    data = tmp_path / "shards"
    data.mkdir()
    write_shard(list(fixture_rows().values()), data / "train-00000-of-00001.parquet")
    study = tmp_path / "study"
    built = invoke("corpus", "build", "--source", "wildchat", "--input", str(data / "*.parquet"), "--out", str(study))
    assert built.exit_code == 0, built.output
    assert "deduplicated" in built.output
    funnel = json.loads((study / "funnel.json").read_text())
    assert funnel["source"] == "wildchat" and funnel["stages"][-1]["rows"] == 6  # as tests/corpus/test_wildchat_build.py counts them
    sampled = invoke("corpus", "sample", str(study), "--n", "3", "--seed", "1")
    assert sampled.exit_code == 0, sampled.output
    sample = pd.read_parquet(study / "sample.parquet")
    assert len(sample) == 3 and sample["inclusion_prob"].between(0, 1).all()
    design = json.loads((study / "sample.json").read_text())
    assert design["seed"] == 1 and design["population"] == 6


def test_bad_input_is_one_line_and_exit_1(tmp_path):
    cases = [
        ("corpus", "build", "--source", "wildchat", "--input", str(tmp_path / "*.parquet"), "--out", str(tmp_path / "s")),
        ("corpus", "build", "--source", "reddit", "--out", str(tmp_path / "s")),
        ("corpus", "build", "--source", "wildchat", "--out", str(tmp_path / "s")),
        ("corpus", "sample", str(tmp_path), "--n", "5"),
    ]
    for args in cases:
        result = invoke(*args)
        assert result.exit_code == 1, args
        lines = [line for line in result.output.strip().splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert "Traceback" not in result.output


def test_bad_config_names_the_field(tmp_path):
    study = tmp_path / "study"
    invoke("init", str(study))
    (study / "study.toml").write_text("[sample]\ntopics = 0\n")
    data = tmp_path / "shards"
    data.mkdir()
    write_shard(list(fixture_rows().values()), data / "a.parquet")
    result = invoke("corpus", "build", "--source", "wildchat", "--input", str(data), "--out", str(study))
    assert result.exit_code == 1 and "[sample]: topics" in result.output
