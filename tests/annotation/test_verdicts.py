"""α verdicts read the bootstrap interval, not the point; bias says which way it runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from empathy_study import annotation


@pytest.mark.parametrize(("ci", "expected"), [
    ([0.82, 0.95], "reliable"),
    ([0.70, 0.95], "tentative"),  # at least tentative, perhaps reliable: the lower end decides
    ([0.56, 0.89], "inconclusive"),  # the case: a point of ~0.8 at n = 10 is not "reliable"
    ([0.30, 0.66], "unreliable"),
    (None, "inconclusive"),  # no interval, no verdict beyond "we cannot tell"
])
def test_verdict_reads_the_interval(ci, expected):
    assert annotation.verdict(0.8, ci) == expected


def test_undefined_alpha_stays_undefined():
    assert annotation.verdict(None, [0.1, 0.9]) == "undefined"


def ratings(n: int, seed: int) -> tuple[pd.Series, pd.Series]:
    """Two raters who agree except that b is one level off on every fifth unit."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 8, n)
    b = a.copy()
    b[::5] = np.clip(b[::5] + 1, 1, 7)
    return pd.Series(a, name="a", dtype=float), pd.Series(b, name="b", dtype=float)


def test_the_same_agreement_is_inconclusive_on_ten_units_and_reliable_on_three_hundred():
    small = annotation.pair_agreement(*ratings(10, seed=4), boot=1000, seed=0)
    large = annotation.pair_agreement(*ratings(300, seed=4), boot=1000, seed=0)
    assert small["alpha_ordinal"] >= 0.8 and large["alpha_ordinal"] >= 0.8  # both points say "reliable"
    assert small["ci"][0] < 0.667  # …but ten units cannot show it
    assert small["verdict"] == "inconclusive"
    assert large["ci"][0] >= 0.8 and large["verdict"] == "reliable"


def test_bias_is_b_minus_a_and_the_report_says_so():
    a, b = ratings(50, seed=1)
    figures = annotation.pair_agreement(a, b, boot=0)
    assert figures["bias"] == pytest.approx(float((b - a).mean())) and figures["bias"] > 0  # b rates higher
    report = annotation.agreement(pd.concat([a.rename("h1"), b.rename("h2")], axis=1), ["h1", "h2"], [], boot=0)
    assert report["bias"] == annotation.BIAS_MEANS and "positive when b rates higher than a" in report["bias"]
