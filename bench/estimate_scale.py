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
the next step's; the last step includes writing the outputs. CPU seconds (this process and its
descendants — Ray's workers — read from /proc) stand beside wall seconds: on a shared machine they
say what a step costs. Peak memory is the PSS summed over that process tree, sampled every second
(a page shared by several processes, such as Ray's object store, counts once); this process's own
peak RSS is printed beside it. The set-up's frames (the real pairs, their copies, the texts) are freed
before the estimate starts: what is measured is what `empathy estimate` itself holds, plus this
script's pair ids, scores and truth. Target: < 5 min wall, < 6 GB peak.

`--backend both` (the default) runs the estimate twice on the same pairs: in this process
(`backend = "local"`), then with `backend = "ray"` on a Ray of `--workers` CPUs started here
(its start-up timed apart), and prints the local ÷ Ray ratio per step and whether the estimates
are identical. The forest's subsample cap is `[causal] hte_max_pairs` (`--hte-max-pairs`).

Usage: nice .venv/bin/python bench/estimate_scale.py [--pairs 144000] [--backend both] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from real_text import real_turn_pairs  # noqa: E402  (bench/ is this script's folder, first on the path)

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from empathy_study import causal, study  # noqa: E402
from empathy_study.causal._semisynthetic import PERSONAL_ANCHORS, TASK_ANCHORS, simulate  # noqa: E402
from empathy_study.shared import CACHE_VARIABLE, cache_dir  # noqa: E402


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


class Tree:
    """This process and its descendants (Ray's raylet and workers, when a Ray was started here), read
    from /proc (Linux): CPU seconds of the live ones, and their summed proportional set size (PSS: a
    page shared by several processes, such as Ray's object store, is counted once in the sum).
    A thread samples the PSS sum every second; `peak_gb` is its high-water mark since `reset`."""

    def __init__(self):
        self.peak = 0.0
        self.tick = os.sysconf("SC_CLK_TCK")
        threading.Thread(target=self._sample, daemon=True).start()

    def pids(self) -> list[int]:
        parents = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        tree, frontier = [os.getpid()], [os.getpid()]
        while frontier:
            frontier = [pid for pid, parent in parents.items() if parent in frontier]
            tree += frontier
        return tree

    def cpu(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / self.tick  # utime + stime
            except (OSError, IndexError, ValueError):
                continue
        return total

    def pss_gb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except (OSError, IndexError, ValueError):
                continue
        return total / 1024**2

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.pss_gb())
            time.sleep(1.0)

    def reset(self) -> None:
        self.peak = self.pss_gb()


class StepClock:
    """Wall and CPU seconds per progress step: from a step's first report to the next step's first report.

    CPU seconds (this process and its descendants: Ray's workers included) say what a step costs
    whatever else the machine runs."""

    def __init__(self, tree: Tree):
        self.tree = tree
        self.starts: list[tuple[str, float, float]] = [
            ("reading and preparing the pairs", time.perf_counter(), tree.cpu())]

    def __call__(self, step: study.Step) -> None:
        if step.name != self.starts[-1][0]:
            self.starts.append((step.name, time.perf_counter(), self.tree.cpu()))
            _, wall, cpu = self.starts[0]
            print(f"  [{time.perf_counter() - wall:7.1f} s wall, {self.tree.cpu() - cpu:7.1f} s CPU, "
                  f"{self.tree.peak:.2f} GB peak] {step.name}", flush=True)  # a cut run still says how far it got

    def table(self) -> list[tuple[str, float, float]]:
        bounds = [(wall, cpu) for _, wall, cpu in self.starts[1:]] + [(time.perf_counter(), self.tree.cpu())]
        return [(name, stop[0] - wall, stop[1] - cpu) for (name, wall, cpu), stop in zip(self.starts, bounds)]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run(path: Path, config: causal.CausalConfig, tree: Tree, models: Path) -> dict:
    """`study.estimate` on the scored pairs at `path`, from an empty embedding cache (the built `models`
    linked in); its steps, time, memory and rows."""
    with tempfile.TemporaryDirectory() as tmp:
        # An empty embedding cache (the estimate embeds all 144k texts), the user's built models kept.
        (Path(tmp) / "cache").mkdir()
        if models.exists():
            (Path(tmp) / "cache" / "models").symlink_to(models, target_is_directory=True)
        os.environ[CACHE_VARIABLE] = str(Path(tmp) / "cache")
        tree.reset()
        clock = StepClock(tree)
        began, began_cpu = time.perf_counter(), tree.cpu()
        result = study.estimate(path, Path(tmp) / "estimates", config, clock)
        steps = clock.table()
        wall, cpu = time.perf_counter() - began, tree.cpu() - began_cpu
        sizes = {p.name: p.stat().st_size for p in (Path(tmp) / "estimates").iterdir()}
    return {"result": result, "steps": steps, "wall": wall, "cpu": cpu, "peak_pss": tree.peak,
            "peak_rss_self": peak_rss_gb(), "sizes": sizes}


def show(name: str, out: dict, scored: pd.DataFrame, truth: pd.DataFrame) -> None:
    result = out["result"]
    print(f"\n{name}: study.estimate on {len(scored):,} pairs, embedding {result.provenance['config']['embedding']!r} "
          f"({result.provenance['embeddings']['embedded_now']:,} texts embedded); forest "
          f"{result.hte.get('forest_sample', 'not fitted')}:")
    print(f"  {'wall s':>8s} {'CPU s':>8s}  step")
    for step, seconds, cpu_seconds in out["steps"]:
        print(f"  {seconds:8.1f} {cpu_seconds:8.1f}  {step}")
    print(f"  {out['wall']:8.1f} {out['cpu']:8.1f}  in all (target < 300 s wall); peak memory {out['peak_pss']:.2f} GB "
          f"(PSS summed over this process and its descendants; this process's own peak RSS so far "
          f"{out['peak_rss_self']:.2f} GB; target < 6 GB); load average at the end {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(f"  outputs: {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in sorted(out['sizes'].items()))}")
    rule = causal.TreatmentRule()
    for row in result.rows:
        ids = causal.target_pairs(row, result, scored, rule, truth)
        truth_value = causal.true_effects(truth, ids) if ids is not None else float("nan")
        print(f"  {row.method:22s} {row.estimand:12s} {row.estimate:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
              f"   truth {truth_value:+.3f}")


def semisynthetic_pairs(n: int, embedding: str, audit_rate: float, seed: int,
                        path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scored pairs written to `path`; returned without their texts (pair ids and scores), with the
    truth. The real pairs, their copies and the planting embedder are gone when this returns, so the
    memory measured is the estimate's, not this script's set-up."""
    real = real_turn_pairs()
    pairs = recycle(real, n)
    # The planted confounding reads the real prompts' meaning (through the same embedding the estimate uses).
    planter = causal.Embedder(embedding=embedding)
    originals = pairs["prompt"].str.replace(r" \(copy \d+\)$", "", regex=True).tolist()
    score = causal.personal_score(planter.embed(originals), planter.embed(PERSONAL_ANCHORS),
                                  planter.embed(TASK_ANCHORS))
    scored, truth = simulate(pairs, score, seed)
    scored = causal.judge_labels(scored, truth, causal.JudgeNoise(), audit_rate=audit_rate, seed=seed)
    scored.to_parquet(path)
    print(f"{len(real):,} real turn-pairs recycled to {len(scored):,} semi-synthetic pairs ({audit_rate:.0%} audited)",
          end=" ", flush=True)
    return scored[["pair_id", "empathy", "attachment"]].copy(), truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=144_000)
    parser.add_argument("--embedding", choices=["fast", "minilm"], default="fast")
    parser.add_argument("--audit-rate", type=float, default=0.02, help="share of pairs with simulated human labels")
    parser.add_argument("--backend", choices=["local", "ray", "both"], default="both",
                        help="run the estimate in this process, on a local Ray of --workers CPUs, or both in turn")
    parser.add_argument("--workers", type=int, default=2,
                        help="local worker processes ([causal] workers; 1: all in this process) and CPUs of the "
                             "local Ray (one task each)")
    parser.add_argument("--hte-max-pairs", type=int, default=causal.CausalConfig().hte_max_pairs,
                        help="the forest's subsample cap ([causal] hte_max_pairs; 0: none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    files = tempfile.TemporaryDirectory()
    path = Path(files.name) / "scored_pairs.parquet"
    scored, truth = semisynthetic_pairs(args.pairs, args.embedding, args.audit_rate, args.seed, path)
    print(f"in {time.perf_counter() - start:.0f} s", flush=True)

    tree = Tree()
    models = cache_dir() / "models"  # the user's built models, before a run points the cache elsewhere
    config = causal.CausalConfig(embedding=args.embedding, seed=args.seed, hte_max_pairs=args.hte_max_pairs or None,
                                 workers=args.workers)
    runs = {}
    if args.backend in ("local", "both"):
        print(f"\nlocal ({args.workers} worker process{'es' if args.workers != 1 else ''}):", flush=True)
        runs["local"] = run(path, config, tree, models)
        show("local", runs["local"], scored, truth)
    if args.backend in ("ray", "both"):
        import ray

        began = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - began
        print(f"\nRay {ray.__version__}: a local Ray of {args.workers} CPUs started in {startup:.1f} s "
              "(not counted below)", flush=True)
        try:
            runs["ray"] = run(path, config.model_copy(update={"backend": "ray"}), tree, models)
        finally:
            ray.shutdown()
        show(f"Ray ({args.workers} workers)", runs["ray"], scored, truth)
    if len(runs) == 2:
        local, remote = runs["local"], runs["ray"]
        print(f"\nlocal ÷ Ray wall time per step (> 1: Ray faster); Ray start-up {startup:.1f} s not included")
        print(f"  {'local s':>8s} {'Ray s':>8s} {'ratio':>6s}  step")
        for (step, a, _), (_, b, _) in zip(local["steps"], remote["steps"]):
            print(f"  {a:8.1f} {b:8.1f} {a / b:6.2f}  {step}")
        print(f"  {local['wall']:8.1f} {remote['wall']:8.1f} {local['wall'] / remote['wall']:6.2f}  in all; "
              f"peak memory {local['peak_pss']:.2f} / {remote['peak_pss']:.2f} GB")
        same = all(a.estimate == b.estimate and a.se == b.se for a, b in zip(local["result"].rows,
                                                                                remote["result"].rows))
        gap = max(abs(a.estimate - b.estimate) for a, b in zip(local["result"].rows, remote["result"].rows)
                  if np.isfinite(a.estimate))
        print(f"  estimates {'identical' if same else f'differ by at most {gap:.2e}'} between the two backends")


if __name__ == "__main__":
    main()
