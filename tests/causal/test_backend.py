"""`[causal] backend = "ray"`: the same estimates as the local run, computed as Ray tasks on a two-CPU
Ray the test starts itself; local worker processes (`workers`) give the one-process estimates exactly,
and the pieces do run in other processes; the default never imports Ray; the forest's subsample cap is honoured and
recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from empathy_study import causal
from empathy_study.causal import _backend

from .test_static_embedding import static_model  # noqa: F401  (the distilled model, copied from `make setup`'s)


@pytest.fixture(scope="module")
def audited_study(sharegpt_all_pairs, static_model):  # noqa: F811
    """900 real pairs with planted scores, a simulated judge and a 30 % simulated audit (so the
    judge-error correction runs), and the fast (static) embedder, warmed on the previous turns too so
    that neither run pays for embedding."""
    embedder = causal.Embedder(embedding="fast")
    scored, truth = causal.semisynthetic_study(sharegpt_all_pairs, 900, seed=3, embedder=embedder)
    scored = causal.judge_labels(scored, truth, causal.JudgeNoise(), audit_rate=0.3, seed=3)
    embedder.embed(scored["prev_response"].fillna("").astype(str).tolist())
    return scored, embedder


# Every parallel piece runs in this config: folds (nuisances, the correction, the audited-only DR, the
# refuters' refits, econml's LinearDML folds), forests and their predictions.
SETTINGS = dict(estimators=["naive", "dr", "dr_gold_only", "dr_gold_corrected", "matching", "linear_dml"],
                refuters=["placebo"], bootstrap=200, sensitivity=False, hte_max_pairs=None, seed=5)


def test_ray_backend_gives_the_local_estimates_exactly(audited_study):
    import ray

    scored, embedder = audited_study
    start = time.perf_counter()
    local = causal.estimate_effects(scored, causal.CausalConfig(**SETTINGS), embedder)
    local_seconds = time.perf_counter() - start
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - start
    try:
        start = time.perf_counter()
        remote = causal.estimate_effects(scored, causal.CausalConfig(**SETTINGS, backend="ray"), embedder)
        ray_seconds = time.perf_counter() - start
        assert ray.is_initialized()  # the caller's Ray is used and left running
    finally:
        ray.shutdown()
    gap = max(abs(a.estimate - b.estimate) + abs(a.se - b.se) for a, b in zip(local.rows, remote.rows))
    print(f"\nlocal {local_seconds:.1f} s; Ray start-up {startup:.1f} s; on Ray (2 CPUs) {ray_seconds:.1f} s; "
          f"largest difference of an estimate or SE {gap:.1e}")

    assert [(r.method, r.estimand, r.weighted) for r in local.rows] == \
        [(r.method, r.estimand, r.weighted) for r in remote.rows]
    assert {r.method for r in local.rows} >= {"dr", "dr_gold_corrected", "matching_optimal_bc", "linear_dml"}
    # Tolerance: exact for everything but the rows fed by linear models — the workers run BLAS on one
    # thread where this process uses several, which may change the last bits of a sum.
    for a, b in zip(local.rows, remote.rows):
        assert np.isfinite(a.estimate)
        assert b.estimate == pytest.approx(a.estimate, rel=1e-9, abs=1e-12), a.label
        assert b.se == pytest.approx(a.se, rel=1e-9, abs=1e-12), a.label
    np.testing.assert_allclose(remote.arrays["propensity"], local.arrays["propensity"], rtol=1e-9)
    np.testing.assert_allclose(remote.arrays["cate"], local.arrays["cate"], rtol=1e-9, atol=1e-12)
    assert remote.hte["calibration_test"] == pytest.approx(local.hte["calibration_test"], rel=1e-9)
    for target in ("dr_gold_corrected · ATE", "dr · ATE"):
        assert remote.refuters[target]["placebo"]["estimate"] == pytest.approx(
            local.refuters[target]["placebo"]["estimate"], rel=1e-9)
    assert remote.matched_pairs.equals(local.matched_pairs)


def _pid(item: int) -> int:
    return os.getpid()


def test_local_workers_run_the_pieces_in_other_processes():
    with _backend.using(_backend.make("local", workers=2)):
        pids = _backend.run(_pid, range(6))
    assert os.getpid() not in pids
    with _backend.using(_backend.make("local", workers=1)):
        assert set(_backend.run(_pid, range(3))) == {os.getpid()}


def test_local_workers_give_the_one_process_estimates_exactly(audited_study):
    scored, embedder = audited_study
    start = time.perf_counter()
    alone = causal.estimate_effects(scored, causal.CausalConfig(**SETTINGS, workers=1), embedder)
    alone_seconds, start = time.perf_counter() - start, time.perf_counter()
    pooled = causal.estimate_effects(scored, causal.CausalConfig(**SETTINGS, workers=2), embedder)
    print(f"\none process {alone_seconds:.1f} s; two local workers {time.perf_counter() - start:.1f} s")
    assert [(r.method, r.estimand) for r in pooled.rows] == [(r.method, r.estimand) for r in alone.rows]
    for a, b in zip(alone.rows, pooled.rows):
        assert (b.estimate, b.se) == (a.estimate, a.se), (a.method, a.estimand)
    np.testing.assert_array_equal(pooled.arrays["cate"], alone.arrays["cate"])
    assert json.dumps(pooled.hte, default=str) == json.dumps(alone.hte, default=str)
    assert pooled.matched_pairs.equals(alone.matched_pairs)


def test_the_default_backend_never_imports_ray():
    code = ("import sys, numpy as np\n"
            "from empathy_study.causal import _backend, _nuisance\n"
            "rng = np.random.default_rng(0)\n"
            "X = rng.normal(size=(400, 5)); t = rng.integers(0, 2, 400); y = X[:, 0] + t\n"
            "folds = _nuisance.fold_ids(np.arange(400) // 2, 5, 0)\n"
            "with _backend.using(_backend.make('local')):\n"
            "    _nuisance.crossfit(X, t, y, np.ones(400, bool), folds, 'linear', 0)\n"
            "print('ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_estimate_records_and_honours_the_forest_cap(audited_study):
    scored, embedder = audited_study
    config = causal.CausalConfig(estimators=["dr"], refuters=[], sensitivity=False, hte_max_pairs=300, seed=5)
    result = causal.estimate_effects(scored, config, embedder)
    hte = result.hte
    kept = int(hte["population"].split()[0])
    assert kept > 300
    assert 250 < hte["forest_fitted_on"] <= 300
    assert "hte_max_pairs = 300" in hte["forest_sample"]
    assert len(result.arrays["cate"]) == kept  # CATEs still for every trimmed pair
    assert "hte_max_pairs = 300" in causal.render_report(result)  # and the report says so
