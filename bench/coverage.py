"""Coverage of the 95 % intervals over many semi-synthetic replications (real text, planted effect).

Each replication draws new treatments, scores and noise on the same real turn-pairs (so the
embeddings are computed once) and runs the full estimator. Reports, per estimator, the share of
intervals that contain the truth it targets (DR: the sample ATE; matching: the ATT of the treated
units it kept) with a Wilson 95 % interval for that share, the mean bias and the RMSE.
Usage: python bench/coverage.py [--reps 100] [--n 3000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

# This file is named coverage.py: drop its own folder from the path, or numba's `import coverage`
# finds this script instead of the coverage package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from empathy_study import (
    causal,  # noqa: E402
    corpus,  # noqa: E402
)
from empathy_study.causal._semisynthetic import PERSONAL_ANCHORS, TASK_ANCHORS  # noqa: E402


def wilson(successes: int, trials: int) -> tuple[float, float]:
    z = stats.norm.ppf(0.975)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return centre - half, centre + half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--n", type=int, default=3_000)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory() as tmp:
        funnel = corpus.Funnel("sharegpt")
        corpus.build_corpus(corpus.read_source("sharegpt", [], funnel), Path(tmp),
                            corpus.CorpusConfig(keep_transactional=True), funnel)
        pairs = pd.read_parquet(Path(tmp) / corpus.TURN_PAIRS_FILE)
    embedder = causal.Embedder()
    chosen = pairs.sort_values("pair_id").sample(n=args.n, random_state=0).reset_index(drop=True)
    score = causal.personal_score(embedder.embed(chosen["prompt"].tolist()), embedder.embed(PERSONAL_ANCHORS),
                                  embedder.embed(TASK_ANCHORS))
    records = []
    started = time.perf_counter()
    for rep in range(args.reps):
        scored, truth = causal.simulate(chosen, score, seed=1_000 + rep)
        result = causal.estimate_effects(scored, causal.CausalConfig(seed=rep, bootstrap=300), embedder)
        for r in result.rows:
            pairs = causal.target_pairs(r, result, scored, causal.TreatmentRule())
            if pairs is None:
                continue
            target = causal.true_effects(truth, pairs)
            records.append({"rep": rep, "estimator": f"{r.method} {r.estimand}", "estimate": r.estimate,
                            "truth": target, "covered": r.ci_low <= target <= r.ci_high})
        if rep % 10 == 9:
            print(f"{rep + 1} replications, {(time.perf_counter() - started) / (rep + 1):.1f} s each", flush=True)

    frame = pd.DataFrame(records)
    print(f"\n{args.reps} replications of n = {args.n:,} (real ShareGPT text, planted heterogeneous effect)")
    print(f"{'estimator':32} {'coverage':>9} {'95 % CI of coverage':>20} {'mean bias':>10} {'RMSE':>7}")
    for name, group in frame.groupby("estimator", sort=False):
        covered = int(group["covered"].sum())
        low, high = wilson(covered, len(group))
        error = group["estimate"] - group["truth"]
        print(f"{name:32} {covered / len(group):9.2f} {f'[{low:.2f}, {high:.2f}]':>20} {error.mean():10.3f} "
              f"{np.sqrt((error**2).mean()):7.3f}")


if __name__ == "__main__":
    main()
