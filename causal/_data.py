"""From a scored-pairs table to the arrays every estimator uses: treatment, outcome, clusters, weights,
and — where the blind audit sample has human labels — the gold versions of both."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from empathy_study.shared import CONSTRUCTS, JUDGE_COLUMN, expected_key

from ._errors import CausalError

REQUIRED = ("pair_id", "prompt", "model", "turn_index", *CONSTRUCTS)
TEXTS = ("prompt", "prev_response", "response", "reply")  # a pair's texts: the estimate only embeds two (`confounders`)
GOLD_COLUMNS = ("empathy_gold", "attachment_gold", "gold_prob")
DRAWN = "gold_drawn"  # 1 where the pair was drawn into the blind audit sample (optional: models missing labels)
SCALE = (1.0, 7.0)


@dataclass(frozen=True)
class TreatmentRule:
    """Treated if empathy ≥ high, control if ≤ low; anything strictly between is excluded."""

    high: float = 5.0
    low: float = 3.0

    def __post_init__(self):
        if not SCALE[0] <= self.low < self.high <= SCALE[1]:
            raise CausalError(f"the treatment rule needs 1 ≤ low < high ≤ 7 (got low {self.low}, high {self.high})")

    def describe(self) -> str:
        return f"treated: empathy ≥ {self.high:g}; control: empathy ≤ {self.low:g}; excluded: {self.low:g} < empathy < {self.high:g}"

    def assign(self, empathy: pd.Series) -> pd.Series:
        """1 treated, 0 control, NaN excluded (or unscored)."""
        # plain floats: a nullable column (pd.NA where unlabelled) makes its comparisons masked arrays
        values = pd.to_numeric(empathy, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        return pd.Series(np.select([values >= self.high, values <= self.low], [1.0, 0.0], np.nan), index=empathy.index)


@dataclass
class Audit:
    """The blind audit sample: which rows have human (gold) labels, with what probability, and the
    treatment rule applied to the gold empathy.

    `audited` holds where the gold labels the estimand needs exist: gold empathy, and gold attachment
    unless the gold empathy falls in the excluded band (such a pair is outside the estimand's
    population and needs no outcome). `probability` is gold_prob × the probability that a drawn pair's
    labels are complete: modelled from what is observed where `gold_drawn` says which pairs were drawn
    (`response_probability`), else one response rate for all (missing completely at random); `missing`
    says which. It is treated as known.
    """

    audited: np.ndarray  # bool
    probability: np.ndarray  # > 0 everywhere
    in_arm: np.ndarray  # 1 where the gold empathy is in an arm (audited rows), else 0
    treatment: np.ndarray  # gold treatment 1/0, NaN outside audited in-arm rows
    outcome: np.ndarray  # gold attachment, NaN outside audited in-arm rows
    expected: float  # Σ gold_prob: labelled pairs a complete audit would have
    response_rate: float  # complete labels ÷ `asked`
    asked: float  # labels asked for: the pairs drawn where gold_drawn records them, else `expected`
    incomplete: int  # audited pairs with gold empathy but no gold attachment (in an arm)
    missing: str = ""  # how missing audit labels enter `probability`
    design_varies: bool = False  # gold_prob differs between pairs (an active or stratified audit design)

    def subset(self, mask: np.ndarray) -> "Audit":
        return replace(self, audited=self.audited[mask], probability=self.probability[mask],
                       in_arm=self.in_arm[mask], treatment=self.treatment[mask], outcome=self.outcome[mask])


@dataclass
class PanelScores:
    """Each panel judge's own scores (optional columns `<construct>__<judge>`), beside the panel aggregate:
    n × judges arrays, NaN where a judge did not score the pair. Only the judge-error correction reads
    them, as separate predictors of the gold labels."""

    judges: tuple[str, ...]
    columns: tuple[str, ...]  # the table's columns they came from
    empathy: np.ndarray
    attachment: np.ndarray
    treatment: np.ndarray  # the treatment rule applied to each judge's empathy: 1/0, NaN excluded or unscored
    # Each judge's logprob-expected scores (`<construct>_expected__<judge>`), NaN where it has none; None: no
    # judge of the table has any.
    expected_empathy: np.ndarray | None = None
    expected_attachment: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> "PanelScores":
        return replace(self, empathy=self.empathy[rows], attachment=self.attachment[rows],
                       treatment=self.treatment[rows], **self._expected(rows))

    def permuted(self, order: np.ndarray) -> "PanelScores":
        """Each judge's reading of the treatment (its empathy, expected empathy and arm) moved with `order`."""
        moved = {} if self.expected_empathy is None else {"expected_empathy": self.expected_empathy[order]}
        return replace(self, empathy=self.empathy[order], treatment=self.treatment[order], **moved)

    def _expected(self, rows: np.ndarray) -> dict:
        if self.expected_empathy is None:
            return {}
        return {"expected_empathy": self.expected_empathy[rows], "expected_attachment": self.expected_attachment[rows]}


def panel_columns(columns: list[str], recorded: dict | None) -> dict[str, dict[str, str]]:
    """construct → judge → column of each judge's own score. `recorded`: the `panel_columns` record of
    the file's provenance (what `empathy export` wrote), which names them; a file without one (a file a
    user brings) may carry them under the documented names `<construct>__<judge>`."""
    keys = (*CONSTRUCTS, *(expected_key(c) for c in CONSTRUCTS))
    if recorded is not None:
        named = {c: dict(recorded.get(c, {})) for c in keys}
        absent = [column for c in keys for column in named[c].values() if column not in columns]
        if absent:
            raise CausalError(f"the file's provenance names per-judge score column{'s' if len(absent) > 1 else ''} "
                              f"{', '.join(absent)} that the table lacks: export again, or drop the "
                              "panel_columns record")
        return named
    prefix = {c: JUDGE_COLUMN.format(construct=c, judge="") for c in keys}
    return {c: {column[len(prefix[c]):]: column for column in columns
                if column.startswith(prefix[c]) and len(column) > len(prefix[c])} for c in keys}


def _panel(frame: pd.DataFrame, named: dict[str, dict[str, str]], rule: TreatmentRule) -> PanelScores | None:
    judges = tuple(dict.fromkeys(j for c in CONSTRUCTS for j in named[c]))
    if not judges:
        return None
    n = len(frame)

    def scores(construct: str) -> np.ndarray:
        return np.column_stack([_check_scale(frame, named[construct][j]).to_numpy(dtype=float)
                                if j in named[construct] else np.full(n, np.nan) for j in judges])

    empathy = scores("empathy")
    treatment = np.column_stack([rule.assign(pd.Series(empathy[:, i])).to_numpy() for i in range(len(judges))])
    expected = {}
    if any(named.get(expected_key(c)) for c in CONSTRUCTS):
        alone = sorted({j for c in CONSTRUCTS for j in named.get(expected_key(c), {}) if j not in judges})
        if alone:
            raise CausalError(f"expected-score columns of judge{'s' if len(alone) > 1 else ''} {', '.join(alone)} "
                              "without score columns of their own: export again, or drop them")
        expected = {f"expected_{c}": np.column_stack([
            _check_scale(frame, named[expected_key(c)][j]).to_numpy(dtype=float) if j in named[expected_key(c)]
            else np.full(n, np.nan) for j in judges]) for c in CONSTRUCTS}
    return PanelScores(judges, tuple(col for key in named for col in named[key].values()), empathy,
                       scores("attachment"), treatment, **expected)


@dataclass
class StudyArrays:
    frame: pd.DataFrame  # the rows in the analysis, in order
    treatment: np.ndarray  # judge rule: 1/0, NaN where excluded or unscored
    outcome: np.ndarray  # judge attachment, NaN where unscored
    empathy: np.ndarray  # judge empathy (panel aggregate), NaN where unscored
    clusters: np.ndarray  # integer codes of user_id (fallback conversation_id)
    cluster_column: str
    design_weight: np.ndarray | None  # 1 / inclusion_prob where the sample recorded it
    counts: dict[str, int]  # how many rows went where
    audit: Audit | None = None
    panel: PanelScores | None = None  # each judge's own scores, where the table has them

    @property
    def in_arm(self) -> np.ndarray:
        """Rows the judge-label estimators use: scored and in an arm by the rule."""
        return ~np.isnan(self.treatment)

    def subset(self, mask: np.ndarray) -> "StudyArrays":
        return replace(self, frame=self.frame[mask].reset_index(drop=True), treatment=self.treatment[mask],
                       outcome=self.outcome[mask], empathy=self.empathy[mask],
                       clusters=np.unique(self.clusters[mask], return_inverse=True)[1],
                       design_weight=None if self.design_weight is None else self.design_weight[mask],
                       audit=None if self.audit is None else self.audit.subset(mask),
                       panel=None if self.panel is None else self.panel.subset(mask))

    def weightings(self, units: np.ndarray | None = None) -> list[tuple[bool, np.ndarray | None]]:
        """(weighted, weights) to report: unweighted always; by design weight (of `units`) where recorded."""
        if self.design_weight is None:
            return [(False, None)]
        return [(False, None), (True, self.design_weight if units is None else self.design_weight[units])]


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = frame[column].notna() & values.isna()
    if bad.any():
        raise CausalError(f"column '{column}' has non-numeric values (e.g. {frame.loc[bad, column].iloc[0]!r})")
    return values


def _check_scale(frame: pd.DataFrame, column: str) -> pd.Series:
    values = _numeric(frame, column)
    outside = values.notna() & ~values.between(*SCALE)
    if outside.any():
        raise CausalError(
            f"column '{column}' has {int(outside.sum())} scores outside 1..7 (e.g. {values[outside].iloc[0]:g})"
        )
    return values


def has_gold(pairs: pd.DataFrame) -> bool:
    return all(c in pairs.columns for c in GOLD_COLUMNS) and pairs["empathy_gold"].notna().any()


def _audit(frame: pd.DataFrame, rule: TreatmentRule) -> Audit:
    empathy = _check_scale(frame, "empathy_gold")
    attachment = _check_scale(frame, "attachment_gold")
    probability = _numeric(frame, "gold_prob")
    if probability.isna().any() or ((probability <= 0) | (probability > 1)).any():
        raise CausalError("column 'gold_prob' must lie in (0, 1] on every row: it is the probability that the pair "
                          "was drawn into the audit sample")
    arm = rule.assign(empathy)
    in_arm = arm.notna().to_numpy()
    labelled = empathy.notna().to_numpy()
    complete = labelled & (~in_arm | attachment.notna().to_numpy())
    expected = float(probability.sum())
    rate = min(1.0, float(complete.sum()) / expected)
    usable = complete & in_arm
    if DRAWN in frame.columns:
        drawn = _numeric(frame, DRAWN).fillna(0).to_numpy() > 0
        if (labelled & ~drawn).any():
            raise CausalError(f"{int((labelled & ~drawn).sum())} pairs have human audit labels but are not in the "
                              f"audit draw ({DRAWN} = 0): gold labels come only from the blind audit sample")
        response = response_probability(frame, drawn, labelled, in_arm, attachment.notna().to_numpy())
        asked = float(drawn.sum())  # the draw is known: labels found ÷ pairs drawn
        rate = float(complete.sum()) / max(asked, 1.0)
        missing = "modelled: missing at random given the judges' labels, the model (and, for a missing attachment "\
                  "label, the human empathy label), by logistic regressions on the drawn pairs"
    else:
        asked = expected
        response = np.full(len(frame), rate)
        missing = f"assumed missing completely at random: no {DRAWN} column says which pairs were drawn, so one " \
                  "response rate (labels found ÷ labels expected) scales every pair's probability"
    return Audit(
        audited=complete,
        probability=probability.to_numpy(dtype=float) * response,
        in_arm=usable.astype(float),
        treatment=np.where(usable, arm.to_numpy(), np.nan),
        outcome=np.where(usable, attachment.to_numpy(), np.nan),
        expected=expected,
        response_rate=rate,
        asked=asked,
        incomplete=int((labelled & ~complete).sum()),
        missing=missing,
        design_varies=bool(probability.max() - probability.min() > 1e-9 * probability.max()),
    )


RESPONSE_FLOOR = 0.05  # a modelled response probability is kept above this (a weight of at most 20 ×)


def response_probability(frame: pd.DataFrame, drawn: np.ndarray, labelled: np.ndarray, in_arm: np.ndarray,
                         has_attachment: np.ndarray) -> np.ndarray:
    """P(a drawn pair's audit labels are complete | what is observed), per pair.

    Two steps, because the completeness rule asks for more in an arm: a drawn pair gets its human
    empathy label with probability ρₑ(judges' labels, model); a pair whose human empathy is in an arm
    then needs its attachment label too, with probability ρₐ(judges' labels, model, human empathy) — the
    human empathy is observed for those pairs, so response may depend on it. Each is a logistic
    regression fitted on the pairs it applies to; complete = ρₑ · (ρₐ where the pair is in an arm).
    """
    from sklearn.linear_model import LogisticRegression

    judge = np.column_stack([pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float) for c in CONSTRUCTS])
    features = np.column_stack([np.nan_to_num(judge, nan=0.0), np.isnan(judge).astype(float),
                                pd.get_dummies(frame["model"].astype(str), dtype=float).to_numpy()])
    gold_empathy = pd.to_numeric(frame["empathy_gold"], errors="coerce").fillna(0).to_numpy(dtype=float)

    def fitted(X: np.ndarray, rows: np.ndarray, outcome: np.ndarray) -> np.ndarray:
        y = outcome[rows].astype(int)
        if len(np.unique(y)) < 2:  # every one answered (or none): nothing to model
            return np.full(len(X), float(y.mean()) if len(y) else 1.0)
        model = LogisticRegression(C=1.0, max_iter=2_000).fit(X[rows], y)
        return model.predict_proba(X)[:, 1]

    empathy_response = fitted(features, drawn, labelled)
    with_gold = np.column_stack([features, gold_empathy])
    attachment_response = fitted(with_gold, labelled & in_arm, has_attachment)
    complete = empathy_response * np.where(in_arm, attachment_response, 1.0)
    return np.clip(complete, RESPONSE_FLOOR, 1.0)


def prepare(pairs: pd.DataFrame, rule: TreatmentRule, judge_columns: dict | None = None) -> StudyArrays:
    """Validate the table, apply the treatment rule, and count every row that is left out.

    `judge_columns`: the `panel_columns` record of the file's provenance (`panel_columns`), if it has one.

    Without human labels the rows are those the judge put in an arm. With an audit sample every row
    stays: the judge-error correction averages over all pairs (a pair the judge left unscored or in
    the excluded band may be in an arm by its gold label); judge-label estimators use `in_arm`.
    """
    missing = [c for c in REQUIRED if c not in pairs.columns]
    if missing:
        raise CausalError(f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    cluster_column = next((c for c in ("user_id", "conversation_id") if c in pairs.columns), None)
    if cluster_column is None:
        raise CausalError("missing column: user_id (or conversation_id) — needed to cluster standard errors")
    frame = pairs.copy()
    for column in CONSTRUCTS:
        frame[column] = _check_scale(frame, column)
    counts = {"input": len(frame)}
    unscored = frame["empathy"].isna() | frame["attachment"].isna()
    counts["unscored"] = int(unscored.sum())
    for construct in CONSTRUCTS:  # pairs some judge of the panel failed on (the export leaves them NaN)
        judges = f"{construct}_judges"
        if judges in frame.columns:
            counts[f"{construct}_partial_panel"] = int(((frame[judges].fillna(0) > 0) & frame[construct].isna()).sum())
    assigned = rule.assign(frame["empathy"])
    counts["excluded_by_rule"] = int((assigned.isna() & ~unscored).sum())
    assigned[unscored] = np.nan
    gold = has_gold(frame)
    if not gold:
        frame = frame[assigned.notna()].reset_index(drop=True)
        assigned = assigned[assigned.notna()].reset_index(drop=True)
    if frame["prompt"].isna().any() or (frame["prompt"].astype(str).str.strip() == "").any():
        raise CausalError("column 'prompt' has empty texts: the prompt embedding is the main confounder")
    unscored_rows = (frame["empathy"].isna() | frame["attachment"].isna()).to_numpy()
    counts["treated"] = int((assigned == 1).sum())
    counts["control"] = int((assigned == 0).sum())
    if counts["treated"] == 0 or counts["control"] == 0:
        raise CausalError(
            f"after the rule ({rule.describe()}) there are {counts['treated']} treated and "
            f"{counts['control']} control pairs: both arms are needed"
        )
    in_arm_outcome = frame["attachment"][assigned.notna().to_numpy()]  # unscored pairs are in no arm
    if in_arm_outcome.nunique() < 2:
        raise CausalError(f"every attachment score of the {len(in_arm_outcome)} pairs in an arm is "
                          f"{in_arm_outcome.iloc[0]:g}: a constant outcome carries no effect to estimate (a judge that "
                          "gives every reply the same score has not measured it: see `empathy judge report`)")
    clusters = frame[cluster_column].fillna(frame.get("conversation_id", frame["pair_id"]))
    weight = None
    if "inclusion_prob" in frame.columns and frame["inclusion_prob"].notna().all():
        probability = frame["inclusion_prob"].to_numpy(dtype=float)
        if ((probability <= 0) | (probability > 1)).any():
            raise CausalError("column 'inclusion_prob' must lie in (0, 1]")
        weight = 1.0 / probability
    arrays = StudyArrays(
        frame=frame,
        treatment=assigned.to_numpy(dtype=float),
        outcome=np.where(unscored_rows, np.nan, frame["attachment"].to_numpy(dtype=float)),
        empathy=frame["empathy"].to_numpy(dtype=float),
        clusters=pd.factorize(clusters)[0],
        cluster_column=cluster_column,
        design_weight=weight,
        counts=counts,
        audit=_audit(frame, rule) if gold else None,
        panel=_panel(frame, panel_columns(list(frame.columns), judge_columns), rule),
    )
    if arrays.audit is not None:
        counts["audited"] = int(arrays.audit.audited.sum())
        counts["audited_in_arm"] = int(arrays.audit.in_arm.sum())
        counts["audit_incomplete"] = arrays.audit.incomplete
    return arrays
