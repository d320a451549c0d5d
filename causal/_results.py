"""Typed results: one row per estimate, intervals at any level on request, and the run that made them.

Follows the EconML/statsmodels results contract: a row holds its point estimate, SE and the
reference distribution of its interval; `conf_int(alpha)` and `summary_frame(alpha)` compute the
interval at the level asked. The report and the CLI render these objects and never recompute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ._inference import interval
from ._selection import CONDITIONAL_ON_REPLY

SCALE_LIMIT = 6.0  # the largest effect a 1–7 scale allows


@dataclass
class EffectRow:
    method: str
    estimand: str
    estimate: float
    se: float
    n_used: int
    weighted: bool = False
    note: str = ""
    reference: str = "normal"  # "normal" or "t(G-1)"
    df: int | None = None  # degrees of freedom of the t reference
    clusters: int | None = None
    interval_valid: bool = True  # False: the interval is known not to cover (plain matching)
    gold_n: int | None = None  # audited pairs with human labels used (gold rows)
    effective_gold_n: float | None = None  # human labels alone that would give the same SE
    ppi_lambda: float | None = None  # dr_gold_corrected: the weight on the judges' prediction (power tuning)
    gold_only_weight: float | None = None  # dr_gold_corrected: the share of dr_gold_only mixed in (least variance)
    validation: str = "exploratory"  # "validated": covered on every bench design that applies (_validation.py)
    validation_note: str = ""  # why it is validated or exploratory

    def conf_int(self, alpha: float = 0.05) -> tuple[float, float]:
        if not np.isfinite(self.estimate):
            return float("nan"), float("nan")
        return interval(self.estimate, self.se, self.df, alpha)

    @property
    def ci_low(self) -> float:
        return self.conf_int()[0]

    @property
    def ci_high(self) -> float:
        return self.conf_int()[1]

    @property
    def label(self) -> str:
        return f"{self.method} · {self.estimand}{' · weighted' if self.weighted else ''}"

    def to_json(self, alpha: float = 0.05) -> dict:
        record = asdict(self)
        low, high = self.conf_int(alpha)
        record.update(ci_low=_finite(low), ci_high=_finite(high), estimate=_finite(self.estimate), se=_finite(self.se))
        return record


def _finite(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def empty_row(method: str, estimand: str, why: str, weighted: bool = False) -> EffectRow:
    """A row that could not be estimated: kept (with its reason) so nothing disappears silently."""
    return EffectRow(method, estimand, float("nan"), float("nan"), 0, weighted, note=why, interval_valid=False)


@dataclass
class EstimateResult:
    rows: list[EffectRow]
    counts: dict
    rule: str
    balance: dict
    overlap: dict
    matching: dict
    hte: dict
    gold: dict
    warnings: list[str]
    primary: str  # label of the pre-specified primary estimate (of `dr` when the primary could not be estimated)
    matched_pairs: pd.DataFrame  # method, treated_pair_id, control_pair_id, distance
    arrays: dict[str, np.ndarray]  # per-unit values for the report's plots (not written to JSON)
    audit_need: pd.DataFrame | None = None  # pair_id, need: where the next active audit batch should look
    provenance: dict = field(default_factory=dict)
    sensitivity: dict = field(default_factory=dict)  # E-value, Rosenbaum Γ, omitted-variable bounds
    refuters: dict = field(default_factory=dict)  # name → {verdict, ...}
    selection: dict = field(default_factory=dict)  # selection on replying: reply effect, Lee bounds (_selection.py)
    nuisance_models: dict = field(default_factory=dict)  # the class of each nuisance and how it was chosen
    check: dict = field(default_factory=dict)  # the estimators on simulated studies shaped like this one (_check.py)
    primary_missing: str | None = None  # why the pre-specified primary (dr_gold_corrected) is not among the rows

    def row(self, method: str, estimand: str = "ATE", weighted: bool = False) -> EffectRow:
        for r in self.rows:
            if (r.method, r.estimand, r.weighted) == (method, estimand, weighted):
                return r
        raise KeyError(f"no row {method} · {estimand}{' · weighted' if weighted else ''}")

    def matched_treated(self, method: str) -> pd.Series:
        """pair_ids of the treated units a matching row averages over (its bias-corrected row's too)."""
        return self.matched_pairs.loc[self.matched_pairs["method"] == method.removesuffix("_bc"), "treated_pair_id"]

    def summary_frame(self, alpha: float = 0.05) -> pd.DataFrame:
        """One line per row with its (1 − alpha) interval."""
        return pd.DataFrame([r.to_json(alpha) for r in self.rows])

    def to_json(self) -> dict:
        return {
            "n": self.counts["treated"] + self.counts["control"],
            "n_treated": self.counts["treated"],
            "n_control": self.counts["control"],
            "treatment_rule": self.rule,
            "primary": self.primary,
            "primary_missing": self.primary_missing,
            "warnings": self.warnings,
            "counts": self.counts,
            "estimates": [r.to_json() for r in self.rows],
            "gold": self.gold,
            "balance": self.balance,
            "overlap": self.overlap,
            "nuisance_models": self.nuisance_models,
            "matching": self.matching,
            "hte": self.hte,
            "sensitivity": self.sensitivity,
            "refuters": self.refuters,
            "selection": {"estimand": CONDITIONAL_ON_REPLY, **self.selection},  # stated with or without terminal pairs
            "check": self.check,  # {} unless `empathy estimate --check` ran
            "provenance": self.provenance,
        }
