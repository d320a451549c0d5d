"""The negative-control outcome on planted studies of real text: the prompt's attachment shows no effect
when the confounders capture everything, and flags a hidden user trait that drives empathy, attachment
and the prompt's attachment alike — the confounding the main estimate then carries too."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from empathy_study import causal
from empathy_study.causal import _negative_control as nco
from empathy_study.causal import _refute as refute
from empathy_study.causal._estimate import refute_problem
from tests.causal.conftest import _fit


@pytest.fixture(scope="module")
def studies(sharegpt_all_pairs):
    """1,500 real pairs (seed 0: test_refute's texts) with the default planted effect and a simulated prompt
    attachment; once without and once with a hidden trait (strength 1.0 on the logit of treatment, on the
    outcome and on the prompt's attachment)."""
    start = time.perf_counter()
    embedder = causal.Embedder()
    out = {}
    for name, hidden in (("clean", 0.0), ("hidden", 1.0)):
        scored, truth = causal.semisynthetic_study(sharegpt_all_pairs, 1_500, seed=0, embedder=embedder,
                                                   planted=causal.PlantedEffect(negative_control=True, hidden=hidden))
        fit = _fit(scored, embedder)
        out[name] = scored, truth, fit, refute_problem(fit)
    print(f"\nfixture: {time.perf_counter() - start:.1f} s")
    return out


def test_no_effect_on_the_prompts_attachment_when_none_is_hidden(studies):
    scored, truth, fit, problem = studies["clean"]
    original = problem.refit(refute.Alteration())
    result = nco.negative_control_outcome(problem, original)
    print(f"\nclean: {result['summary']}; dr {original.estimate:+.3f} [{original.low:.3f}, {original.high:.3f}], "
          f"truth {causal.true_effects(truth, fit.data.frame['pair_id']):+.3f}")
    assert result["verdict"] == "passed" and result["ci_low"] <= 0 <= result["ci_high"]
    assert result["n"] == len(problem.clusters)


def test_a_hidden_confounder_is_flagged(studies):
    scored, truth, fit, problem = studies["hidden"]
    original = problem.refit(refute.Alteration())
    result = nco.negative_control_outcome(problem, original)
    effect = causal.true_effects(truth, fit.data.frame["pair_id"])
    print(f"\nhidden: {result['summary']}; dr {original.estimate:+.3f} [{original.low:.3f}, {original.high:.3f}], "
          f"truth {effect:+.3f}")
    assert result["verdict"] == "failed" and result["ci_low"] > 0  # the trait raises treatment and prompt attachment
    assert original.low > effect  # and the main estimate is biased upward by the same trait: what the check warns of


def test_unscored_prompts_are_left_out_and_too_few_are_not_run(studies):
    _, _, _, problem = studies["clean"]
    original = problem.refit(refute.Alteration())
    control = problem.negative_control.copy()
    control[::3] = np.nan
    result = nco.negative_control_outcome(replace(problem, negative_control=control), original)
    assert result["n"] == int(np.isfinite(control).sum()) and result["unscored"] == int(np.isnan(control).sum())
    control[0] = 9.0
    off_scale = nco.negative_control_outcome(replace(problem, negative_control=control), original)
    assert off_scale["verdict"] == "not run" and "outside 1..7" in off_scale["summary"]
    control[0] = 4.0
    control[10:] = np.nan
    few = nco.negative_control_outcome(replace(problem, negative_control=control), original)
    assert few["verdict"] == "not run" and "at least 40" in few["summary"]


def test_the_estimate_runs_it_whenever_the_column_exists_and_reports_it(studies):
    scored, _, _, _ = studies["hidden"]
    config = causal.CausalConfig(estimators=["dr"], refuters=[], heterogeneity=False, sensitivity=False,
                                 prev_embedding_dims=0)  # the planted confounding runs through the prompt only
    result = causal.estimate_effects(scored, config, causal.Embedder())
    entry = result.refuters["dr · ATE"][nco.NAME]
    assert entry["verdict"] == "failed" and entry["outcome"] == "prompt_attachment" and entry["kind"] == "confounding"
    assert result.to_json()["refuters"]["dr · ATE"][nco.NAME]["verdict"] == "failed"
    page = causal.render_report(result)
    assert "negative control outcome</b> (confounding): failed" in page and "flags confounding the confounders miss" in page
    without = causal.estimate_effects(scored.drop(columns=["prompt_attachment"]), config, causal.Embedder())
    assert without.refuters == {}  # no column, no refuters asked for: nothing runs
