"""The estimator and refuter names a study may write are declared as data, and every declared name has
exactly one implementation; reading a configuration loads none of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from empathy_study import causal
from empathy_study.causal import _registry


def test_every_declared_name_has_an_implementation_and_nothing_else_is_registered():
    from empathy_study.causal import _estimate  # noqa: F401  (loads every estimator and refuter module)
    from empathy_study.causal._refute import REFUTERS

    assert set(_registry.ESTIMATORS) == set(_registry.ESTIMATOR_NAMES)
    assert set(REFUTERS) == set(_registry.REFUTER_NAMES)
    assert set(causal.DEFAULT_ESTIMATORS) <= set(_registry.ESTIMATOR_NAMES)


def test_a_retired_refuter_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="random_common_cause' was removed: .*passes by construction"):
        causal.CausalConfig(refuters=["random_common_cause"])
    with pytest.raises(ValueError, match="unknown refuter 'placebos'"):
        causal.CausalConfig(refuters=["placebos"])


def test_a_misspelt_causal_key_is_an_error():
    with pytest.raises(ValueError, match="embeding_dims"):
        causal.CausalConfig.model_validate({"embeding_dims": 64})


def test_reading_a_configuration_loads_no_estimator_and_no_scientific_stack():
    code = ("import sys; from empathy_study import causal; "
            "causal.CausalConfig(estimators=['dr', 'tmle', 'x_learner'], refuters=['placebo']); "
            "print(sorted(m for m in sys.modules if m.startswith(('sklearn', 'econml', 'scipy.stats')) "
            "or m in ('empathy_study.causal._estimate', 'empathy_study.causal._fit')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
