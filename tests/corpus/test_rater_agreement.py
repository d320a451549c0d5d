"""The double-labelled sample: its design is the committed draw's, every pair carries both raters' answers,
and the agreement figures docs/methods/corpus-classifier.md quotes are recomputed from the committed labels."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).parents[2]
DATA = ROOT / "data"
DOC = ROOT / "docs" / "methods" / "corpus-classifier.md"


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, DATA / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sample_is_the_draws_and_every_pair_has_both_raters_answers():
    draw, measure = script("socioemotional_agreement_draw"), script("socioemotional_agreement_measure")
    sample = measure.read()
    assert len(sample) == 300 and sample["pair_id"].is_unique and sample["socio_emotional"].notna().all()
    assert (sample["labelled_by"] == measure.LABELLED_BY).all() and "not a human" in measure.LABELLED_BY
    for name, file in draw.SETS.items():  # the earlier labels are those sets' own, unchanged
        earlier = pd.read_json(DATA / file, lines=True, dtype={"pair_id": str}).set_index("pair_id")
        mine = sample[sample["source_set"] == name].set_index("pair_id")
        assert (earlier.loc[mine.index, "socio_emotional"].astype(bool) == mine["earlier_label"]).all()
        sizes = mine.groupby("agreement_stratum")["stratum_sample"].agg(["first", "size"])
        assert (sizes["first"] == sizes["size"]).all()
        assert np.allclose(mine["agreement_prob"], mine["stratum_sample"] / mine["stratum_size"])
        assert (mine["blind_id"] == mine.index.map(draw.blind_id)).all()


def test_the_agreement_the_methods_page_quotes_is_the_committed_labels():
    measure = script("socioemotional_agreement_measure")
    result = measure.measure(measure.read(), bootstrap=50)
    text = DOC.read_text()
    for name in ("audit", "holdout"):
        kappa = result[name]["kappa"]["estimate"]
        precision = result[name]["candidate_precision_new"]["estimate"]
        assert f"κ {kappa:.2f}" in text, (name, kappa)
        assert f"{precision:.3f}" in text, (name, precision)
    # The reading the page draws: the new rater reproduces each set's candidate precision within 0.03.
    for name in ("audit", "holdout"):
        figures = result[name]
        assert abs(figures["candidate_precision_new"]["estimate"]
                   - figures["candidate_precision_earlier"]["estimate"]) < 0.03
    assert re.search(r"not the raters", text)
