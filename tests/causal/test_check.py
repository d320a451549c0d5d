"""`empathy estimate --check`: the estimators on simulated studies built from the study's own data.

Small studies (real ShareGPT text, simulated scores), few replications, fixed seeds: each assertion is
deterministic. How well the check's verdicts hold over many replications is bench work.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from empathy_study import causal
from empathy_study.causal import _check
from empathy_study.study.cli import app

N = 1_500  # seed 0: the texts of tests/causal/conftest.py's studies (their embeddings are shared)
REPS = 10
FAST = dict(estimators=["naive", "dr"], heterogeneity=False, sensitivity=False, refuters=[], bootstrap=100)


@pytest.fixture(scope="module")
def embedder():
    return causal.Embedder()


def world_of(pairs, embedder, confounding: float):
    """A planted study (linear confounding of the given strength) and the check's world fitted to it."""
    scored, _ = causal.semisynthetic_study(pairs, N, seed=0, embedder=embedder,
                                           planted=causal.PlantedEffect(confounding=confounding))
    config = causal.CausalConfig(**FAST)
    return scored, config, causal.fit_world(scored, config, embedder)


@pytest.fixture(scope="module")
def planted(sharegpt_all_pairs, embedder):
    return world_of(sharegpt_all_pairs, embedder, causal.PlantedEffect().confounding)


@pytest.fixture(scope="module")
def confounded(sharegpt_all_pairs, embedder):
    """The same texts, confounding twice as strong."""
    return world_of(sharegpt_all_pairs, embedder, 2.0)


def by_label(block: dict) -> dict[str, dict]:
    return {r["label"]: r for r in block["rows"]}


def test_variance_components_match_a_mixed_model():
    """The one-way ANOVA estimator equals REML on a balanced design (statsmodels MixedLM)."""
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(4)
    users = np.repeat(np.arange(60), 5)
    residuals = rng.normal(0, 0.7, 60)[users] + rng.normal(0, 1.1, len(users))
    between, within = _check.variance_components(residuals, users)
    fitted = smf.mixedlm("r ~ 1", pd.DataFrame({"r": residuals, "u": users}), groups="u").fit(reml=True)
    assert between == pytest.approx(float(fitted.cov_re.iloc[0, 0]), rel=1e-3)
    assert within == pytest.approx(float(fitted.scale), rel=1e-3)
    assert _check.variance_components(residuals, np.arange(len(users))) == (0.0, pytest.approx(np.var(residuals, ddof=1)))


def test_wilson_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in ((0, 5), (3, 6), (19, 20), (170, 200)):
        assert _check.wilson(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"), abs=1e-9)


@pytest.mark.parametrize("classifier", [False, True])
def test_surfaces_add_to_the_linear_fit_only_what_is_not_linear(classifier):
    """A U-shape in one component is found by the boosting; a linear truth keeps (nearly) the linear fit."""
    rng = np.random.default_rng(2)
    n = 1_500
    X = rng.normal(size=(n, 12))
    folds = rng.integers(0, 5, n)
    fit_rows = np.ones(n, bool)
    for signal, bent in ((1.2 * X[:, 1] + 0.8 * X[:, 2], False), (1.2 * X[:, 1] + 1.5 * (X[:, 0] ** 2 - 1), True)):
        y = (rng.random(n) < 1 / (1 + np.exp(-signal))).astype(float) if classifier else signal + rng.normal(0, 1, n)
        (base,), _ = _check.linear_index(X, y, folds, fit_rows, [X], classifier)
        surface = _check.fit_surface(X, y, folds, X, base, base, classifier, seed=0)
        key = "auc_out_of_fold" if classifier else "r2_out_of_fold"
        gain = surface.quality[key] - surface.quality[f"linear_{key}"]
        print(f"\n{'bent' if bent else 'linear'}: {surface.rounds} rounds, {key} gain {gain:+.3f}")
        if bent:
            assert surface.rounds > 0 and gain > 0.02
        else:
            assert abs(gain) < 0.01


def test_simulated_studies_keep_the_design_and_mark_themselves(planted):
    scored, config, world = planted
    study, truth = _check.simulate_study(world, rep=0, seed=config.seed)
    again, _ = _check.simulate_study(world, rep=0, seed=config.seed)
    other, _ = _check.simulate_study(world, rep=1, seed=config.seed)
    assert study["simulated"].all()
    pd.testing.assert_frame_equal(study, again)  # seeded
    assert not np.array_equal(study["attachment"], other["attachment"])
    for column in ("pair_id", "prompt", "user_id", "model", "turn_index", "timestamp"):
        assert study[column].tolist() == world.frame[column].tolist()  # the study's own rows and covariates
    assert set(np.unique(study["attachment"])) <= set(np.arange(1.0, 8.0))  # the 1–7 grid
    assert truth["unit_effect"].mean() == pytest.approx(_check.PLANTED_BASE, abs=0.15)
    surfaces = world.summary["surfaces"]
    assert surfaces["propensity"]["auc_out_of_fold"] > 0.6  # the planted confounding is found, not noise
    assert surfaces["outcome"]["r2_out_of_fold"] > 0.05
    assert 0 <= surfaces["propensity"]["rounds"] <= _check.MAX_ROUNDS


def test_dr_recovers_the_simulated_truth_of_a_planted_study(planted, embedder):
    """(a) On a study with linear confounding the fitted surfaces stay (nearly) linear, and dr covers the
    check's truth while naive does not."""
    _, config, world = planted
    assert all(world.summary["surfaces"][s]["rounds"] <= 10 for s in ("propensity", "outcome"))
    block = causal.run_check(world, config, embedder, REPS, "dr · ATE")
    rows = by_label(block)
    dr, naive = rows["dr · ATE"], rows["naive · ATE"]
    print(f"\ndr: coverage {dr['coverage']:.2f} bias {dr['bias']:+.3f}; naive: {naive['coverage']:.2f} "
          f"bias {naive['bias']:+.3f}")
    assert dr["estimated"] == REPS and not block["failed"]
    assert dr["coverage"] >= 0.7 and abs(dr["bias"]) < 0.2
    assert naive["coverage"] <= 0.2 and naive["bias"] > 3 * abs(dr["bias"])
    assert (block["warning"] is None) == (dr["coverage"] >= _check.WARN_BELOW)
    assert block["simulated"] is True and block["reps"] == REPS


def test_the_check_fails_a_weak_estimator(confounded, embedder):
    """(b) dr that keeps one prompt component cannot adjust for confounding spread over many: the check
    shows its low coverage and warns; the same study's dr with its usual components does better."""
    _, config, world = confounded
    weak = config.model_copy(update={"embedding_dims": 1, "prev_embedding_dims": 0})
    block = causal.run_check(world, weak, embedder, REPS, "dr · ATE")
    usual = by_label(causal.run_check(world, config, embedder, REPS, "dr · ATE"))["dr · ATE"]
    dr = by_label(block)["dr · ATE"]
    print(f"\nweak dr: coverage {dr['coverage']:.2f} bias {dr['bias']:+.3f}; usual dr: coverage "
          f"{usual['coverage']:.2f} bias {usual['bias']:+.3f}")
    assert dr["coverage"] <= 0.3 and dr["bias"] > 0.15  # under-adjusted: towards the naive difference
    assert usual["coverage"] > dr["coverage"]
    assert block["warning"] is not None and "below 85%" in block["warning"] and "simulated" in block["warning"]


def test_the_warning_names_the_primary_and_its_coverage():
    rows = [{"label": "dr_gold_corrected · ATE", "estimated": 20, "coverage": 0.7, "coverage_ci": [0.48, 0.85],
             "bias": 0.21}]
    line = _check.check_warning(rows, "dr_gold_corrected · ATE", 20)
    assert "70%" in line and "+0.210" in line and "primary" in line
    assert _check.check_warning([{**rows[0], "coverage": 0.9}], "dr_gold_corrected · ATE", 20) is None
    assert "could not be computed" in _check.check_warning([], "dr · ATE", 5)


@pytest.fixture(scope="module")
def audited_study(sharegpt_all_pairs, embedder, tmp_path_factory):
    """A study directory: 800 real pairs, simulated scores read by a simulated judge, simulated human
    labels on a 40 % audit, a stratified-sample weight."""
    scored, truth = causal.semisynthetic_study(sharegpt_all_pairs, 800, seed=3, embedder=embedder)
    scored = causal.judge_labels(scored, truth, causal.JudgeNoise(), audit_rate=0.4, seed=3)
    scored["inclusion_prob"] = np.where(scored["model"] == "gpt-4", 0.5, 0.25)
    study = tmp_path_factory.mktemp("study")
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(study)]).exit_code == 0
    config = (study / "study.toml").read_text()  # the slow extras off: the check's cost is in the replications
    for old, new in (("heterogeneity = true", "heterogeneity = false"), ("sensitivity = true", "sensitivity = false"),
                     ('refuters = ["placebo"]', "refuters = []")):
        assert old in config
        config = config.replace(old, new)
    (study / "study.toml").write_text(config)
    scored.to_parquet(study / "scored_pairs.parquet")
    return study


def test_simulated_audits_follow_the_study_design(audited_study, embedder):
    """A new audit per simulated study: drawn with the study's gold_prob, labels back with its response
    rate; a study that records which pairs were drawn (gold_drawn) gets that column simulated too, so
    no simulated label comes from outside the draw. The judges' labels err as the audit shows."""
    frame = pd.read_parquet(audited_study / "scored_pairs.parquet")
    labelled = frame["empathy_gold"].notna()
    unanswered = (~labelled) & (np.random.default_rng(0).random(len(frame)) < 0.1)  # drawn, never labelled
    frame["gold_drawn"] = (labelled | unanswered).astype(float)
    frame["gold_prob"] = 0.5  # labelled / drawn ≈ 0.8: a response rate below 1 (the study's own: 80 %)
    world = causal.fit_world(frame, causal.CausalConfig(**FAST), embedder)
    audit = world.summary["design"]["audit"]
    study, _ = _check.simulate_study(world, rep=0, seed=0)
    simulated_labelled = study["empathy_gold"].notna()
    assert (study.loc[simulated_labelled, "gold_drawn"] == 1).all()
    assert study["gold_drawn"].mean() == pytest.approx(0.5, abs=0.05)
    assert simulated_labelled.sum() / study["gold_drawn"].sum() == pytest.approx(audit["response_rate"], abs=0.06)
    assert study["attachment_gold"].notna().sum() == simulated_labelled.sum()
    judged = study["empathy"].notna() & simulated_labelled
    rule = causal.TreatmentRule()
    agree = (rule.assign(study.loc[judged, "empathy"]) == rule.assign(study.loc[judged, "empathy_gold"])).mean()
    real = (rule.assign(frame.loc[labelled, "empathy"]) == rule.assign(frame.loc[labelled, "empathy_gold"])).mean()
    assert agree == pytest.approx(real, abs=0.08)  # the judges misread arms about as often as in the audit


def test_cli_check_writes_the_block_the_log_and_the_table(audited_study):
    """(c) The judge-error-corrected primary (weighted: the sample has design weights) is checked."""
    runner = CliRunner()
    result = runner.invoke(app, ["estimate", str(audited_study), "--bootstrap", "100", "--check", "--check-reps", "3"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    screen = " ".join(result.output.split())
    assert "Check on 3 SIMULATED studies" in screen and "coverage" in screen
    payload = json.loads((audited_study / "estimates" / "estimates.json").read_text())
    block = payload["check"]
    assert block["simulated"] is True and block["reps"] == 3 and block["seed"] == 0
    assert block["primary"] == payload["primary"] == "dr_gold_corrected · ATE · weighted"
    rows = by_label(block)
    assert rows[block["primary"]]["primary"] and rows[block["primary"]]["estimated"] == 3
    for label in ("dr_gold_corrected · ATE", "dr_gold_only · ATE", "dr · ATE · weighted", "matching_greedy_bc · ATT_matched"):
        assert label in rows and rows[label]["reps"] == 3
    assert block["design"]["audit"]["expected_audited"] > 0 and block["design"]["judge_errors"]["arm_confusion"]
    assert "HistGradientBoosting" in block["surfaces"]["model"]
    assert block["runtime"]["wall_seconds"] > 0 and block["runtime"]["cpu_seconds"] > 0
    lines = (audited_study / "estimates" / "check.jsonl").read_text().splitlines()
    header, records = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["simulated"] is True and [r["rep"] for r in records] == [0, 1, 2]
    assert all(r["simulated"] and r["rows"] for r in records)
    report = (audited_study / "estimates" / "report.html").read_text()
    assert "Simulated data." in report and "simulated studies shaped like this one" in report
    if rows[block["primary"]]["coverage"] < _check.WARN_BELOW:
        assert block["warning"] in payload["warnings"] and "check:" in screen

    # a run killed mid-line leaves a torn last line; the next run, with one more replication, reuses the
    # three whole ones, runs the fourth, and leaves a log of whole lines
    with (audited_study / "estimates" / "check.jsonl").open("a") as handle:
        handle.write('{"rep": 3, "simulated": tr')
    result = runner.invoke(app, ["estimate", str(audited_study), "--bootstrap", "100", "--check", "--check-reps", "4"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    again = json.loads((audited_study / "estimates" / "estimates.json").read_text())["check"]
    assert again["resumed"] == 3 and again["reps"] == 4 and again["runtime"]["replications_run"] == 1
    assert by_label(again)["dr · ATE"]["reps"] == 4
    lines = (audited_study / "estimates" / "check.jsonl").read_text().splitlines()
    assert [json.loads(line).get("rep") for line in lines] == [None, 0, 1, 2, 3]


@pytest.mark.parametrize("args", [["--check", "--check-reps", "0"], ["--check-reps", "3"]])
def test_bad_check_options_exit_1_with_one_line(audited_study, args):
    result = CliRunner().invoke(app, ["estimate", str(audited_study), *args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "--check" in lines[0]
