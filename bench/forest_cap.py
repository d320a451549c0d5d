"""What the heterogeneity forest's subsample cap (`[causal] hte_max_pairs`) costs in statistics and buys in time.

One semi-synthetic study (real ShareGPT text recycled to `--pairs`, planted heterogeneous effects
read by a simulated judge, as in bench/estimate_scale.py), one set of cross-fitted nuisances and
DR scores; then the forest stage of the estimate (`_hte.forest_cate`) fitted on user-grouped
subsamples of each size in `--caps` (0: every pair). Per cap: CPU seconds of the stage, the
calibration test (β_het, its p), and how well the CATEs predicted for every trimmed pair track the
planted unit effects (Pearson r, RMSE) and the uncapped forest's CATEs. The planted truth is what
the estimate never sees; the scores are simulated (semisynthetic).

Usage: nice .venv/bin/python bench/forest_cap.py [--pairs 40000] [--caps 5000,10000,20000,0] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from estimate_scale import recycle  # noqa: E402  (siblings: bench/ is this script's folder)
from real_text import real_turn_pairs  # noqa: E402

# isort: split
import numpy as np  # noqa: E402

from empathy_study import causal  # noqa: E402
from empathy_study.causal._data import prepare  # noqa: E402
from empathy_study.causal._features import build_confounders  # noqa: E402
from empathy_study.causal._fit import Fit  # noqa: E402
from empathy_study.causal._hte import forest_cate  # noqa: E402
from empathy_study.causal._semisynthetic import PERSONAL_ANCHORS, TASK_ANCHORS, simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40_000)
    parser.add_argument("--caps", default="5000,10000,20000,0", help="comma-separated caps; 0: every pair")
    parser.add_argument("--repeats", type=int, default=1, help="forests per calibration test (the estimate uses 5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    pairs = recycle(real_turn_pairs(), args.pairs)
    embedder = causal.Embedder(embedding="fast")
    originals = pairs["prompt"].str.replace(r" \(copy \d+\)$", "", regex=True).tolist()
    score = causal.personal_score(embedder.embed(originals), embedder.embed(PERSONAL_ANCHORS),
                                  embedder.embed(TASK_ANCHORS))
    scored, truth = simulate(pairs, score, args.seed)
    scored = causal.judge_labels(scored, truth, causal.JudgeNoise(), audit_rate=0.02, seed=args.seed)
    config = causal.CausalConfig(embedding="fast", seed=args.seed)
    data = prepare(scored, causal.TreatmentRule(config.treat_high, config.treat_low))
    features = build_confounders(data.frame, embedder.embed(data.frame["prompt"].astype(str).tolist()), None,
                                 config.embedding_dims, 0, config.seed)
    fit = Fit(data, features, config, lambda step: None)
    kept = fit.kept
    clusters = np.unique(fit.data.clusters[kept], return_inverse=True)[1]
    effect = truth.set_index("pair_id")["unit_effect"].reindex(fit.data.frame["pair_id"]).to_numpy()[kept]
    print(f"{len(scored):,} pairs, {int(kept.sum()):,} in the trimmed population the forest sees; "
          f"{args.repeats} forest(s) per calibration test; load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"  {'cap':>7s} {'fitted':>7s} {'CPU s':>7s} {'β_het':>6s} {'p':>7s} {'r(truth)':>8s} {'RMSE':>6s} "
          f"{'r(uncapped)':>11s}")
    results = {}
    for cap in [int(c) for c in args.caps.split(",")]:
        began = time.process_time()
        forest = forest_cate(fit.features.modifier_matrix[kept], fit.scores[kept], clusters, args.seed,
                             repeats=args.repeats, max_pairs=cap or None)
        results[cap] = (forest, time.process_time() - began)
    full = results.get(0, (None,))[0]
    for cap, (forest, cpu) in results.items():
        c = forest.calibration
        r_full = np.corrcoef(forest.cate, full.cate)[0, 1] if full is not None else float("nan")
        print(f"  {cap or 'none':>7} {forest.fitted_on:7d} {cpu:7.1f} {c.beta_het:6.2f} {c.p_value:7.1e} "
              f"{np.corrcoef(forest.cate, effect)[0, 1]:8.3f} {np.sqrt(np.mean((forest.cate - effect) ** 2)):6.3f} "
              f"{r_full:11.3f}")


if __name__ == "__main__":
    main()
