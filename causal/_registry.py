"""The names a study may write in `[causal] estimators` and `[causal] refuters`, declared as data.

Reading a study's configuration (every `empathy` command does) validates these names against the
tuples below without importing a single estimator; the modules that implement them register their
functions here when the estimate loads them. tests/causal/test_registry.py checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable

ESTIMATOR_NAMES = ("naive", "dr", "dr_gold_only", "dr_gold_corrected", "matching", "tmle", "linear_dml",
                   "x_learner", "causal_forest_dml")
REFUTER_NAMES = ("placebo", "leave_one_model_out", "negative_control_outcome")
# Refuters that were offered once and could not fail: a study naming one is told why it is gone.
RETIRED_REFUTERS = {
    "random_common_cause": "an independent random column cannot confound, so adding one moves the estimate by "
                           "noise alone: it passes by construction",
    "subsample": "an 80 % subsample lands outside the full interval with probability of about 1e-4 whatever the "
                 "data: it passes by construction",
}

ESTIMATORS: dict[str, Callable] = {}  # name → function(Fit) → list[EffectRow], filled as the modules load


def estimator(name: str):
    """Register an estimator under a declared name: a function Fit → rows of estimates.json."""
    if name not in ESTIMATOR_NAMES:
        raise ValueError(f"estimator {name!r} is not declared in causal/_registry.py ESTIMATOR_NAMES")

    def register(function):
        ESTIMATORS[name] = function
        return function
    return register


def check_names(names: list[str], kind: str) -> list[str]:
    """`names` if every one is declared; else a ValueError naming the first that is not."""
    declared = ESTIMATOR_NAMES if kind == "estimator" else REFUTER_NAMES
    for name in names:
        if kind == "refuter" and name in RETIRED_REFUTERS:
            raise ValueError(f"refuter {name!r} was removed: {RETIRED_REFUTERS[name]}; available: "
                             f"{', '.join(declared)}")
        if name not in declared:
            raise ValueError(f"unknown {kind} {name!r}; {'registered' if kind == 'estimator' else 'available'}: "
                             f"{', '.join(declared)}")
    return names
