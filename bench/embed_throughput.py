"""Prompt embeddings at corpus scale: the fast static model against all-MiniLM-L6-v2.

Three measurements on real ShareGPT prompts (the bundled corpus, every English turn-pair):

1. Throughput through `causal.Embedder.embed` (hashing and the cache write included; each round
   starts from an empty cache so everything is embedded): prompts per second, median of `--rounds`
   rounds, for MiniLM on `--minilm-n` prompts and the fast model on `--fast-n` prompts; the ratio.
2. Fidelity on `--fidelity-n` distinct prompts: Spearman rank correlation between the two models'
   pairwise cosine distances (every pair of prompts), and how many of each prompt's 10 nearest
   neighbours under MiniLM are among its 10 nearest under the fast model (what matching relies on).
3. Planted-effect recovery through the study library (`study.estimate`), the same planted study
   estimated once with each embedding: the scores are planted through MiniLM's reading of the
   prompts (so MiniLM is the reference, not the fast model), `--recovery-n` pairs, seed 0.

The fast model is built on first use from the packaged MiniLM (nothing downloaded) and cached.
Usage: nice .venv/bin/python bench/embed_throughput.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from real_text import real_turn_pairs  # noqa: E402  (bench/ is this script's folder, first on the path)

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from empathy_study import causal, study  # noqa: E402


def throughput(embedding: str, texts: list[str], rounds: int) -> list[float]:
    """Prompts per second of each round, every round from an empty cache (the model loaded beforehand)."""
    model = causal.Embedder(embedding=embedding)._load_model()
    rates = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            embedder = causal.Embedder(causal.EmbeddingCache(Path(tmp)), embedding=embedding)
            embedder._model = model
            start = time.perf_counter()
            embedder.embed(texts)
            rates.append(len(texts) / (time.perf_counter() - start))
    return rates


def fidelity(reference: np.ndarray, fast: np.ndarray, k: int = 10) -> dict:
    """Spearman ρ of all pairwise cosine distances, and the mean overlap of the k nearest neighbours."""
    upper = np.triu_indices(len(reference), 1)
    sim_ref, sim_fast = reference @ reference.T, fast @ fast.T
    rho = stats.spearmanr(1 - sim_ref[upper], 1 - sim_fast[upper]).statistic
    np.fill_diagonal(sim_ref, -np.inf)
    np.fill_diagonal(sim_fast, -np.inf)
    near_ref = np.argpartition(-sim_ref, k, axis=1)[:, :k]
    near_fast = np.argpartition(-sim_fast, k, axis=1)[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(near_ref, near_fast)])
    return {"spearman": float(rho), "knn_overlap": float(overlap), "pairs": len(upper[0])}


def recovery(pairs: pd.DataFrame, n: int, seed: int) -> list[dict]:
    """One planted study (planted through MiniLM), estimated through study.estimate with each embedding."""
    scored, truth = causal.semisynthetic_study(pairs, n, seed=seed, embedder=causal.Embedder())
    rule = causal.TreatmentRule()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scored_pairs.parquet"
        scored.to_parquet(path)
        for embedding in ("minilm", "fast"):
            config = causal.CausalConfig(embedding=embedding, seed=seed, bootstrap=200)
            start = time.perf_counter()
            result = study.estimate(path, Path(tmp) / embedding, config)
            seconds = time.perf_counter() - start
            for row in result.rows:
                if row.method not in ("dr", "matching_optimal_bc") or not np.isfinite(row.estimate):
                    continue
                ids = causal.target_pairs(row, result, scored, rule, truth)
                rows.append({"embedding": embedding, "method": row.method, "estimand": row.estimand,
                             "estimate": row.estimate, "ci": (row.ci_low, row.ci_high), "seconds": seconds,
                             "truth": causal.true_effects(truth, ids) if ids is not None else float("nan")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--minilm-n", type=int, default=512, help="prompts per MiniLM round")
    parser.add_argument("--fast-n", type=int, default=20_000, help="prompts per fast-model round")
    parser.add_argument("--fidelity-n", type=int, default=3_000, help="distinct prompts in the fidelity check")
    parser.add_argument("--recovery-n", type=int, default=3_000, help="pairs in the planted study")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="throughput,fidelity,recovery", help="which measurements to run")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    pairs = real_turn_pairs()
    prompts = pairs["prompt"].astype(str).drop_duplicates().sample(frac=1.0, random_state=args.seed).tolist()
    print(f"{len(pairs):,} real turn-pairs, {len(prompts):,} distinct prompts")

    if "throughput" in parts:
        report_throughput(prompts, args)
    if "fidelity" in parts:
        report_fidelity(prompts, args)
    if "recovery" in parts:
        report_recovery(pairs, args)


def report_throughput(prompts: list[str], args) -> None:
    fast_rates = throughput("fast", prompts[:args.fast_n], args.rounds)
    minilm_rates = throughput("minilm", prompts[:args.minilm_n], args.rounds)
    fast, slow = statistics.median(fast_rates), statistics.median(minilm_rates)
    print(f"throughput (median of {args.rounds} rounds, empty cache each round):")
    print(f"  minilm: {slow:,.0f} prompts/s on {args.minilm_n:,} prompts  (rounds: "
          f"{', '.join(f'{r:,.0f}' for r in minilm_rates)})")
    print(f"  fast  : {fast:,.0f} prompts/s on {args.fast_n:,} prompts  (rounds: "
          f"{', '.join(f'{r:,.0f}' for r in fast_rates)})")
    print(f"  ratio fast / minilm: {fast / slow:,.0f}×; 144,000 prompts: minilm ≈ {144_000 / slow / 60:,.0f} min, "
          f"fast ≈ {144_000 / fast:,.0f} s")



def report_fidelity(prompts: list[str], args) -> None:
    sample = prompts[:args.fidelity_n]
    reference = causal.Embedder().embed(sample)  # the user's MiniLM cache: only new prompts are embedded
    figures = fidelity(reference, causal.Embedder(embedding="fast").embed(sample))
    print(f"fidelity on {len(sample):,} distinct prompts ({figures['pairs']:,} pairs): Spearman ρ of cosine "
          f"distances {figures['spearman']:.3f}; 10-nearest-neighbour overlap {figures['knn_overlap']:.3f}")



def report_recovery(pairs: pd.DataFrame, args) -> None:
    print(f"planted-effect recovery, {args.recovery_n:,} pairs (scores planted through MiniLM), study.estimate:")
    for row in recovery(pairs, args.recovery_n, args.seed):
        print(f"  {row['embedding']:6s} {row['method']:22s} {row['estimand']:12s} {row['estimate']:+.3f} "
              f"[{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]   truth {row['truth']:+.3f}   "
              f"({row['seconds']:.0f} s for the whole estimate)")


if __name__ == "__main__":
    main()
