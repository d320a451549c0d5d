"""The sharded build: a worker per input shard, then one global duplicate pass.

Each worker streams its shard through the same filters as the one-process build (`_build.py`)
into two part files of its own (turn-pairs, terminal pairs), and returns its funnel counts. Only
when every shard is done does the parent sum the counts and run the duplicate pass over all the
parts together, so a pair logged twice in two shards is caught exactly as in one process, and the
tables and funnel equal the one-process build's. A worker holds one batch of rows and one chunk
of pairs at a time: its memory does not grow with the shard.

Workers are local processes (a fresh one per shard, forked from a server that has the corpus
code loaded) or, with `[corpus] build_backend = "ray"`, Ray tasks on the cluster `ray.init()` reaches
(`RAY_ADDRESS`); on a cluster of several machines the inputs and the study directory must be on
storage every node sees. A failing shard stops the build with one line naming it; nothing is
written to the study directory until every shard has passed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from empathy_study.shared import usable_cores

from ._build import (
    TERMINAL_PAIRS_FILE,
    TURN_PAIRS_FILE,
    Tally,
    _PairSink,
    cut_and_filter,
    declare_stages,
    deduplicate,
    finish_funnel,
)
from ._classifier import OnProgress, apply_classifier, classifier_applies
from ._errors import CorpusError
from ._filters import CorpusConfig
from ._funnel import Funnel
from ._tables import TERMINAL_PAIR_SCHEMA, TURN_PAIR_SCHEMA
from ._wildchat import SOURCE, ShardPlan, read_wildchat

READ_STEP = "reading wildchat"
DEDUPLICATE_STEP = "global duplicate pass"
_LAST_WORD_SECONDS = 10.0


@dataclass
class ShardResult:
    """What one worker reports: its funnel counts and what it cost."""

    index: int
    file: str
    stages: dict[str, int]
    rejected: dict[str, int]
    tally: Tally
    pairs: int  # turn-pairs written to the part file, before the global duplicate pass
    terminal_pairs: int
    seconds: float
    cpu_seconds: float  # user + system time the worker process spent on the shard
    peak_rss_mb: float  # of the worker process (a fresh process per shard locally; Ray reuses its workers)


def _parts(work: Path, index: int) -> tuple[Path, Path]:
    return work / f"{index:05d}.{TURN_PAIRS_FILE}", work / f"{index:05d}.{TERMINAL_PAIRS_FILE}"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set size. Linux: VmHWM, which starts afresh at exec (getrusage's
    ru_maxrss keeps the peak of the process that forked us). A forked worker's figure counts the
    pages it still shares with the fork server (the loaded code), as RSS does."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def build_shard(plan: ShardPlan, index: int, config: CorpusConfig, work: Path,
                on_batch: Callable[[int], None] | None = None) -> ShardResult:
    """One worker's job: stream one shard through the filters into its two part files in `work`."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    funnel = Funnel(SOURCE)
    funnel.declare("records_read", "records")
    funnel.declare("conversations", "conversations")
    declare_stages(funnel)
    tally = Tally()
    pairs_path, terminal_path = _parts(work, index)
    pairs = _PairSink(pairs_path, TURN_PAIR_SCHEMA)
    terminals = _PairSink(terminal_path, TERMINAL_PAIR_SCHEMA)
    try:
        cut_and_filter(read_wildchat([plan], funnel, on_batch=on_batch), config, funnel, pairs, terminals, tally)
        pairs.close()
        terminals.close()
    except BaseException:
        pairs.discard()
        terminals.discard()
        raise
    tally.terminal_cut = terminals.cut
    return ShardResult(index, str(plan.file), dict(funnel.stages), dict(funnel.rejected), tally, pairs.written,
                       terminals.written, time.perf_counter() - start, _cpu_seconds() - cpu, peak_rss_mb())


def _one_line(exc: BaseException, plan: ShardPlan) -> str:
    """A worker's failure as one line that names its shard."""
    text = " / ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)  # a reader's bytes, shown safely
    if isinstance(exc, CorpusError) and str(plan.file) in text:
        return text
    return f"{plan.file}: the shard's worker failed: {type(exc).__name__}: {text}"


def build_shards(plans: list[ShardPlan], out_dir: Path, config: CorpusConfig, funnel: Funnel,
                 workers: int | None = None, on_progress: OnProgress | None = None) -> Funnel:
    """Build `turn_pairs.parquet` and `terminal_pairs.parquet` from WildChat shards, a worker per
    shard, then the global duplicate pass. `funnel` arrives from `plan_wildchat` (records and
    input declared). `workers` overrides `[corpus] workers` (0: one per usable core); never more
    workers than shards. The funnel gains a `build` note: backend, workers, and per shard its file,
    counts, wall and CPU seconds, and peak RSS."""
    wanted = config.workers if workers is None else workers
    if wanted < 0:
        raise CorpusError(f"--workers must be 0 (one per core) or more (got {wanted})")
    out_dir.mkdir(parents=True, exist_ok=True)
    declare_stages(funnel)
    report = _Reporter(plans, on_progress)
    work = Path(tempfile.mkdtemp(prefix=".corpus-shards-", dir=out_dir))
    try:
        if config.build_backend == "ray":
            results, workers = _run_ray(plans, config, work, wanted, report)
        else:
            workers = min(wanted or usable_cores(), len(plans))
            results = _run_local(plans, config, work, workers, report)
        tally = Tally()
        for result in results:
            for name, rows in result.stages.items():
                funnel.passed(name, rows)
            for reason, rows in result.rejected.items():
                funnel.reject(reason, rows)
            tally.add(result.tally)
        report.step(DEDUPLICATE_STEP, 0, 2)
        staged = work / TURN_PAIRS_FILE, work / TERMINAL_PAIRS_FILE
        kept = deduplicate([_parts(work, r.index)[0] for r in results], staged[0])
        report.step(DEDUPLICATE_STEP, 1, 2)
        terminal_kept = deduplicate([_parts(work, r.index)[1] for r in results], staged[1])
        report.step(DEDUPLICATE_STEP, 2, 2)
        finish_funnel(funnel, config, tally, kept, terminal_kept)
        if classifier_applies(config):
            apply_classifier(staged[0], funnel, on_progress)
        # Both tables move in only now, together: a failed build leaves the study's old tables alone.
        os.replace(staged[0], out_dir / TURN_PAIRS_FILE)
        os.replace(staged[1], out_dir / TERMINAL_PAIRS_FILE)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    funnel.notes["build"] = {
        **funnel.notes.get("build", {}),  # the classifier's run, when it ran
        "backend": config.build_backend,
        "workers": workers,
        "shards": [{"file": r.file, "records_read": r.stages["records_read"], "turn_pairs": r.pairs,
                    "terminal_pairs": r.terminal_pairs, "seconds": round(r.seconds, 2),
                    "cpu_seconds": round(r.cpu_seconds, 2), "peak_rss_mb": round(r.peak_rss_mb, 1)} for r in results],
    }
    return funnel


class _Reporter:
    """Rows read across all shards (as workers report batches) and shards finished."""

    def __init__(self, plans: list[ShardPlan], on_progress: OnProgress | None):
        self.total = sum(plan.rows for plan in plans)
        self.shards = len(plans)
        self.rows = 0
        self.finished = 0
        self.on_progress = on_progress

    def batch(self, rows: int) -> None:
        self.rows += rows
        self.read_step()

    def shard_done(self) -> None:
        self.finished += 1
        self.read_step()

    def read_step(self) -> None:
        if self.on_progress:
            self.on_progress(f"{READ_STEP} ({self.shards} shard{'s' if self.shards != 1 else ''})", self.rows,
                             self.total, {"shards_done": self.finished})

    def step(self, name: str, done: int, total: int) -> None:
        if self.on_progress:
            self.on_progress(name, done, total, {})


# --- local processes ----------------------------------------------------------------------------

def _run_local(plans: list[ShardPlan], config: CorpusConfig, work: Path, workers: int,
               report: _Reporter) -> list[ShardResult]:
    if workers == 1:  # in this process, one shard after another
        results = []
        for index, plan in enumerate(plans):
            try:
                results.append(build_shard(plan, index, config, work, on_batch=report.batch))
            except (CorpusError, OSError, pa.ArrowException) as exc:
                raise CorpusError(_one_line(exc, plan)) from exc
            report.shard_done()
        return results
    context = _context()
    messages = context.Queue()
    pending = deque(enumerate(plans))
    running: dict[int, mp.process.BaseProcess] = {}
    results: dict[int, ShardResult] = {}
    silent: dict[int, float] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                index, plan = pending.popleft()
                process = context.Process(target=_shard_process, args=(plan, index, config, work, messages),
                                          name=f"corpus-shard-{index}", daemon=True)
                process.start()
                running[index] = process
            try:
                kind, index, payload = messages.get(timeout=0.5)
            except queue.Empty:
                _check_alive(running, plans, silent)
                continue
            if kind == "rows":
                report.batch(payload)
            elif kind == "done":
                results[index] = payload
                running.pop(index).join()
                report.shard_done()
            else:
                raise CorpusError(payload)
    finally:
        for process in running.values():  # a failure or Ctrl-C: stop the other shards now
            process.kill()
        for process in running.values():
            process.join()
        messages.close()
        messages.cancel_join_thread()
    return [results[index] for index in range(len(plans))]


def _context():
    if "forkserver" in mp.get_all_start_methods():
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(["empathy_study.corpus._preload"])
        return context
    return mp.get_context("spawn")


def _shard_process(plan: ShardPlan, index: int, config: CorpusConfig, work: Path, messages) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops every worker
    try:
        result = build_shard(plan, index, config, work, on_batch=lambda rows: messages.put(("rows", index, rows)))
    except Exception as exc:
        messages.put(("error", index, _one_line(exc, plan)))
        return
    messages.put(("done", index, result))


def _check_alive(running: dict[int, mp.process.BaseProcess], plans: list[ShardPlan], silent: dict[int, float]) -> None:
    """A worker that ended without a word (killed, out of memory) fails its shard by name."""
    now = time.monotonic()
    for index, process in running.items():
        if process.exitcode is None:
            continue
        # An exit code 0 without a result yet: its last message may still be in the pipe; give it time.
        if process.exitcode == 0 and now - silent.setdefault(index, now) < _LAST_WORD_SECONDS:
            continue
        hint = " (killed: out of memory?)" if process.exitcode == -9 else ""
        raise CorpusError(f"{plans[index].file}: the shard's worker ended with exit code "
                          f"{process.exitcode} before reporting its result{hint}")


# --- Ray ------------------------------------------------------------------------------------------

def _run_ray(plans: list[ShardPlan], config: CorpusConfig, work: Path, wanted: int,
             report: _Reporter) -> tuple[list[ShardResult], int]:
    try:
        import ray
    except ImportError:
        raise CorpusError('[corpus] build_backend = "ray" needs Ray: pip install "empathy-study[ray]"') from None
    if not ray.is_initialized():
        ray.init(log_to_driver=False, include_dashboard=False)  # RAY_ADDRESS names a cluster; else a local one
    workers = min(wanted or max(1, int(ray.cluster_resources().get("CPU", 1))), len(plans))
    task = ray.remote(num_cpus=1, max_retries=0)(build_shard)
    pending = deque(enumerate(plans))
    running: dict = {}
    results: dict[int, ShardResult] = {}
    try:
        while pending or running:
            while pending and len(running) < workers:
                index, plan = pending.popleft()
                running[task.remote(plan, index, config, work)] = index
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                index = running.pop(ref)
                try:
                    results[index] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else exc
                    raise CorpusError(_one_line(cause, plans[index])) from None
                except ray.exceptions.RayError as exc:  # the worker died, the node was lost
                    raise CorpusError(_one_line(exc, plans[index])) from None
                report.batch(plans[index].rows)
                report.shard_done()
    finally:
        for ref in running:
            ray.cancel(ref, force=True)
    return [results[index] for index in range(len(plans))], workers
