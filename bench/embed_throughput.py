"""Prompt embeddings: fp32 PyTorch MiniLM, its int8 ONNX export (the default) and the static model.

The three `[causal] embedding` choices side by side, on real ShareGPT prompts (the bundled corpus,
every English turn-pair), the fp32 PyTorch model (`minilm-torch`) as the reference:

1. Throughput through `causal.Embedder.embed` (hashing and the cache write included; each round
   starts from an empty cache so everything is embedded): prompts per second, median of `--rounds`
   rounds, interleaved (round r runs every model once, in an order that rotates), so the three see
   the same load; the ratio to fp32 PyTorch is the median of the rounds' ratios. PyTorch and the
   ONNX model embed the same `--minilm-n` prompts, the static model `--fast-n`.
2. Fidelity on `--fidelity-n` distinct prompts: Spearman rank correlation between each model's and
   fp32 PyTorch MiniLM's pairwise cosine distances (every pair of prompts), and how many of each
   prompt's 10 nearest neighbours under fp32 MiniLM are among its 10 nearest under the other model
   (what matching relies on).
3. Planted-effect recovery through the study library (`study.estimate`), the same planted study
   estimated with each embedding: the scores are planted through fp32 PyTorch MiniLM's reading of
   the prompts (the reference), `--recovery-n` pairs, seed 0.

The ONNX and static models are built on first use from the packaged MiniLM (nothing downloaded)
and cached. The machine's load is printed before and after: timings here are shared-machine timings.
Usage: nice .venv/bin/python bench/embed_throughput.py [--rounds 3] [--parts throughput,fidelity,recovery]
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
from empathy_study.causal._embeddings import REFERENCE  # noqa: E402

EMBEDDINGS = ("minilm-torch", "minilm", "fast")


def throughput(texts: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    """Prompts per second of each embedding in each round, every round from an empty cache (models
    loaded beforehand), the rounds interleaved with a rotating order."""
    models = {e: causal.Embedder(embedding=e)._load_model() for e in texts}
    rates: dict[str, list[float]] = {e: [] for e in texts}
    order = list(texts)
    for r in range(rounds):
        for embedding in order[r % len(order):] + order[:r % len(order)]:
            with tempfile.TemporaryDirectory() as tmp:
                embedder = causal.Embedder(causal.EmbeddingCache(Path(tmp)), embedding=embedding)
                embedder._model = models[embedding]
                start = time.perf_counter()
                embedder.embed(texts[embedding])
                rates[embedding].append(len(texts[embedding]) / (time.perf_counter() - start))
    return rates


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


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
    """One planted study (planted through fp32 MiniLM), estimated through study.estimate with each embedding."""
    scored, truth = causal.semisynthetic_study(pairs, n, seed=seed, embedder=causal.Embedder(embedding=REFERENCE))
    rule = causal.TreatmentRule()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scored_pairs.parquet"
        scored.to_parquet(path)
        for embedding in EMBEDDINGS:
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
    parser.add_argument("--minilm-n", type=int, default=512, help="prompts per round, fp32 PyTorch and ONNX MiniLM")
    parser.add_argument("--fast-n", type=int, default=20_000, help="prompts per fast-model round")
    parser.add_argument("--fidelity-n", type=int, default=3_000, help="distinct prompts in the fidelity check")
    parser.add_argument("--recovery-n", type=int, default=3_000, help="pairs in the planted study")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="throughput,fidelity,recovery", help="which measurements to run")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    pairs = real_turn_pairs()
    prompts = pairs["prompt"].astype(str).drop_duplicates().sample(frac=1.0, random_state=args.seed).tolist()
    print(f"{len(pairs):,} real turn-pairs, {len(prompts):,} distinct prompts; load average {load()}")

    if "throughput" in parts:
        report_throughput(prompts, args)
    if "fidelity" in parts:
        report_fidelity(prompts, args)
    if "recovery" in parts:
        report_recovery(pairs, args)
    print(f"load average at the end: {load()}")


def report_throughput(prompts: list[str], args) -> None:
    texts = {"minilm-torch": prompts[:args.minilm_n], "minilm": prompts[:args.minilm_n], "fast": prompts[:args.fast_n]}
    rates = throughput(texts, args.rounds)
    reference = rates[REFERENCE]
    print(f"throughput (median of {args.rounds} interleaved rounds, empty cache each round; load {load()}):")
    for embedding in EMBEDDINGS:
        median = statistics.median(rates[embedding])
        ratio = statistics.median(r / ref for r, ref in zip(rates[embedding], reference))
        print(f"  {embedding:12s} {causal.Embedder(embedding=embedding).model_name:28s} {median:8,.0f} prompts/s on "
              f"{len(texts[embedding]):,} prompts, {ratio:6.1f}x fp32  (rounds: "
              f"{', '.join(f'{r:,.0f}' for r in rates[embedding])}); 144,000 prompts ≈ {144_000 / median / 60:,.1f} min")


def report_fidelity(prompts: list[str], args) -> None:
    sample = prompts[:args.fidelity_n]
    reference = causal.Embedder(embedding=REFERENCE).embed(sample)  # the user's cache: only new prompts embedded
    for embedding in EMBEDDINGS[1:]:
        figures = fidelity(reference, causal.Embedder(embedding=embedding).embed(sample))
        print(f"fidelity of {embedding} to fp32 MiniLM on {len(sample):,} distinct prompts ({figures['pairs']:,} "
              f"pairs): Spearman ρ of cosine distances {figures['spearman']:.3f}; 10-nearest-neighbour overlap "
              f"{figures['knn_overlap']:.3f}")


def report_recovery(pairs: pd.DataFrame, args) -> None:
    print(f"planted-effect recovery, {args.recovery_n:,} pairs (scores planted through fp32 MiniLM), study.estimate:")
    for row in recovery(pairs, args.recovery_n, args.seed):
        print(f"  {row['embedding']:12s} {row['method']:22s} {row['estimand']:12s} {row['estimate']:+.3f} "
              f"[{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]   truth {row['truth']:+.3f}   "
              f"({row['seconds']:.0f} s for the whole estimate)")


if __name__ == "__main__":
    main()
