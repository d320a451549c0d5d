"""The whole `empathy estimate` at corpus scale: 144k semi-synthetic pairs through `study.estimate`.

The pairs are real ShareGPT turn-pairs (the bundled corpus, every English turn-pair, ~43k) recycled
to `--pairs`: copy k ≥ 1 of a pair gets new pair, conversation and user ids and the suffix
" (copy k)" on its prompt and previous turn, so every one of the 144k texts is embedded anew
rather than found in a cache. The scores are simulated (marked `semisynthetic`): a planted effect
with confounding through the prompt's meaning (`causal.simulate`, the planted design), read by a
simulated judge, with simulated human labels on a random audit sample (`--audit-rate`), so every
registered estimator runs, the judge-error correction included.

Timed: the estimate alone (reading the file, embedding with an empty cache, nuisances, every
estimator, the forest, writing the four outputs), each step from its first progress report to
the next step's; the last step includes writing the outputs. CPU seconds (every thread of this
process) stand beside wall seconds: on a shared machine they say what a step costs. Peak RSS is
the process's high-water mark (the preparation included). Target: < 5 min wall, < 6 GB peak.

Usage: nice .venv/bin/python bench/estimate_scale.py [--pairs 144000] [--embedding fast]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# bench/ holds a script named coverage.py: take this folder off the path, or numba's `import coverage`
# (through econml) finds that script instead of the coverage package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from empathy_study import causal, corpus, study  # noqa: E402
from empathy_study.causal._semisynthetic import PERSONAL_ANCHORS, TASK_ANCHORS, simulate  # noqa: E402
from empathy_study.shared import CACHE_VARIABLE, cache_dir  # noqa: E402


def real_turn_pairs() -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        funnel = corpus.Funnel("sharegpt")
        corpus.build_corpus(corpus.read_source("sharegpt", [], funnel), Path(tmp),
                            corpus.CorpusConfig(keep_transactional=True), funnel)
        return pd.read_parquet(Path(tmp) / corpus.TURN_PAIRS_FILE)


def recycle(pairs: pd.DataFrame, n: int) -> pd.DataFrame:
    """n pairs from the real ones, repeated as needed; copies get new ids and a marked text."""
    copies = []
    for k in range(int(np.ceil(n / len(pairs)))):
        copy = pairs.copy()
        if k:
            for column in ("pair_id", "conversation_id", "user_id"):
                copy[column] = copy[column].astype(str) + f"~{k}"
            copy["prompt"] = copy["prompt"].astype(str) + f" (copy {k})"
            has_prev = copy["prev_response"].notna() & (copy["prev_response"].astype(str) != "")
            copy.loc[has_prev, "prev_response"] = copy.loc[has_prev, "prev_response"].astype(str) + f" (copy {k})"
        copies.append(copy)
    return pd.concat(copies, ignore_index=True).iloc[:n].reset_index(drop=True)


class StepClock:
    """Wall and CPU seconds per progress step: from a step's first report to the next step's first report.

    CPU seconds (this process, every thread) say what a step costs whatever else the machine runs."""

    def __init__(self):
        self.starts: list[tuple[str, float, float]] = [
            ("reading and preparing the pairs", time.perf_counter(), time.process_time())]

    def __call__(self, step: study.Step) -> None:
        if step.name != self.starts[-1][0]:
            self.starts.append((step.name, time.perf_counter(), time.process_time()))
            _, wall, cpu = self.starts[0]
            print(f"  [{time.perf_counter() - wall:7.1f} s wall, {time.process_time() - cpu:7.1f} s CPU, "
                  f"{peak_rss_gb():.2f} GB peak] {step.name}", flush=True)  # a cut run still says how far it got

    def table(self) -> list[tuple[str, float, float]]:
        bounds = [(wall, cpu) for _, wall, cpu in self.starts[1:]] + [(time.perf_counter(), time.process_time())]
        return [(name, stop[0] - wall, stop[1] - cpu) for (name, wall, cpu), stop in zip(self.starts, bounds)]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=144_000)
    parser.add_argument("--embedding", choices=["fast", "minilm"], default="fast")
    parser.add_argument("--audit-rate", type=float, default=0.02, help="share of pairs with simulated human labels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    real = real_turn_pairs()
    pairs = recycle(real, args.pairs)
    # The planted confounding reads the real prompts' meaning (through the same embedding the estimate uses).
    planter = causal.Embedder(embedding=args.embedding)
    originals = pairs["prompt"].str.replace(r" \(copy \d+\)$", "", regex=True).tolist()
    score = causal.personal_score(planter.embed(originals), planter.embed(PERSONAL_ANCHORS),
                                  planter.embed(TASK_ANCHORS))
    scored, truth = simulate(pairs, score, args.seed)
    scored = causal.judge_labels(scored, truth, causal.JudgeNoise(), audit_rate=args.audit_rate, seed=args.seed)
    print(f"{len(real):,} real turn-pairs recycled to {len(scored):,} semi-synthetic pairs "
          f"({args.audit_rate:.0%} audited) in {time.perf_counter() - start:.0f} s", flush=True)

    models = cache_dir() / "models"
    with tempfile.TemporaryDirectory() as tmp:
        # An empty embedding cache (the estimate embeds all 144k texts), the user's built models kept.
        (Path(tmp) / "cache").mkdir()
        if models.exists():
            (Path(tmp) / "cache" / "models").symlink_to(models, target_is_directory=True)
        os.environ[CACHE_VARIABLE] = str(Path(tmp) / "cache")
        path = Path(tmp) / "scored_pairs.parquet"
        scored.to_parquet(path)
        config = causal.CausalConfig(embedding=args.embedding, seed=args.seed)
        clock = StepClock()
        began, began_cpu = time.perf_counter(), time.process_time()
        result = study.estimate(path, Path(tmp) / "estimates", config, clock)
        steps = clock.table()
        wall, cpu = time.perf_counter() - began, time.process_time() - began_cpu
        sizes = {p.name: p.stat().st_size for p in (Path(tmp) / "estimates").iterdir()}

    print(f"study.estimate on {len(scored):,} pairs, embedding {args.embedding!r} "
          f"({result.provenance['embeddings']['embedded_now']:,} texts embedded):")
    print(f"  {'wall s':>8s} {'CPU s':>8s}  step")
    for name, seconds, cpu_seconds in steps:
        print(f"  {seconds:8.1f} {cpu_seconds:8.1f}  {name}")
    print(f"  {wall:8.1f} {cpu:8.1f}  in all (target < 300 s wall); peak RSS {peak_rss_gb():.2f} GB (target < 6 GB); "
          f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  outputs: {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in sorted(sizes.items()))}")
    rule = causal.TreatmentRule()
    for row in result.rows:
        ids = causal.target_pairs(row, result, scored, rule, truth)
        truth_value = causal.true_effects(truth, ids) if ids is not None else float("nan")
        print(f"  {row.method:22s} {row.estimand:12s} {row.estimate:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
              f"   truth {truth_value:+.3f}")


if __name__ == "__main__":
    main()
