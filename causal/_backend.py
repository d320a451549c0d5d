"""Where the estimate's independent pieces run: on this machine (the default: local worker processes,
one per core), or as Ray tasks on whatever cluster `ray.init(address=…)` reaches (`[causal] backend = "ray"`).

The pieces are the cross-fitting folds (`_nuisance.crossfit`, `_gold.gold_nuisances`), the forests
of the heterogeneity test and their predictions (`_hte.forest_cate`). Each is a module-level function of one item plus shared
arrays; `run(function, items, **shared)` maps it over the items with the backend in effect. Every
backend calls the same function on the same item with the same seed, so the results are the
same numbers whatever the backend or the number of workers; the backend only decides where they are
computed. Large shared arrays are shipped once per call, not once per piece: joblib memory-maps them
for the local workers, Ray puts them into its object store (`ray.put`).

The backend in effect is set for a block with `using(backend)`, like joblib's `parallel_config`:
the estimate sets it once, so the refuters' refits and every other caller of `crossfit` use it
without being told. A piece that itself calls `run` inside a worker runs its items one after
another there (the default backend of a fresh process is one worker). Ray is imported only when a
Ray backend is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from empathy_study.shared import usable_cores

from ._errors import CausalError


@dataclass(frozen=True)
class LocalBackend:
    """Every piece on this machine: on `workers` local processes (joblib's loky pool, kept between calls),
    or in this process one after another when there is one worker or one piece."""

    workers: int = 1
    name = "local"

    def map(self, function: Callable, items: Sequence, shared: dict) -> list:
        if self.workers <= 1 or len(items) <= 1:
            return [function(item, **shared) for item in items]
        from joblib import Parallel, delayed

        # Results in the order of the items; each worker limits its own BLAS threads to its share of the cores.
        return Parallel(n_jobs=min(self.workers, len(items)), backend="loky")(
            delayed(function)(item, **shared) for item in items)


@dataclass
class RayBackend:
    """Every piece a Ray task (one CPU each) on the cluster at `address` (None: RAY_ADDRESS, else a
    Ray started on this machine for the run and shut down after it)."""

    address: str | None = None
    name = "ray"

    def __post_init__(self):
        self._started = False
        self._remotes: dict[Callable, object] = {}

    def start(self) -> None:
        try:
            import ray
        except ImportError as exc:
            raise CausalError("backend 'ray' needs Ray: pip install 'empathy-study[ray]'") from exc
        if ray.is_initialized():  # the caller's own Ray (a test, a notebook): use it, leave it running
            return
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level="WARNING", configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise CausalError(f"cannot reach the Ray cluster at {address!r}: {exc}") from exc
        self._started = True

    def stop(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def map(self, function: Callable, items: Sequence, shared: dict) -> list:
        import ray

        if function not in self._remotes:
            self._remotes[function] = ray.remote(num_cpus=1)(function)
        remote = self._remotes[function]
        refs = {name: ray.put(value) for name, value in shared.items()}  # once, not once per task
        return ray.get([remote.remote(item, **refs) for item in items])


LOCAL = LocalBackend()  # one worker: this process
_current: ContextVar[LocalBackend | RayBackend] = ContextVar("backend", default=LOCAL)


def make(name: str, address: str | None = None, workers: int = 1) -> LocalBackend | RayBackend:
    """The backend `[causal] backend` names; `workers` local processes (0: one per usable core)."""
    if name == "local":
        return LocalBackend(workers or usable_cores())
    if name == "ray":
        return RayBackend(address)
    raise CausalError(f"unknown backend {name!r}: use 'local' or 'ray'")


@contextmanager
def using(backend: LocalBackend | RayBackend) -> Iterator[LocalBackend | RayBackend]:
    """Run the block's parallel pieces on `backend` (started on entry, a Ray it started stopped on exit)."""
    if isinstance(backend, RayBackend):
        backend.start()
    token = _current.set(backend)
    try:
        yield backend
    finally:
        _current.reset(token)
        if isinstance(backend, RayBackend):
            backend.stop()


def current() -> LocalBackend | RayBackend:
    return _current.get()


def run(function: Callable, items: Sequence, **shared) -> list:
    """[function(item, **shared) for item in items], on the backend in effect."""
    return current().map(function, list(items), shared)
