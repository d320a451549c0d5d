"""The size of the blind audit, said before anyone labels: `annotate push` says what the audit drew and
what it buys per arm, and refuses an audit that cannot reach the estimate's min_arm (a first pilot's
default audit_rate 0.25 drew 1 pair of 20, with no word, and the corrected estimate never came)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from empathy_study import annotation, judge, study
from empathy_study.study.cli import app
from empathy_study.study.workspace import Workspace
from tests.judge.conftest import sample_frame
from tests.judge.test_log import record

runner = CliRunner()
DOWN = "http://127.0.0.1:9"  # nothing listens: a refusal must come before any server is asked


def audit_study(root, empathy: list[int] | None, toml: str = "") -> Workspace:
    """A study of len(empathy) pairs (or `n` unjudged), one annotator registered, judge j's empathy as given."""
    n = len(empathy) if empathy else 20
    root.mkdir(parents=True)
    sample_frame([f"pair {i}" for i in range(n)]).to_parquet(root / "sample.parquet")
    (root / "study.toml").write_text(f'[study]\nname = "audit"\n{toml}\n[[judges]]\nname = "j"\nmodel = "openai/j"\n')
    (root / "annotation.json").write_text(json.dumps({"salt": "s", "annotators": [{"annotator": "annotator-1",
                                                                                  "url": DOWN}]}))
    if empathy:
        versions = {c: r.version for c, r in judge.study_rubrics(["prompt", "reply"]).items()}
        judge.JudgmentLog(root / "judgments.jsonl").append([
            record(f"p{i:03d}", score=int(s)).model_copy(update={
                "construct": c, "judge": "j", "model": "openai/j", "prompt_version": versions[c],
                "rationale": "The response names the feeling and stays with it."})
            for i, s in enumerate(empathy) for c in versions])
    return Workspace(root)


def push(root, *extra):
    return runner.invoke(app, ["annotate", "push", str(root), *extra], env={"COLUMNS": "400", "LABEL_STUDIO_API_KEY": "0" * 40})


def test_a_pilots_default_audit_is_refused_with_what_it_drew_and_why(tmp_path):
    """The pilot: 20 pairs, audit_rate 0.25, a judge that gives empathy 1 nearly everywhere."""
    ws = audit_study(tmp_path / "s", [1] * 16 + [2, 5, 6, 3])
    drawn = int(annotation.audit_draw(study.load_sample(ws)["pair_id"], 0.25, 0).sum())
    result = push(ws.root)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"the blind audit drew {drawn} of the 20 sampled pairs (audit_rate 0.25)" in lines[0]
    assert "needs 20 in each arm ([causal] min_arm)" in lines[0]
    assert "which this audit cannot reach: the sample holds only 2 treated pairs by the judges' scores, so no " \
           "audit_rate can" in lines[0]
    assert "--small-audit" in lines[0] and "cannot reach Label Studio" not in lines[0]


def test_the_rate_it_names_reaches_min_arm_in_each_arm_on_the_draws_themselves(tmp_path):
    """The suggested audit_rate is checked against the toolkit's own Poisson draw over 300 seeds: it
    reaches min_arm in both arms in at least 95 % of them, and the grid step below it does not."""
    empathy = [6] * 60 + [2] * 140  # 60 treated, 140 control by the judge
    ws = audit_study(tmp_path / "s", empathy, "[annotation]\naudit_rate = 0.1\n[causal]\nmin_arm = 15\n")
    result = push(ws.root)
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())
    reach = study.audit_reach(ws)
    assert reach.in_sample == {"treated": 60, "control": 140} and reach.short
    assert f"{reach.arms['treated']} treated and {reach.arms['control']} control by the judges' current empathy" in said
    assert f"set audit_rate = {reach.rate_needed:g} in [annotation] of {ws.root}/study.toml" in said
    pairs = study.load_sample(ws)["pair_id"]
    treated = np.arange(200) < 60

    def share_reaching(rate: float) -> float:
        draws = [annotation.audit_draw(pairs, rate, seed) for seed in range(300)]
        return np.mean([(d & treated).sum() >= 15 and (d & ~treated).sum() >= 15 for d in draws])

    assert share_reaching(reach.rate_needed) >= 0.93  # 95 % by the binomial; 300 draws leave some noise
    assert share_reaching(round(reach.rate_needed - 0.01, 2)) < 0.95
    assert stats.binom.sf(14, 60, reach.rate_needed) >= 0.95 > stats.binom.sf(14, 60, reach.rate_needed - 0.01)


def test_without_scores_it_counts_pairs_and_with_enough_it_lets_the_push_through(tmp_path):
    unjudged = audit_study(tmp_path / "unjudged", None)
    result = push(unjudged.root)
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "no judge scores yet, so their arms are unknown" in said and "at least 40 in all" in said
    assert "no audit_rate can in a sample of 20 pairs" in said
    enough = audit_study(tmp_path / "enough", [6, 2] * 40, "[annotation]\naudit_rate = 1.0\n")
    reach = study.audit_reach(enough)
    assert not reach.short and reach.arms == {"treated": 40, "control": 40}
    # Not refused: the push goes on to the annotator's server (down here), so the error is that one.
    result = push(enough.root)
    assert result.exit_code == 1 and f"cannot reach Label Studio at {DOWN}" in result.output
    small = push(unjudged.root, "--small-audit")
    assert small.exit_code == 1 and f"cannot reach Label Studio at {DOWN}" in small.output


@pytest.mark.parametrize("exported", [False, True])
def test_the_arms_are_the_scores_the_estimate_would_see(tmp_path, exported):
    ws = audit_study(tmp_path / "s", [6, 2, 4, 5] * 10, "[annotation]\naudit_rate = 1.0\n")
    if exported:
        table = study.export(ws).table
        table.assign(empathy=7.0).to_parquet(ws.scored_pairs)  # e.g. a calibration lock moved every pair up
    reach = study.audit_reach(ws)
    expected = {"treated": 40, "control": 0} if exported else {"treated": 20, "control": 10}
    assert reach.arms == expected and reach.in_sample == expected
    assert reach.scores_from == ("scored_pairs.parquet" if exported else "the panel's mean in judgments.jsonl")


# ------------------------------------------------------------------ annotate plan before a corrected estimate


def test_the_design_plan_gives_the_width_it_promises(seed=0):
    """Known answer, by simulation against scipy's Welch interval: at the planned audited pairs, the 95 %
    interval of the difference in means has the target width (t and z differ by < 2 % with 80 or more in an arm)."""
    from empathy_study.study.audit_plan import audited_needed, per_arm_needed

    rng = np.random.default_rng(seed)
    for sd, width, shares in ((1.5, 0.5, (0.3, 0.5)), (1.0, 0.5, (0.2, 0.6)), (2.0, 0.6, (0.5, 0.5))):
        n = audited_needed(sd, width, shares, min_arm=20)
        n_t, n_c = round(n * shares[0]), round(n * shares[1])
        widths = [np.diff(stats.ttest_ind(rng.normal(4, sd, n_t), rng.normal(3, sd, n_c), equal_var=False)
                          .confidence_interval())[0] for _ in range(300)]
        assert np.median(widths) == pytest.approx(width, rel=0.025), (sd, width, shares)
    assert audited_needed(1.5, 0.5, (0.0, 0.8), 20) == float("inf")
    assert audited_needed(0.1, 5.0, (0.25, 0.5), 20) == 80  # the width is easy: min_arm in the rarer arm decides
    assert per_arm_needed(1.5, 0.5, 20) == pytest.approx(audited_needed(1.5, 0.5, (0.5, 0.5), 20) / 2)


def test_the_sd_interval_covers_at_its_level():
    from empathy_study.study.audit_plan import sd_interval

    rng = np.random.default_rng(1)
    hits = [low <= 1.5 <= high for low, high in (sd_interval(rng.normal(4, 1.5, 30))[1:] for _ in range(2000))]
    assert 0.93 <= np.mean(hits) <= 0.97


def plan(root, width="0.5"):
    return runner.invoke(app, ["annotate", "plan", str(root), "--ci-width", width], env={"COLUMNS": "400"})


def test_a_pilot_without_an_estimate_gets_a_plan_from_the_design(tmp_path):
    """The pilot: the estimate had no corrected row ("each arm needs at least 20") and plan refused for
    that very reason. Now it plans: SD assumed (no labels), arms from the judges."""
    ws = audit_study(tmp_path / "s", [6, 6] + [2] * 16 + [4, 4])
    ws.estimates.mkdir()
    reason = "the audit sample has 0 treated and 1 control pairs by their human labels; each arm needs at least 20"
    (ws.estimates / "estimates.json").write_text(json.dumps({"estimates": [], "gold": {"available": False,
                                                                                       "reason": reason}}))
    result = plan(ws.root)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"no corrected estimate to plan from ({reason}): planning from the design" in said
    assert "outcome SD 1.50 (range 1.00–3.00), assumed: 0 audited pairs have attachment labels" in said
    per_arm = int(np.ceil(2 * (2 * 1.959963984540054 * 1.5 / 0.5) ** 2))
    assert f"equal arms: about {per_arm:,} audited pairs in each" in said
    assert "arms: 10% treated, 80% control, from the judges' current empathy" in said
    assert "more than the 20 sampled pairs hold; sample more" in said


def test_with_labels_the_plan_reads_their_spread_and_arms_and_says_how_sure(tmp_path):
    empathy = [6, 2] * 100
    ws = audit_study(tmp_path / "s", empathy, "[annotation]\naudit_rate = 0.2\n")
    rng = np.random.default_rng(2)
    versions = ws.config().prompt_versions()
    labelled = [f"p{i:03d}" for i in range(40)]
    attachment = rng.integers(1, 8, 40)
    gold_empathy = [6] * 12 + [2] * 22 + [4] * 6  # 12 treated, 22 control of 40 by the annotators
    rows = [{"pair_id": p, "construct": c, "annotator": "annotator-1", "score": int(s), "mode": "blind",
             "annotation_id": i, "prompt_version": versions[c], "updated_at": "2026-01-01T00:00:00Z"}
            for c, scores in (("attachment", attachment), ("empathy", gold_empathy))
            for i, (p, s) in enumerate(zip(labelled, scores))]
    frame = pd.DataFrame(rows)
    frame["score"] = frame["score"].astype("Int64")
    frame.to_parquet(ws.labels)
    result = plan(ws.root, "1.6")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    sd = np.std(attachment, ddof=1)
    low, high = sd * np.sqrt(39 / stats.chi2.ppf([0.975, 0.025], 39))
    assert f"outcome SD {sd:.2f} (range {low:.2f}–{high:.2f}), from the attachment labels of 40 audited pairs" in said
    t, c = (stats.binomtest(k, 40).proportion_ci(method="wilson") for k in (12, 22))
    assert (f"arms: 30% treated, 55% control ([{t.low:.0%}, {t.high:.0%}], [{c.low:.0%}, {c.high:.0%}]), from the "
            "empathy labels of 40 audited pairs") in said
    from empathy_study.study.audit_plan import audited_needed

    needed = np.ceil(audited_needed(sd, 1.6, (12 / 40, 22 / 40), 20))
    worst = np.ceil(audited_needed(high, 1.6, (t.low, c.low), 20))
    assert f"at those shares: about {needed:,.0f} audited pairs (range" in said and f"–{worst:,.0f})" in said
    assert f"audit_rate {np.ceil(needed / 200 * 100) / 100:g} of the 200 sampled pairs (now 0.2:" in said
