"""Matching at scale: sparse optimal vs dense Hungarian at 9k pairs; sparse optimal alone at 144k.

Synthetic clustered unit vectors in 64 dimensions stand in for reduced prompt embeddings.
Reports total cost ratios (sparse / dense: ≥ 1, since the kNN graph can only restrict), time
ratios, and wall time and peak RSS at 144k pairs (72k treated × 72k controls; target < 60 s
including the neighbour search, < 4 GB). Usage: python bench/matching_scale.py [--large 144000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from empathy_study.causal._matching import cosine_edges, greedy, optimal  # noqa: E402


def clustered_units(n: int, dims: int, clusters: int, rng: np.random.Generator, spread: float = 0.15) -> np.ndarray:
    centres = rng.normal(size=(clusters, dims))
    x = centres[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, dims))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def objective(rows, dist, n_treated, caliper) -> float:
    return float(dist.sum() + caliper * (n_treated - len(rows)))


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=9_000, help="pairs in the dense-vs-sparse comparison")
    parser.add_argument("--large", type=int, default=144_000, help="pairs in the sparse-only run")
    parser.add_argument("--neighbours", type=int, default=30, help="the estimator's default")
    parser.add_argument("--caliper", type=float, default=0.5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    half = args.small // 2
    treated, control = np.split(clustered_units(2 * half, 64, 40, rng), 2)
    full, t_full = timed(cosine_edges, treated, control, args.caliper, half)
    knn, t_knn = timed(cosine_edges, treated, control, args.caliper, args.neighbours)
    dense, t_dense = timed(optimal, full, args.caliper, dense=True)
    sparse, t_sparse = timed(optimal, knn, args.caliper)  # by connected component, as the estimator runs it
    sparse_full, t_sparse_full = timed(optimal, full, args.caliper, dense=False)
    greedy_pairs, t_greedy = timed(greedy, knn)
    cost = {name: objective(r[0], r[2], half, args.caliper)
            for name, r in [("dense", dense), ("sparse", sparse), ("sparse_full", sparse_full), ("greedy", greedy_pairs)]}
    print(f"{args.small:,} pairs ({half:,} × {half:,}), caliper {args.caliper}, k = {args.neighbours}")
    print(f"  dense Hungarian : cost {cost['dense']:.2f}, {len(dense[0]):,} matched, {t_dense:.1f} s (+{t_full:.1f} s all distances)")
    print(f"  sparse kNN graph: cost {cost['sparse']:.2f}, {len(sparse[0]):,} matched, {t_sparse:.2f} s (+{t_knn:.1f} s kNN)")
    print(f"  sparse full graph: cost {cost['sparse_full']:.2f} (must equal dense), {t_sparse_full:.1f} s")
    print(f"  greedy on kNN   : cost {cost['greedy']:.2f}, {len(greedy_pairs[0]):,} matched, {t_greedy:.2f} s")
    print(f"  cost ratio sparse/dense {cost['sparse'] / cost['dense']:.4f}; greedy/dense {cost['greedy'] / cost['dense']:.4f}; "
          f"time ratio (kNN + sparse)/(distances + dense) {(t_knn + t_sparse) / (t_full + t_dense):.3f}")

    half = args.large // 2
    # Two shapes of prompt space: tight topics (the caliper graph falls apart into one component
    # per topic) and overlapping topics (one giant component: the sparse solver's hard case).
    for label, clusters, spread in [("clustered", 200, 0.15), ("overlapping", 20, 0.12)]:
        treated, control = np.split(clustered_units(2 * half, 64, clusters, rng, spread), 2)
        start = time.perf_counter()
        knn, t_knn = timed(cosine_edges, treated, control, args.caliper, args.neighbours)
        sparse, t_sparse = timed(optimal, knn, args.caliper)
        wall = time.perf_counter() - start
        print(f"\n{args.large:,} pairs ({half:,} × {half:,}), {label}: kNN {t_knn:.1f} s + sparse optimal {t_sparse:.1f} s "
              f"= {wall:.1f} s (target < 60 s); {len(sparse[0]):,} matched; peak RSS so far {peak_rss_mb():,.0f} MB "
              f"(target < 4,096)")
    print(f"A dense cost matrix alone would need {half * (2 * half) * 8 / 1e9:,.0f} GB.")


if __name__ == "__main__":
    main()
