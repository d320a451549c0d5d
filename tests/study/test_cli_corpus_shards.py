"""`empathy corpus build --workers N`: the sharded build through the real Typer app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from empathy_study.study.cli import app
from tests.corpus.test_sharded_build import corrupt_last_row_group
from tests.corpus.test_wildchat_build import fixture_rows
from tests.support.wildchat import write_shard

runner = CliRunner()


def shards(tmp_path, n: int = 3):
    data = tmp_path / "data"
    data.mkdir()
    rows = list(fixture_rows().values())
    return [write_shard(rows[i::n], data / f"train-{i:05d}-of-{n:05d}.parquet", row_group_size=2) for i in range(n)]


def build(*args: str):
    return runner.invoke(app, ["corpus", "build", "--source", "wildchat", *args], catch_exceptions=False)


def test_workers_option_builds_in_parallel_and_records_it(tmp_path):
    files = shards(tmp_path)
    study = tmp_path / "study"
    result = build("--input", str(files[0].parent), "--out", str(study), "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "3 shards on 2 local workers" in result.output
    funnel = json.loads((study / "funnel.json").read_text())
    assert funnel["stages"][-2:] == [{"name": "deduplicated", "rows": 6, "unit": "turn_pairs"},  # as in one shard
                                     {"name": "classifier", "rows": 6, "unit": "turn_pairs"}]
    assert funnel["build"]["workers"] == 2 and [s["file"] for s in funnel["build"]["shards"]] == [str(f) for f in files]
    assert "workers" not in funnel["config"]  # how it ran is under "build"; "config" is what decides the rows


def test_workers_come_from_study_toml_unless_given(tmp_path):
    files = shards(tmp_path)
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.toml").write_text("[corpus]\nworkers = 1\n")
    assert build("--input", str(files[0].parent), "--out", str(study)).exit_code == 0
    assert json.loads((study / "funnel.json").read_text())["build"]["workers"] == 1
    negative = build("--input", str(files[0].parent), "--out", str(study), "--workers", "-1")
    assert negative.exit_code == 1 and negative.output.strip().startswith("error:")


def test_a_corrupt_shard_is_one_error_line_and_writes_nothing(tmp_path):
    files = shards(tmp_path)
    corrupt_last_row_group(files[1])
    study = tmp_path / "study"
    result = build("--input", str(files[0].parent), "--out", str(study), "--workers", "2")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {files[1]} could not be read to the end"), result.output
    assert result.output.strip().splitlines()[-1] == errors[0] and "Traceback" not in result.output
    assert sorted(p.name for p in study.iterdir()) == []  # no tables, no funnel, no part files
