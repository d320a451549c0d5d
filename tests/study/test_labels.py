"""One reader of labels.parquet: the gold the calibration app compares judges with is the gold
`empathy export` writes, and `agree` counts the labels left aside the same way — also on a study
whose labels were made under several rubric versions, some without a recorded version."""

from __future__ import annotations

import numpy as np
import pandas as pd

from empathy_study import study
from empathy_study.shared import CONSTRUCTS, write_parquet
from empathy_study.study import calibrate
from tests.study.conftest import make_simulated

OLDER = "an-older-rubric"


def mixed_versions(root):
    """A simulated study whose labels mix rubric versions: every blind label again (other scores) under
    an older rubric, extra older labels on more pairs — so the older version has the most labels — and
    some labels pulled before labels recorded their version (annotation.json names the current one)."""
    ws = make_simulated(root, n=120, gold=40)
    labels = pd.read_parquet(ws.labels)
    rng = np.random.default_rng(7)
    older = labels.assign(prompt_version=OLDER, score=pd.array(rng.integers(1, 8, len(labels)), dtype="Int64"))
    sample = pd.read_parquet(ws.sample)["pair_id"]
    extra_pairs = sample[~sample.isin(labels["pair_id"])].iloc[:30]
    extra = pd.DataFrame([{**labels.iloc[0].to_dict(), "pair_id": p, "construct": c, "annotator": a,
                           "score": int(rng.integers(1, 8)), "prompt_version": OLDER}
                          for p in extra_pairs for c in CONSTRUCTS for a in ("simulated-annotator-1",
                                                                               "simulated-annotator-2")])
    unversioned = labels.iloc[:6].assign(annotator="simulated-annotator-9", prompt_version=None,
                                         score=pd.array([7, 1, 7, 1, 7, 1], dtype="Int64"))
    mixed = pd.concat([labels, older, extra, unversioned], ignore_index=True)
    mixed["score"] = mixed["score"].astype("Int64")
    write_parquet(ws.labels, mixed)
    return ws


def test_the_calibration_apps_gold_is_the_exported_gold_on_a_study_with_mixed_rubric_versions(tmp_path):
    ws = mixed_versions(tmp_path / "study")
    data = calibrate.load(ws)
    exported = study.export(ws).table.set_index("pair_id")
    agreement = study.agree(ws, boot=0)
    for construct in CONSTRUCTS:
        gold = data.gold(construct)  # what the app opens on
        assert gold.label_version == data.versions[construct]  # the study's current rubric, not the commonest
        app = pd.Series(gold.mean, index=gold.units).dropna().sort_index()
        written = exported[f"{construct}_gold"].dropna().sort_index()
        assert list(app.index) == list(written.index)
        assert np.allclose(app.to_numpy(), written.to_numpy())
        # the unversioned labels count as the version annotation.json records (the current one), everywhere
        assert "simulated-annotator-9" in gold.annotators
        assert agreement[construct]["labels_under_other_rubric_versions"] == sum(gold.other_versions.values())
