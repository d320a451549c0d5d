"""Coverage of the 95 % intervals over many semi-synthetic replications (real text, planted effect).

Each replication draws new treatments, scores and noise on the same real turn-pairs (so the
embeddings are computed once) and runs the estimators. Two data-generating designs:

- `planted`: the design the defaults were chosen on (linear-logistic confounding through the
  prompt's meaning, model, turn and hour);
- `nonlinear`: not used to choose anything — non-linear confounding and a random effect per user
  (whole users are sampled, so clusters hold several pairs).

With `--judge good|poor` a simulated judge labels every pair (treatment misread on 8 % / 25 % of
pairs, more often on personal prompts; attachment over-read) and the simulated true scores are
human labels on a random audit sample (`--audit-rate`). The rows are `dr` (judge labels taken as
truth), `dr_gold_only` (the audited pairs' human labels alone) and `dr_gold_corrected`; each
targets the ATE over pairs whose *true* empathy is in an arm. With `--judge none` the scores are
the truth and the full set of estimators runs (naive, dr, matching), as before.

Reports, per estimator, the share of intervals that contain the truth it targets with a Wilson
95 % interval for that share, mean bias, RMSE and median interval width. Every replication is
appended to `--out` (JSON lines) as it finishes, so a cut run keeps what it did; `--summarise FILE`
prints the table of a finished or partial run.

Usage: nice python bench/estimator_coverage.py --design planted --judge good,poor --reps 200 --out cov.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # before numpy loads BLAS: one thread, the cores are shared

from real_text import real_turn_pairs  # noqa: E402  (bench/ is this script's folder, first on the path)

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from empathy_study import causal  # noqa: E402
from empathy_study.causal._semisynthetic import (  # noqa: E402
    GOOD_JUDGE,
    PERSONAL_ANCHORS,
    POOR_JUDGE,
    TASK_ANCHORS,
    sample_pairs,
)

JUDGES = {"good": GOOD_JUDGE, "poor": POOR_JUDGE}
GOLD_ESTIMATORS = ["dr", "dr_gold_only", "dr_gold_corrected"]


def wilson(successes: int, trials: int) -> tuple[float, float]:
    z = stats.norm.ppf(0.975)
    p = successes / trials
    centre = (p + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def records_of(result, scored, truth, design: str, judge: str, rep: int) -> list[dict]:
    rule = causal.TreatmentRule()
    out = []
    for r in result.rows:
        if r.weighted or not np.isfinite(r.estimate):
            continue
        pairs = causal.target_pairs(r, result, scored, rule, truth)
        if pairs is None:
            continue
        target = causal.true_effects(truth, pairs)
        out.append({"design": design, "judge": judge, "rep": rep, "estimator": f"{r.method} {r.estimand}",
                    "estimate": r.estimate, "truth": target, "low": r.ci_low, "high": r.ci_high,
                    "covered": bool(r.ci_low <= target <= r.ci_high)})
    return out


def summarise(frame: pd.DataFrame) -> str:
    lines = []
    for (design, judge), block in frame.groupby(["design", "judge"], sort=False):
        reps = block["rep"].nunique()
        lines.append(f"\n{design} design, judge {judge}: {reps} replications")
        lines.append(f"{'estimator':34} {'coverage':>8} {'95 % CI of coverage':>20} {'mean bias':>9} {'RMSE':>6} "
                     f"{'median width':>12} {'× gold-only':>11} {'reps':>5}")
        widths = {name: float(np.median(g["high"] - g["low"])) for name, g in block.groupby("estimator")}
        reference = widths.get("dr_gold_only ATE")
        for name, group in block.groupby("estimator", sort=False):
            covered = int(group["covered"].sum())
            low, high = wilson(covered, len(group))
            error = group["estimate"] - group["truth"]
            ratio = f"{widths[name] / reference:.2f}" if reference else "–"
            lines.append(f"{name:34} {covered / len(group):8.2f} {f'[{low:.2f}, {high:.2f}]':>20} {error.mean():+9.3f} "
                         f"{np.sqrt((error**2).mean()):6.3f} {widths[name]:12.3f} {ratio:>11} {len(group):5d}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--first", type=int, default=0, help="first replication (to resume or split a run)")
    parser.add_argument("--n", type=int, default=3_000)
    parser.add_argument("--design", choices=["planted", "nonlinear"], default="planted")
    parser.add_argument("--judge", default="good,poor", help="comma-separated: none, good, poor")
    parser.add_argument("--audit-rate", type=float, default=0.2)
    parser.add_argument("--out", type=Path, default=None, help="append each replication's rows here (JSON lines)")
    parser.add_argument("--summarise", type=Path, default=None, help="only print the table of a results file")
    args = parser.parse_args()
    if args.summarise:
        print(summarise(pd.read_json(args.summarise, lines=True)))
        return
    warnings.filterwarnings("ignore")
    judges = args.judge.split(",")
    embedder = causal.Embedder()
    chosen = sample_pairs(real_turn_pairs(), args.n, seed=0, by_user=args.design == "nonlinear")
    score = causal.personal_score(embedder.embed(chosen["prompt"].tolist()), embedder.embed(PERSONAL_ANCHORS),
                                  embedder.embed(TASK_ANCHORS))
    planted = causal.PlantedEffect(design=args.design)
    records = []
    started = time.perf_counter()
    for rep in range(args.first, args.first + args.reps):
        scored, truth = causal.simulate(chosen, score, seed=1_000 + rep, planted=planted)
        gold_only = true_labels = None
        for judge in judges:
            if judge == "none":
                config = causal.CausalConfig(seed=rep, bootstrap=300, heterogeneity=False)
                result = causal.estimate_effects(scored, config, embedder)
                rows = records_of(result, scored, truth, args.design, judge, rep)
            else:
                judged = causal.judge_labels(scored, truth, JUDGES[judge], args.audit_rate, seed=1_000 + rep)
                # dr_gold_only sees only the audit's human labels, the same for every judge: fitted once.
                names = [e for e in GOLD_ESTIMATORS if e != "dr_gold_only" or gold_only is None]
                result = causal.estimate_effects(judged, causal.CausalConfig(seed=rep, estimators=names,
                                                                             heterogeneity=False), embedder)
                rows = records_of(result, scored, truth, args.design, judge, rep)
                gold_only = gold_only or [r for r in rows if r["estimator"] == "dr_gold_only ATE"]
                if "dr_gold_only" not in names:
                    rows += [{**r, "judge": judge} for r in gold_only]
                if true_labels is None:  # reference: the same DR on the true labels of every pair
                    reference = causal.estimate_effects(scored, causal.CausalConfig(seed=rep, estimators=["dr"],
                                                                                    heterogeneity=False), embedder)
                    true_labels = [{**r, "estimator": "dr_true_labels ATE"}
                                   for r in records_of(reference, scored, truth, args.design, judge, rep)
                                   if r["estimator"] == "dr ATE"]
                rows += [{**r, "judge": judge} for r in true_labels]
            records += rows
            if args.out:
                with args.out.open("a") as handle:
                    handle.writelines(json.dumps(r) + "\n" for r in rows)
        done = rep - args.first + 1
        if done % 10 == 0 or done == args.reps:
            print(f"{done} replications, {(time.perf_counter() - started) / done:.1f} s each", flush=True)
    print(f"\nreplications of n = {len(chosen):,} (real ShareGPT text, planted heterogeneous effect; "
          f"audit rate {args.audit_rate})")
    print(summarise(pd.DataFrame(records)))


if __name__ == "__main__":
    main()
