"""What the heterogeneity forest's subsample cap (`[causal] hte_max_pairs`) costs in statistics and buys in time.

One semi-synthetic study (real ShareGPT text recycled to `--pairs`, planted heterogeneous effects
read by a simulated judge, as in bench/estimate_scale.py), one set of cross-fitted nuisances and
DR scores; then the forest stage of the estimate (`_hte.forest_cate`) fitted on user-grouped
subsamples of each size in `--caps` (0: every pair). Per cap: CPU seconds of the stage, the
calibration test (β_het, its p), and how well the CATEs predicted for every trimmed pair track the
planted unit effects (Pearson r, RMSE) and the uncapped forest's CATEs. The planted truth is what
the estimate never sees; the scores are simulated (semisynthetic).

With `--old`, each cap also runs the forest stage as it was before it became honest by user
(`hte_level.oob_forest_cate`: one forest per repetition on every fitted pair, out-of-bag tests, and
econml's per-pair intervals for every trimmed pair), on the same scores: CPU old vs new in one run.

Usage: nice .venv/bin/python bench/forest_cap.py [--pairs 40000] [--caps 5000,10000,20000,0] [--repeats 1] [--old]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from estimate_scale import recycle  # noqa: E402  (siblings: bench/ is this script's folder)
from hte_level import oob_forest_cate  # noqa: E402
from real_text import real_turn_pairs  # noqa: E402

# isort: split
import numpy as np  # noqa: E402

from empathy_study import causal  # noqa: E402
from empathy_study.causal._data import prepare  # noqa: E402
from empathy_study.causal._features import build_confounders  # noqa: E402
from empathy_study.causal._fit import Fit  # noqa: E402
from empathy_study.causal._hte import forest_cate, forest_sample  # noqa: E402
from empathy_study.causal._semisynthetic import PERSONAL_ANCHORS, TASK_ANCHORS, simulate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40_000)
    parser.add_argument("--caps", default="5000,10000,20000,0", help="comma-separated caps; 0: every pair")
    parser.add_argument("--repeats", type=int, default=1,
                        help="user splits (old path: forests) per calibration test (the estimate uses 5)")
    parser.add_argument("--old", action="store_true", help="also run the out-of-bag forest stage it replaced")
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
          f"{args.repeats} split(s) per calibration test; load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"  {'path':4s} {'cap':>7s} {'fitted':>7s} {'CPU s':>7s} {'β_het':>6s} {'p':>7s} {'r(truth)':>8s} "
          f"{'RMSE':>6s} {'r(uncapped)':>11s}")
    results = {}
    modifiers, scores = fit.features.modifier_matrix[kept], fit.scores[kept]
    for cap in [int(c) for c in args.caps.split(",")]:
        for path in ("new", "old") if args.old else ("new",):
            began = time.process_time()
            if path == "new":
                forest = forest_cate(modifiers, scores, clusters, args.seed, repeats=args.repeats, max_pairs=cap or None)
                cate, calibration = forest.cate, forest.calibration
            else:
                old = oob_forest_cate(modifiers, scores, clusters, args.seed, repeats=args.repeats, max_pairs=cap or None)
                cate, calibration = old["cate"], old["calibration"]
            results[path, cap] = (cate, calibration, time.process_time() - began)
    for (path, cap), (cate, c, cpu) in results.items():
        full = results.get((path, 0))
        r_full = np.corrcoef(cate, full[0])[0, 1] if full is not None else float("nan")
        fitted = len(forest_sample(clusters, cap or None, args.seed))
        print(f"  {path:4s} {cap or 'none':>7} {fitted:7d} {cpu:7.1f} {c.beta_het:6.2f} {c.p_value:7.1e} "
              f"{np.corrcoef(cate, effect)[0, 1]:8.3f} {np.sqrt(np.mean((cate - effect) ** 2)):6.3f} {r_full:11.3f}")


if __name__ == "__main__":
    main()
