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
from empathy_study.study.workspace import Workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def scored_file(sharegpt_all_pairs, tmp_path_factory):
    """800 real pairs, simulated scores read by a simulated judge; simulated human labels on a 40 % audit."""
    scored, truth = causal.semisynthetic_study(sharegpt_all_pairs, 800, seed=3, embedder=causal.Embedder())
    scored = causal.judge_labels(scored, truth, causal.JudgeNoise(), audit_rate=0.4, seed=3)
    scored["inclusion_prob"] = 0.25
    path = tmp_path_factory.mktemp("scored") / "scored_pairs.parquet"
    scored.to_parquet(path)
    return path


@pytest.fixture(scope="module")
def estimated_study(scored_file, tmp_path_factory):
    """A study directory holding the scored pairs, a labels table and `empathy estimate`'s outputs."""
    study = tmp_path_factory.mktemp("study")
    assert runner.invoke(app, ["init", str(study)]).exit_code == 0
    frame = pd.read_parquet(scored_file)
    frame.to_parquet(study / "scored_pairs.parquet")
    audited = frame[frame["empathy_gold"].notna()]
    start = pd.Timestamp("2026-01-01", tz="UTC")
    versions = Workspace(study).config().prompt_versions()  # labels made under the study's rubric
    labels = pd.DataFrame([
        {"pair_id": p, "construct": c, "annotator": "annotator-a", "score": 4, "mode": "blind", "annotation_id": i,
         "updated_at": start + pd.Timedelta(hours=i), "prompt_version": versions[c]}  # one label an hour: 24 a day
        for i, (p, c) in enumerate((p, c) for p in audited["pair_id"] for c in ("empathy", "attachment"))])
    labels.to_parquet(study / "labels.parquet")
    result = runner.invoke(app, ["estimate", str(study), "--bootstrap", "100"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return study, result.output


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
            ("dr_gold_only", "ATE", False), ("dr_gold_corrected", "ATE", False), ("dr_gold_corrected", "ATE", True),
            ("matching_greedy", "ATT_matched", False), ("matching_optimal", "ATT_matched", False),
            ("matching_optimal_bc", "ATT_matched", False)} <= methods
    for estimate in payload["estimates"]:
        assert {"estimate", "se", "ci_low", "ci_high", "n_used", "reference", "interval_valid", "gold_n"} <= set(estimate)
        assert estimate["ci_low"] <= estimate["estimate"] <= estimate["ci_high"]
    corrected = next(e for e in payload["estimates"] if e["method"] == "dr_gold_corrected" and not e["weighted"])
    assert corrected["gold_n"] == payload["gold"]["audited"] > 0 and corrected["effective_gold_n"] > 0
    assert payload["primary"] == "dr_gold_corrected · ATE · weighted" and payload["primary_missing"] is None
    assert payload["counts"]["audited"] == payload["gold"]["audited"]
    assert isinstance(payload["warnings"], list)
    provenance = payload["provenance"]
    assert provenance["seeds"] == {"estimate": 0} and provenance["prompt_versions"] == {}  # planted file: no judge
    assert provenance["input_sha256"] == hashlib.sha256(scored_file.read_bytes()).hexdigest()
    assert provenance["git"] is None or len(provenance["git"]["commit"]) == 40
    assert provenance["semisynthetic"] is True and "econml" in provenance["versions"]
    assert "≥ 5" in payload["treatment_rule"]
    frame = pd.read_csv(out / "estimates.csv")
    assert len(frame) == len(payload["estimates"])
    report = (out / "report.html").read_text()
    validated = any(row["validation"] == "validated" for row in payload["estimates"])
    # the forest plot draws validated rows only; without one the report says so instead of drawing it
    assert "Semi-synthetic" in report and report.count("data:image/png;base64,") >= 3 + validated
    assert validated != ("No row is validated on the bench designs" in report)
    assert "corrected with the audit sample" in report and "Correcting the judges' labels with" in report
    assert "(does not cover)" in report and "Joint test that every model has the same effect" in report
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
    dims = runner.invoke(app, ["estimate", str(bad), "--out", str(tmp_path / "o"), "--dims", "0"])
    assert dims.exit_code == 1 and "invalid option --dims:" in dims.output, dims.output  # as typed


def test_warnings_reach_the_terminal_and_the_report(scored_file, tmp_path):
    """A caliper no pair meets: the matching rows stay (not estimated) and say why, on screen and in the report.
    Without audit labels the primary estimate is missing: the first warning, a field of its own and a
    banner say so (dr silently took its place)."""
    # recycled real text repeats some prompts ("continue"), and identical prompts are at distance 0
    distinct = pd.read_parquet(scored_file).drop_duplicates("prompt")
    distinct = distinct.drop(columns=[c for c in distinct.columns if c.endswith("_gold") or c.startswith("gold_")])
    distinct.to_parquet(tmp_path / "distinct.parquet")
    out = tmp_path / "out"
    result = runner.invoke(app, ["estimate", str(tmp_path / "distinct.parquet"), "--out", str(out), "--caliper", "0.0001",
                                 "--bootstrap", "100"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "estimates.json").read_text())
    empty = [e for e in payload["estimates"] if e["method"].startswith("matching")]
    assert empty and all(e["estimate"] is None and "no pairs" in e["note"] for e in empty)
    screen = " ".join(result.output.split())
    assert "warning: matching_greedy · ATT_matched: not estimated — no pairs" in screen
    report = (out / "report.html").read_text()
    assert "matching_greedy · ATT_matched: not estimated" in report
    assert payload["primary"] == "dr · ATE · weighted" and "no audit labels" in payload["primary_missing"]
    assert payload["warnings"][0].startswith("NO PRIMARY ESTIMATE: dr_gold_corrected")
    assert "warning: NO PRIMARY ESTIMATE" in screen and "No primary estimate." in report


def test_annotate_plan_reads_the_estimate_and_the_annotation_rate(estimated_study):
    study, output = estimated_study
    payload = json.loads((study / "estimates" / "estimates.json").read_text())
    plan = payload["gold"]["plan"]
    corrected = next(e for e in payload["estimates"] if e["method"] == "dr_gold_corrected" and not e["weighted"])
    width = corrected["ci_high"] - corrected["ci_low"]
    expected = causal.plan_audit(target_width=0.8 * width, **plan)
    result = runner.invoke(app, ["annotate", "plan", str(study), "--ci-width", f"{0.8 * width:.6f}",
                                 "--cost-per-label", "0.5"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"about {expected.more:,} more audited pairs" in text
    labels = 2 * expected.more  # two constructs, one annotator per audited pair in the labels table
    assert f"{labels:,} labels at 2.0 per pair" in text and "labels/day" in text and f"{labels * 0.5:,.2f} USD" in text
    unreachable = runner.invoke(app, ["annotate", "plan", str(study), "--ci-width", "0.001"])
    assert unreachable.exit_code == 0 and "out of reach" in unreachable.output
    bad = runner.invoke(app, ["annotate", "plan", str(study), "--ci-width", "-1"])
    assert bad.exit_code == 1 and bad.output.strip().startswith("error:")


def test_a_corrected_estimate_leaves_the_weights_an_active_audit_reads(estimated_study):
    """estimates/audit_need.parquet: every pair the correction used, with the inverse-propensity weight a
    label error on it carries (≥ 1: the inverse of a probability); a uniform audit's estimate says no
    design saving."""
    study, _ = estimated_study
    need = pd.read_parquet(study / "estimates" / "audit_need.parquet")
    scored = pd.read_parquet(study / "scored_pairs.parquet")
    payload = json.loads((study / "estimates" / "estimates.json").read_text())
    assert set(need["pair_id"]) <= set(scored["pair_id"]) and len(need) == payload["gold"]["pairs"]
    assert (need["weight"] >= 1).all() and need["weight"].nunique() > 10
    assert need["residual"].notna().sum() == payload["gold"]["plan"]["audited"]  # the audited pairs' only
    assert payload["gold"]["design"]["probabilities_vary"] is False and payload["gold"]["design"]["sentence"] is None


def test_annotate_plan_before_any_sample_names_the_command(tmp_path):
    """Before an estimate it plans from the design (tests/study/test_audit_size.py), which needs the sample."""
    assert runner.invoke(app, ["init", str(tmp_path / "s")]).exit_code == 0
    result = runner.invoke(app, ["annotate", "plan", str(tmp_path / "s"), "--ci-width", "0.3"])
    assert result.exit_code == 1 and "empathy corpus sample" in result.output
