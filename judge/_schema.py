"""What a judge must answer, and what the log records about every call."""

from __future__ import annotations

import functools
import warnings
from typing import Literal

from pydantic import BaseModel, Field, create_model

# An enum, not an int with bounds: grammar-constrained decoders honour enums but ignore min/max.
Score = Literal[1, 2, 3, 4, 5, 6, 7]
# What a logged judgment may hold: a level of its rubric — 1..7 for the study's scales, 0/1 for
# binary classification rubrics (the socio-emotional corpus pass).
Level = Literal[0, 1, 2, 3, 4, 5, 6, 7]
SCALE_LEVELS = (1, 2, 3, 4, 5, 6, 7)


class Judgment(BaseModel):
    rationale: str = Field(description="one sentence: why this level")
    score: Score


@functools.cache
def judgment_model(levels: tuple[int, ...] = SCALE_LEVELS) -> type[BaseModel]:
    """What a judge must answer for a rubric with these levels: `Judgment` for the 1–7 scales,
    and the same two fields with the score an enum of exactly `levels` otherwise (built once)."""
    if tuple(levels) == SCALE_LEVELS:
        return Judgment
    return create_model(f"Judgment{''.join(map(str, levels))}", __doc__=Judgment.__doc__,
                        rationale=(str, Field(description="one sentence: why this level")),
                        score=(Literal[tuple(levels)], ...))


# `construct` is the contract's column name; it shadows pydantic's deprecated BaseModel.construct.
warnings.filterwarnings("ignore", message='Field name "construct"', category=UserWarning)


class JudgmentRecord(BaseModel):
    """One line of the append-only judgment log: one call (or one failed attempt)."""

    pair_id: str
    construct: str
    judge: str
    model: str  # as configured
    model_returned: str | None  # as the provider reports it
    prompt_version: str
    sample_index: int
    temperature: float
    score: Level | None  # one of the rubric's levels (1..7, or 0/1 for a binary rubric)
    expected_score: float | None  # Σ p(s)·s over the level tokens, where logprobs were returned
    rationale: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    latency_ms: float | None
    error: str | None
    created_at: str
    run_id: str | None = None  # the run that made the call: its spec is in the runs file beside the log

    def cache_key(self) -> tuple:
        return cache_key(self.pair_id, self.construct, self.judge, self.model, self.prompt_version,
                         self.sample_index, self.temperature)


def cache_key(pair_id, construct, judge, model, prompt_version, sample_index, temperature) -> tuple:
    """What makes two calls the same call — not api_base, ports or timeouts."""
    return (pair_id, construct, judge, model, prompt_version, int(sample_index), float(temperature))
