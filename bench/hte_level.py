"""Level and power of the heterogeneity calibration test, and coverage of GATES, where prompts identify users.

The estimate's heterogeneity test (`_hte.forest_cate`: BLP β_het of the DR scores on CATEs from
forests cross-fitted over users, median over splits, p = 2 × median p) against the code path it
replaced (`oob_forest_cate` below, kept here only to compare: one forest per repetition on every
pair, out-of-bag predictions — from trees that saw the same user's other pairs). Both read the same
DR scores in each replication.

Designs (every one simulated; the estimators never see the truth):

- `synthetic` — the forest stage alone. 2,000 pairs of 100 users (20 each); a pair's 8 modifiers are
  its user's centre (N(0, 1)) plus noise of SD 0.3, so a user's pairs are alike; DR scores
  ψ = 0.6 + b_user + N(0, 2.5²), b_user ~ N(0, 1): only users differ, nothing in the modifiers.
- `real_null` — the whole pipeline on real text. Whole ShareGPT conversations (a conversation is the
  user; only those with ≥ 10 turn-pairs, so a user's prompts are many and alike) drawn at random up
  to `--n` pairs (3,000) each replication; model, treatment and empathy from the planted design's
  confounding (`causal.simulate`); attachment = 4 + 0.4 × (the planted design's latent baseline
  − 3 + treated × (0.6 + b_user)), b_user ~ N(0, 1), kept continuous and scaled by 0.4 so that it
  never leaves 1..7 (clipping would itself make the effect depend on the prompt; the test's
  t-statistics do not depend on the scale). Cross-fitted nuisances, DR scores, trimming: as the
  estimate does them (`Fit`).
- `real_power` — as `real_null` on `--n-power` pairs (6,000), plus the planted design's modifier
  heterogeneity: effect 0.6 + 0.3 × gpt-4 + 0.25 × tanh(personal score) + b_user.

Reported per design and code path: the share of replications whose calibration test rejects at 5 %
(with a Wilson 95 % interval), the median p, and (null designs) how often the GATES intervals of the
lowest and highest CATE quintiles miss the true average effect 0.6. Every replication is appended to
`--out` (JSON lines) as it finishes; `--summarise FILE` prints the table of a finished or partial run.

Usage: nice -n 10 .venv/bin/python bench/hte_level.py --design synthetic,real_null,real_power --reps 100 --out hte.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # before numpy loads BLAS: one thread, the cores are shared

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from estimator_coverage import wilson  # noqa: E402  (a sibling: bench/ is this script's folder)

from empathy_study.causal import _backend  # noqa: E402
from empathy_study.causal._hte import Calibration, blp_test, forest_cate, forest_sample, gates  # noqa: E402

TRUE_AVERAGE = 0.6
PATHS = ("new", "old")


# --- the code path before user-honest cross-fitting, kept only to compare against -------------------------------

def oob_forest_cate(modifiers: np.ndarray, scores: np.ndarray, clusters: np.ndarray, seed: int, repeats: int = 5,
                    trees: int = 400, max_pairs: int | None = None, intervals: bool = True) -> dict:
    """The estimate's forest stage as it was: `repeats` forests on the (capped) sample, each one's BLP and
    GATES on its out-of-bag predictions (median; p = 2 × median p; median of 95 % GATES intervals); forest
    0 predicts a CATE and (with `intervals`) econml's 95 % interval for every unit."""
    sample = forest_sample(clusters, max_pairs, seed)
    fit_clusters = np.unique(clusters[sample], return_inverse=True)[1]
    runs = _backend.run(_oob_run, range(repeats), modifiers=modifiers[sample], scores=scores[sample],
                        clusters=fit_clusters, seed=seed, trees=trees)
    forest = runs[0]["forest"]
    blocks = [modifiers[start:start + 20_000] for start in range(0, len(scores), 20_000)]
    cate = np.concatenate([np.asarray(forest.predict(rows)).ravel() for rows in blocks])
    if intervals:
        for rows in blocks:
            forest.predict_interval(rows, alpha=0.05)
    tests = [run["calibration"] for run in runs]
    median = {f: float(np.median([getattr(t, f) for t in tests]))
              for f in ("beta_mean", "beta_mean_se", "beta_het", "beta_het_se", "p_value")}
    median["p_value"] = min(1.0, 2 * median["p_value"]) if repeats > 1 else median["p_value"]
    median_gates = []
    for g in range(len(runs[0]["gates"])):
        cells = [run["gates"][g] for run in runs if len(run["gates"]) > g]
        median_gates.append({"group": cells[0]["group"], "estimate": float(np.median([c["estimate"] for c in cells])),
                             "ci": [float(np.median([c["ci"][0] for c in cells])),
                                    float(np.median([c["ci"][1] for c in cells]))]})
    return {"cate": cate, "calibration": Calibration(**median, repeats=repeats), "gates": median_gates}


def _oob_run(r: int, modifiers: np.ndarray, scores: np.ndarray, clusters: np.ndarray, seed: int, trees: int) -> dict:
    from econml.grf import RegressionForest

    forest = RegressionForest(n_estimators=trees, min_samples_leaf=20, max_samples=0.45, honest=True,
                              inference=True, random_state=seed + 7_919 * r, n_jobs=1)
    forest.fit(modifiers, scores)
    oob = np.asarray(forest.oob_predict(modifiers)).ravel()
    usable = np.isfinite(oob)
    return {"calibration": blp_test(scores[usable], oob[usable], clusters[usable]),
            "gates": gates(scores[usable], oob[usable], clusters[usable]), "forest": forest if r == 0 else None}


# --- designs -------------------------------------------------------------------------------------------------------

def synthetic(rep: int, users: int = 100, per_user: int = 20, dims: int = 8, user_sd: float = 1.0,
              noise: float = 2.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(modifiers, DR scores, users) of the `synthetic` design: users differ, the modifiers carry nothing."""
    rng = np.random.default_rng([rep, 2024])
    user = np.repeat(np.arange(users), per_user)
    modifiers = rng.normal(size=(users, dims))[user] + 0.3 * rng.normal(size=(len(user), dims))
    scores = TRUE_AVERAGE + user_sd * rng.normal(size=users)[user] + rng.normal(0, noise, len(user))
    return modifiers, scores, user


class RealText:
    """The `real_*` designs: whole ShareGPT conversations with ≥ 10 turn-pairs, embedded once."""

    def __init__(self, min_pairs: int = 10):
        from real_text import real_turn_pairs  # bench/ is this script's folder, first on the path

        from empathy_study import causal
        from empathy_study.causal._semisynthetic import PERSONAL_ANCHORS, TASK_ANCHORS

        pairs = real_turn_pairs()
        sizes = pairs.groupby("user_id")["pair_id"].transform("size")
        self.pool = pairs[sizes >= min_pairs].reset_index(drop=True)
        self.embedder = causal.Embedder(embedding="fast")
        self.embedding = self.embedder.embed(self.pool["prompt"].astype(str).tolist())
        self.score = causal.personal_score(self.embedding, self.embedder.embed(PERSONAL_ANCHORS),
                                           self.embedder.embed(TASK_ANCHORS))

    def draw(self, rep: int, n: int, heterogeneous: bool, user_sd: float = 1.0):
        """(modifiers, DR scores, users, share clipped) of one replication, through the estimate's
        own data preparation, confounders, cross-fitted nuisances and trimming."""
        from empathy_study import causal
        from empathy_study.causal._data import prepare
        from empathy_study.causal._estimate import Fit
        from empathy_study.causal._features import build_confounders

        chosen = causal._semisynthetic.sample_pairs(self.pool, n, seed=rep, by_user=True)
        rows = pd.Series(np.arange(len(self.pool)), index=self.pool["pair_id"]).loc[chosen["pair_id"]].to_numpy()
        z = self.score[rows]
        scored, truth = causal.simulate(chosen, z, seed=10_000 + rep,
                                        planted=causal.PlantedEffect(gpt4_extra=0.0, personal_slope=0.0))
        rng = np.random.default_rng([rep, 99])
        users = pd.factorize(scored["user_id"])[0]
        gpt4 = (scored["model"] == "gpt-4").to_numpy(float)
        claude = (scored["model"] == "claude-2").to_numpy(float)
        night = (pd.to_datetime(scored["timestamp"]).dt.hour < 6).to_numpy(float)
        turn = pd.to_numeric(scored["turn_index"]).to_numpy(float)
        baseline = 0.9 * z + 0.4 * gpt4 - 0.3 * claude + 0.2 * np.log(turn) + 0.3 * night + rng.normal(0, 1, len(z))
        effect = TRUE_AVERAGE + user_sd * rng.normal(0, 1, users.max() + 1)[users]
        if heterogeneous:
            effect = effect + 0.3 * gpt4 + 0.25 * np.tanh(z)
        treated = truth["treated"].to_numpy()
        attachment = 4 + 0.4 * (baseline + treated * effect)
        clipped = float(np.mean((attachment < 1) | (attachment > 7)))
        scored["attachment"] = np.clip(attachment, 1, 7)
        config = causal.CausalConfig(embedding="fast", seed=rep)
        data = prepare(scored, causal.TreatmentRule(config.treat_high, config.treat_low))
        order = pd.Series(np.arange(len(scored)), index=scored["pair_id"]).loc[data.frame["pair_id"]].to_numpy()
        features = build_confounders(data.frame, self.embedding[rows][order], None, config.embedding_dims, 0,
                                     config.seed)
        fit = Fit(data, features, config, lambda step: None)
        kept = fit.kept
        clusters = np.unique(data.clusters[kept], return_inverse=True)[1]
        return fit.features.modifier_matrix[kept], fit.scores[kept], clusters, clipped


# --- one replication, the table --------------------------------------------------------------------------------

def replicate(design: str, rep: int, real: RealText | None, n: int) -> list[dict]:
    if design == "synthetic":
        modifiers, scores, clusters = synthetic(rep)
        truth, clipped = TRUE_AVERAGE, 0.0
    else:
        modifiers, scores, clusters, clipped = real.draw(rep, n, heterogeneous=design == "real_power")
        truth = 0.4 * TRUE_AVERAGE  # the population's average effect on the scaled attachment (b_user has mean 0)
    out = []
    for path in PATHS:
        began = time.process_time()
        if path == "new":
            forest = forest_cate(modifiers, scores, clusters, seed=rep)
            calibration, groups = forest.calibration, forest.gates
        else:
            old = oob_forest_cate(modifiers, scores, clusters, seed=rep, intervals=False)
            calibration, groups = old["calibration"], old["gates"]
        out.append({"design": design, "path": path, "rep": rep, "n": len(scores), "users": int(clusters.max() + 1),
                    **asdict(calibration), "truth": truth, "clipped": clipped,
                    "q1_missed": not groups[0]["ci"][0] <= truth <= groups[0]["ci"][1],
                    "q5_missed": not groups[-1]["ci"][0] <= truth <= groups[-1]["ci"][1],
                    "cpu_seconds": time.process_time() - began})
    return out


def summarise(frame: pd.DataFrame) -> str:
    lines = [f"{'design':11} {'path':4} {'reps':>4} {'pairs':>6} {'users':>5} {'rejects at 5 %':>14} "
             f"{'Wilson 95 %':>14} {'median p':>8} {'Q1 or Q5 GATES CI misses':>24} {'CPU s':>6}"]
    for (design, path), block in frame.groupby(["design", "path"], sort=False):
        rejected = int((block["p_value"] < 0.05).sum())
        low, high = wilson(rejected, len(block))
        missed = (block["q1_missed"] | block["q5_missed"]).mean() if design != "real_power" else float("nan")
        lines.append(f"{design:11} {path:4} {len(block):4d} {block['n'].median():6.0f} {block['users'].median():5.0f} "
                     f"{rejected / len(block):14.3f} {f'[{low:.3f}, {high:.3f}]':>14} {block['p_value'].median():8.3f} "
                     f"{missed:24.3f} {block['cpu_seconds'].median():6.1f}")
    clipped = frame["clipped"].max()
    lines.append(f"largest share of simulated attachment outside 1..7 (clipped): {clipped:.4f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", default="synthetic,real_null,real_power",
                        help="comma-separated: synthetic, real_null, real_power")
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--first", type=int, default=0, help="first replication (to resume or split a run)")
    parser.add_argument("--n", type=int, default=3_000, help="pairs per replication of real_null")
    parser.add_argument("--n-power", type=int, default=6_000, help="pairs per replication of real_power")
    parser.add_argument("--out", type=Path, default=None, help="append each replication's rows here (JSON lines)")
    parser.add_argument("--summarise", type=Path, default=None, help="only print the table of a results file")
    args = parser.parse_args()
    if args.summarise:
        print(summarise(pd.read_json(args.summarise, lines=True)))
        return
    warnings.filterwarnings("ignore")
    designs = args.design.split(",")
    unknown = set(designs) - {"synthetic", "real_null", "real_power"}
    if unknown:
        parser.error(f"unknown design(s): {', '.join(sorted(unknown))}")
    real = RealText() if any(d.startswith("real") for d in designs) else None
    records, started = [], time.perf_counter()
    for design in designs:
        for rep in range(args.first, args.first + args.reps):
            rows = replicate(design, rep, real, args.n_power if design == "real_power" else args.n)
            records.extend(rows)
            if args.out:
                with args.out.open("a") as handle:
                    handle.writelines(json.dumps(r) + "\n" for r in rows)
            print(f"{design} {rep + 1 - args.first}/{args.reps}: p new {rows[0]['p_value']:.3f}, old "
                  f"{rows[1]['p_value']:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
    print(summarise(pd.DataFrame(records)))


if __name__ == "__main__":
    main()
