"""The offline population classifier: the packaged file, its arithmetic, its place in the build, and the
held-out figures docs/methods/corpus-classifier.md quotes — recomputed here from the committed labels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from empathy_study import corpus
from empathy_study.corpus import _classifier
from empathy_study.study import population
from tests.corpus.test_wildchat_build import build, fixture_rows

ROOT = Path(__file__).parents[2]
DATA = ROOT / "data"
DOC = ROOT / "docs" / "methods" / "corpus-classifier.md"
HOLDOUT = DATA / "socioemotional_holdout.jsonl"


def test_the_packaged_file_says_how_it_was_made():
    model, digest = _classifier.packaged_model()
    raw = (ROOT / "corpus" / _classifier.MODEL_FILE).read_bytes()
    assert digest == hashlib.sha256(raw).hexdigest() and len(raw) < 300_000
    assert digest in DOC.read_text()  # the methods page names the file it describes
    made = model.provenance
    assert "AI model" in made["labelled_by"] and "not humans" in made["labelled_by"]
    trained = {entry["file"]: entry["sha256"] for entry in made["trained_on"]}
    assert "data/socioemotional_holdout.jsonl" not in trained
    for name, sha in trained.items():  # the training sets are the committed ones, unchanged since
        assert hashlib.sha256((ROOT / name).read_bytes()).hexdigest() == sha
    assert set(model.roles) <= set(_classifier.TEXTS) and 0 < model.threshold < 1
    assert model.embedding["model"] == "all-MiniLM-L6-v2-onnx-int8" and len(model.embedding["onnx_sha256"]) == 64
    assert {"scikit-learn", "onnxruntime", "torch"} <= set(made["versions"]) and made["date"]


def test_scores_are_the_fitted_logistic_regression():
    """The numpy arithmetic of the shipped model against scikit-learn's own predict_proba."""
    rng = np.random.default_rng(3)
    width = 384 + len(_classifier.CHEAP_FEATURES)
    x = rng.normal(size=(300, width)) * rng.uniform(0.5, 3, size=width) + rng.normal(size=width)
    y = (x[:, 0] + x[:, -1] + rng.normal(size=300) > 0).astype(int)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    fitted = LogisticRegression(C=0.1, max_iter=2_000).fit((x - mean) / scale, y)
    model = _classifier.PopulationClassifier(("prompt",), mean, scale, fitted.coef_[0], float(fitted.intercept_[0]),
                                             0.5, {}, {})
    expected = fitted.predict_proba((x - mean) / scale)[:, 1]
    assert np.allclose(model.scores(x), expected, atol=1e-12)
    again = _classifier.PopulationClassifier.from_dict(json.loads(json.dumps(model.to_dict())))
    assert np.allclose(again.scores(x), expected, atol=1e-12)
    with pytest.raises(corpus.CorpusError):
        _classifier.PopulationClassifier.from_dict({**model.to_dict(), "cheap_features": ["own_cue"]})


def test_cheap_features_read_the_users_words_and_code_in_the_answer():
    pairs = pd.DataFrame({"prompt": ["I feel so lonely tonight", "fix this: def f(x): return x"],
                          "reply": ["thank you, you are so kind", "thanks"], "response": ["I'm sorry.", "```py\n```"],
                          "prev_prompt": [None, "hello"], "prev_response": [None, "Hi!"]})
    got = dict(zip(_classifier.CHEAP_FEATURES, _classifier.cheap_features(pairs).T))
    assert list(got["personal_prompt"]) == [1, 0] and list(got["first_turn"]) == [1, 0]
    assert list(got["code"]) == [0, 1] and list(got["response_fence"]) == [0, 1]
    assert got["own_cue"][0] > got["own_cue"][1]
    assert list(_classifier.fenced_response(pairs)) == [False, True]
    assert list(corpus.has_fence(pairs)) == [False, True]


def _stages(funnel: dict) -> dict:
    return {s["name"]: s["rows"] for s in funnel["stages"]}


def test_the_build_runs_the_classifier_on_the_candidates_and_counts_what_it_drops(tmp_path):
    rows = fixture_rows()
    rows["task_that_sounds_warm"] = corpus_task_row()
    study, funnel = build(tmp_path, list(rows.values()))
    stages = _stages(funnel)
    assert list(stages)[-2:] == ["deduplicated", _classifier.STAGE]
    dropped = sum(funnel["rejected"].get(r, 0) for r in (_classifier.REJECTED, _classifier.REJECTED_CODE))
    assert stages["deduplicated"] == stages[_classifier.STAGE] + dropped  # nothing leaves uncounted
    pairs = pd.read_parquet(study / corpus.TURN_PAIRS_FILE)
    assert len(pairs) == stages[_classifier.STAGE]
    note = funnel[_classifier.STAGE]
    assert note["candidates"] == stages["deduplicated"] and note["kept"] == len(pairs)
    assert sum(note["rejected"].values()) == dropped and set(funnel["build"][_classifier.STAGE]) == {"embedded_now",
                                                                                                    "seconds"}
    assert note["sha256"] == _classifier.packaged_model()[1] and note["embedding"] == "all-MiniLM-L6-v2-onnx-int8"
    # The fixture's clearly personal exchanges stay; the fenced answer to a warm-sounding request goes.
    assert {"I've been feeling really lonely since I moved to a new city.",
            "My girlfriend broke up with me yesterday and I can't stop crying."} <= set(pairs["prompt"])
    assert funnel["rejected"][_classifier.REJECTED_CODE] >= 1


def corpus_task_row() -> dict:
    from tests.support.wildchat import conversation_row

    return conversation_row([
        "I'm so happy today! Can you show me how to print my name in python?",
        "Sure:\n```python\nprint('Ada')\n```",
        "thank you so much, you are so kind",
        "You're welcome!",
    ], hashed_ip="ip-9", conversation_hash="e" * 32)


@pytest.mark.parametrize("setting", [{"keep_transactional": True}, {"classify_judges": ["gpt"]}, {"classifier": False}])
def test_the_classifier_stays_off_when_the_filter_is_off_or_a_judge_pass_is_configured(tmp_path, setting):
    config = corpus.CorpusConfig(**setting)
    assert not _classifier.classifier_applies(config)
    assert _classifier.classifier_applies(corpus.CorpusConfig())


@pytest.fixture(scope="module")
def holdout_figures() -> dict:
    return population.measure_filters(population.read_audit(HOLDOUT), classifier=True)


def test_held_out_figures_are_what_the_methods_page_reports(holdout_figures):
    """`empathy corpus audit measure data/socioemotional_holdout.jsonl --classifier`, recomputed."""
    default = holdout_figures["filters"]["cheap pass + classifier (default)"]
    cheap = holdout_figures["filters"]["cheap pass"]
    assert holdout_figures["pairs"] == 1_830 and holdout_figures["positives"] == 84
    assert default["precision"]["estimate"] == pytest.approx(0.4203, abs=5e-4)
    assert default["recall"]["estimate"] == pytest.approx(0.348, abs=5e-4)
    assert default["fence_share"]["estimate"] == pytest.approx(0.0077, abs=5e-4)
    assert cheap["precision"]["estimate"] == pytest.approx(0.126, abs=5e-4)
    assert cheap["recall"]["estimate"] == pytest.approx(0.479, abs=5e-4)
    # The classifier only ever removes candidates: the default path cannot recall more than the cheap pass.
    assert default["recall"]["estimate"] <= cheap["recall"]["estimate"]
    assert default["fence_share"]["estimate"] < cheap["fence_share"]["estimate"]
