"""Does the judge-error correction gain from reading each judge's scores, not only the panel mean?

Semi-synthetic replications on real ShareGPT text: simulated scores with a planted effect
(`causal.simulate`, the planted design), a SIMULATED panel of three judges of different quality
(`causal.PANEL_JUDGES`: one good, one noisy, one biased — it reads empathy 1.5 points high and
over-reads attachment, more on personal prompts) and a SIMULATED human audit of `--audit-rate` of the
pairs (the simulated true scores). Each replication runs the estimate twice on the same table:

- panel-aware: the table as `empathy export` writes it, each judge's own columns `<construct>__<judge>`
  beside the panel mean; dr_gold_corrected and dr_gold_only;
- panel-mean: the same table without the per-judge columns (the correction before them).

Each row is scored against the realised effect over the pairs whose true empathy is in an arm:
coverage (Wilson 95 % interval), mean bias, median CI width; and per replication the panel-aware
width ÷ the panel-mean width and ÷ gold-only's. Every replication is appended to `--out` (JSON lines)
as it finishes; `--summarise FILE` prints the table of a finished or partial run.

Usage: nice -n 10 python bench/panel_audit.py --reps 200 --out bench/results/panel_audit.jsonl
       python bench/panel_audit.py --summarise bench/results/panel_audit.jsonl
"""

from __future__ import annotations

import json
import os
import platform
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # before numpy loads BLAS: one thread, the cores are shared

from real_text import real_turn_pairs  # noqa: E402
from replications import replication_parser, run_replications, wilson  # noqa: E402  (bench/ is this script's folder, first on the path)

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from empathy_study import causal  # noqa: E402
from empathy_study.causal._semisynthetic import PERSONAL_ANCHORS, TASK_ANCHORS, sample_pairs  # noqa: E402

ROWS = ("panel-aware", "panel-mean", "gold-only")


def replicate(chosen: pd.DataFrame, score: np.ndarray, embedder, rep: int, audit_rate: float) -> dict:
    seed = 5_000 + rep
    scored, truth = causal.simulate(chosen, score, seed=seed)
    judged = causal.panel_labels(scored, truth, causal.PANEL_JUDGES, audit_rate, seed=seed)
    rule = causal.TreatmentRule()
    target = causal.true_effects(truth, truth.loc[rule.assign(truth["empathy"]).notna(), "pair_id"])
    config = causal.CausalConfig(seed=rep, estimators=["dr_gold_only", "dr_gold_corrected"], refuters=[],
                                 heterogeneity=False, sensitivity=False, workers=1)  # one core: the others are shared
    aware = causal.estimate_effects(judged, config, embedder)
    assert aware.gold["prediction_judges"] == list(causal.PANEL_JUDGES)
    per_judge = [c for c in judged.columns if "__" in c]
    mean = causal.estimate_effects(judged.drop(columns=per_judge),
                                   config.model_copy(update={"estimators": ["dr_gold_corrected"]}), embedder)
    rows = {"panel-aware": aware.row("dr_gold_corrected"), "gold-only": aware.row("dr_gold_only"),
            "panel-mean": mean.row("dr_gold_corrected")}
    record = {"rep": rep, "simulated": True, "truth": target, "audited": int(judged["empathy_gold"].notna().sum()),
              "pairs": len(judged)}
    for name, r in rows.items():
        record[name] = {"estimate": r.estimate, "low": r.ci_low, "high": r.ci_high, "width": r.ci_high - r.ci_low,
                        "covered": bool(r.ci_low <= target <= r.ci_high), "lambda": r.ppi_lambda,
                        "gold_only_weight": r.gold_only_weight}
    record["explained"] = {"panel-aware": aware.gold.get("explained"), "panel-mean": mean.gold.get("explained")}
    return record


def summarise(records: list[dict]) -> dict:
    out = {"reps": len(records), "rows": {}}
    for name in ROWS:
        covered = sum(r[name]["covered"] for r in records)
        low, high = wilson(covered, len(records))
        error = np.array([r[name]["estimate"] - r["truth"] for r in records])
        out["rows"][name] = {"coverage": covered / len(records), "coverage_ci": [low, high],
                             "bias": float(error.mean()), "rmse": float(np.sqrt((error**2).mean())),
                             "median_width": float(np.median([r[name]["width"] for r in records]))}
    to_mean = np.array([r["panel-aware"]["width"] / r["panel-mean"]["width"] for r in records])
    out["aware_over_mean"] = {"median": float(np.median(to_mean)), "share_narrower": float(np.mean(to_mean < 1))}
    for name in ("panel-aware", "panel-mean"):
        to_only = np.array([r[name]["width"] / r["gold-only"]["width"] for r in records])
        out[f"{name}_over_gold_only"] = {"median": float(np.median(to_only)), "max": float(to_only.max()),
                                         "share_wider": float(np.mean(to_only > 1))}
    out["median_explained"] = {k: float(np.median([r["explained"][k] for r in records]))
                               for k in ("panel-aware", "panel-mean")}
    out["median_audited"] = float(np.median([r["audited"] for r in records]))
    return out


def table(summary: dict) -> str:
    lines = [f"{summary['reps']} replications (SIMULATED judges and audit on real text), "
             f"median {summary['median_audited']:.0f} audited pairs",
             f"{'row':14} {'coverage':>8} {'95 % CI of coverage':>20} {'mean bias':>9} {'RMSE':>6} {'median width':>12}"]
    for name, r in summary["rows"].items():
        ci = f"[{r['coverage_ci'][0]:.3f}, {r['coverage_ci'][1]:.3f}]"
        lines.append(f"{name:14} {r['coverage']:8.3f} {ci:>20} {r['bias']:+9.3f} {r['rmse']:6.3f} {r['median_width']:12.3f}")
    m = summary["aware_over_mean"]
    lines.append(f"panel-aware width ÷ panel-mean width: median {m['median']:.3f}, narrower in {m['share_narrower']:.1%}")
    for name in ("panel-aware", "panel-mean"):
        g = summary[f"{name}_over_gold_only"]
        lines.append(f"{name} width ÷ gold-only width: median {g['median']:.3f}, max {g['max']:.3f}, "
                     f"wider in {g['share_wider']:.1%} of replications")
    e = summary["median_explained"]
    lines.append(f"share of the gold moment's variance the prediction explains (median): panel-aware "
                 f"{e['panel-aware']:.2f}, panel-mean {e['panel-mean']:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = replication_parser(__doc__.splitlines()[0])
    parser.add_argument("--audit-rate", type=float, default=0.25)
    args = parser.parse_args()
    if args.summarise:
        records = [json.loads(line) for path in args.summarise for line in path.read_text().splitlines()
                   if line.strip() and json.loads(line).get("kind") != "header"]
        print(table(summarise(records)))
        return
    warnings.filterwarnings("ignore")
    embedder = causal.Embedder()
    chosen = sample_pairs(real_turn_pairs(), args.n, seed=0)
    score = causal.personal_score(embedder.embed(chosen["prompt"].tolist()), embedder.embed(PERSONAL_ANCHORS),
                                  embedder.embed(TASK_ANCHORS))
    embedder.embed(chosen["prev_response"].fillna("").astype(str).tolist())
    if args.out:
        with args.out.open("a") as handle:
            handle.write(json.dumps({"kind": "header", "simulated": True, "n": args.n, "audit_rate": args.audit_rate,
                                     "judges": {k: vars(v) for k, v in causal.PANEL_JUDGES.items()},
                                     "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                     "command": "python bench/panel_audit.py " + " ".join(
                                         f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                         if v is not None and k != "summarise")}) + "\n")
    records = run_replications(lambda rep: [replicate(chosen, score, embedder, rep, args.audit_rate)],
                               args.first, args.reps, args.out)
    print(table(summarise(records)))


if __name__ == "__main__":
    main()
