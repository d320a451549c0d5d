"""Where the next audit batch should look: how much a label error on each pair costs the correction.

The corrected estimate pays, per audited pair, for r = gold moment − λ·prediction, and an unequal-
probability audit is most efficient at π ∝ |r| (a Horvitz–Thompson term's variance is (1 − π)/π · r²).
The judges' label error alone predicts r badly: the gold moment carries the inverse propensity of
the pair's arm, so a small error on a pair with a propensity near 0 or 1 costs more than a large one
elsewhere (bench/active_audit.py: 10 % of pairs carried 90 % of Σr², and r² correlated ≤ 0.13 with
the label error). The estimate therefore hands the next batch each pair's inverse-propensity weight,
and the study multiplies it with the label error it expects (annotation.error_need). Any need keeps
the next batch's correction unbiased (its probabilities are known); a good one only narrows it. Pure.
"""

from __future__ import annotations

import numpy as np


def arm_weight(propensity: np.ndarray, treatment: np.ndarray) -> np.ndarray:
    """The inverse-propensity weight a pair's gold moment carries in the judges' arm (1/e treated,
    1/(1 − e) control; the larger of the two where the judges put it in no arm): a label error on the
    pair costs the correction about this many times the error."""
    return np.where(treatment == 1, 1 / propensity, np.where(treatment == 0, 1 / (1 - propensity),
                                                              np.maximum(1 / propensity, 1 / (1 - propensity))))
