"""One progress callback type for every stage: the CLI draws Rich bars from it, the TUI a worker's widgets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Step:
    """Where a long job stands: `done` of `total` (None while unknown) in the named step.

    `counters` carries running figures worth showing live, e.g. failures and spend of a judge run.
    """

    name: str
    done: int
    total: int | None = None
    counters: Mapping[str, float] = field(default_factory=dict)


Progress = Callable[[Step], None]


def quiet(step: Step) -> None:
    """The progress callback of a caller that shows none."""
