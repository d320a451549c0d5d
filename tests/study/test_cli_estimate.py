"""`empathy estimate` end to end: the files, the contract of estimates.json, the offline report."""

from __future__ import annotations

import hashlib
import json
import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from empathy_study import causal
from empathy_study.study.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def scored_file(sharegpt_all_pairs, tmp_path_factory):
    scored, _ = causal.semisynthetic_study(sharegpt_all_pairs, 800, seed=3, embedder=causal.Embedder())
    scored["inclusion_prob"] = 0.25
    path = tmp_path_factory.mktemp("scored") / "scored_pairs.parquet"
    scored.to_parquet(path)
    return path


def test_estimate_writes_contract_outputs(scored_file, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["estimate", str(scored_file), "--out", str(out), "--bootstrap", "100"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "estimates.json").read_text())
    assert {"n", "n_treated", "n_control", "treatment_rule", "estimates", "balance", "hte", "provenance"} <= set(payload)
    assert payload["n"] == payload["n_treated"] + payload["n_control"]
    methods = {(e["method"], e["estimand"], e["weighted"]) for e in payload["estimates"]}
    assert {("naive", "ATE", False), ("naive", "ATE", True), ("dr", "ATE", False), ("dr", "ATE", True),
            ("matching_greedy", "ATT_matched", False), ("matching_optimal", "ATT_matched", False),
            ("matching_optimal_bc", "ATT_matched", False)} <= methods
    for estimate in payload["estimates"]:
        assert {"estimate", "se", "ci_low", "ci_high", "n_used"} <= set(estimate)
        assert estimate["ci_low"] <= estimate["estimate"] <= estimate["ci_high"]
    provenance = payload["provenance"]
    assert provenance["seeds"] == {"estimate": 0} and provenance["prompt_versions"] == {}  # planted file: no judge
    assert provenance["input_sha256"] == hashlib.sha256(scored_file.read_bytes()).hexdigest()
    assert provenance["git"] is None or len(provenance["git"]["commit"]) == 40
    assert provenance["semisynthetic"] is True and "econml" in provenance["versions"]
    assert "≥ 5" in payload["treatment_rule"]
    frame = pd.read_csv(out / "estimates.csv")
    assert len(frame) == len(payload["estimates"])
    report = (out / "report.html").read_text()
    assert "Semi-synthetic" in report and report.count("data:image/png;base64,") >= 4
    assert not re.search(r"(src|href)=[\"']https?://", report), "the report must open offline"
    assert "rule:" in result.output and "report.html" in result.output


def test_rule_options_are_recorded(scored_file, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["estimate", str(scored_file), "--out", str(out), "--treat-high", "6",
                                 "--treat-low", "2", "--bootstrap", "100"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "estimates.json").read_text())
    assert "≥ 6" in payload["treatment_rule"] and "≤ 2" in payload["treatment_rule"]


def test_bad_inputs_exit_1_with_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"pair_id": ["a"], "prompt": ["x"], "empathy": [9], "attachment": [2]}).to_csv(bad, index=False)
    for args in (["estimate", str(bad), "--out", str(tmp_path / "o")],
                 ["estimate", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o")],
                 ["estimate", str(bad), "--out", str(tmp_path / "o"), "--distance", "manhattan"]):
        result = runner.invoke(app, args)
        lines = [l for l in result.output.splitlines() if l.strip()]
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), result.output
