"""The negative-control outcome: the attachment expressed in the *prompt*.

The prompt was written before the response, so empathy in the response cannot have caused it. The
same doubly robust estimator with the prompt's attachment as the outcome must therefore find no
effect. If it does, something that drives both empathy and attachment — and shows in how attached
the prompt already sounds — is not captured by the confounders: the main estimate carries that
confounding too. The prompt's own meaning is among the confounders (its embedding), so the check
bites where the embedding and the nuisance models miss the prompt's attachment, and wherever a
hidden trait of the user moves the prompt's attachment, the treatment and the outcome together.

The column is `prompt_attachment` (1–7, scored by the judges with the `prompt_attachment` rubric,
which shows the previous exchange and the prompt, never the response or the reply; opt in with
`[judge] negative_control = true`). It registers as a refuter and runs, on the primary estimate and
on `dr`, whenever the scored pairs carry the column. On the primary the judges' prompt attachment
stands in for the human one too (the audit has no human label of it): the correction then corrects
the treatment only.
"""

from __future__ import annotations

import numpy as np

from ._refute import KINDS, REFUTERS, Alteration, Estimate, Problem, _verdict

COLUMN = "prompt_attachment"
NAME = "negative_control_outcome"
MIN_PAIRS = 40  # scored pairs below which the check is not run


def negative_control_outcome(problem: Problem, original: Estimate) -> dict:
    """DR effect of the treatment on the prompt's attachment: passed when its interval covers 0."""
    y = problem.negative_control
    kind, detects = KINDS[NAME]

    def not_run(why: str) -> dict:
        return {"verdict": "not run", "kind": kind, "detects": detects, "summary": why}

    if y is None:
        return not_run(f"no {COLUMN} column: opt in with [judge] negative_control = true, then judge run and export")
    scored = np.isfinite(y)
    outside = scored & ((y < 1) | (y > 7))
    if outside.any():
        return not_run(f"{int(outside.sum())} {COLUMN} scores lie outside 1..7 (e.g. {y[outside][0]:g})")
    if scored.sum() < MIN_PAIRS:
        return not_run(f"only {int(scored.sum())} pairs have a {COLUMN} score (at least {MIN_PAIRS} needed)")
    result = problem.refit(Alteration(outcome=y))
    passed = result.covers_zero
    return _verdict(NAME, passed,
                    f"effect on the attachment already expressed in the prompt (written before the response): "
                    f"{result.estimate:+.3f} [{result.low:.3f}, {result.high:.3f}] over {result.n} pairs — "
                    + ("covers 0, as it must" if passed else
                       "does not cover 0: this flags confounding the confounders miss, and the main estimate "
                       "carries it too"),
                    **result.to_json(), outcome=COLUMN, unscored=int((~scored).sum()))


REFUTERS[NAME] = negative_control_outcome


def has_negative_control(frame) -> bool:
    return COLUMN in frame.columns and frame[COLUMN].notna().any()
