"""Stage functions for calibrating the judge panel against the blind gold labels, and its lock.

`load` reads a study once (sample, every judgment of the panel's judges under every rubric
version, blind audit labels, the lock); `overview`, `disagreements` and `fit` compute what the
calibration app shows, with the statistics in `annotation.calibration`; `lock` hands a fit with its
evidence to `study.lock`, which writes `DIR/calibration.json` (and `empathy export` applies).
"""

from __future__ import annotations

import json
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from empathy_study import judge
from empathy_study.annotation import AgreementError
from empathy_study.annotation import calibration as stats
from empathy_study.shared import write_text
from empathy_study.study import labels as labels_of
from empathy_study.study.judging import read_judgments
from empathy_study.study.lock import MIN_ALPHA, below_floor, read_lock, write_lock
from empathy_study.study.lock import entry as lock_entry
from empathy_study.study.progress import Progress, Step, quiet
from empathy_study.study.workspace import StudyConfig, StudyError, Workspace

PANEL = "panel"
short = labels_of.short_version
SOURCES = ("score", "expected_score")
AGGREGATES = stats.AGGREGATES  # how a panel's calibrated scores are combined
CLASSES = stats.CLASSES  # the treatment classes of the confusion matrices
_JUDGMENT_COLUMNS = ["pair_id", "construct", "judge", "model", "temperature", "prompt_version", "sample_index",
                     "score", "expected_score", "rationale", "cost_usd", "error"]
_KEY_COLUMNS = ("pair_id", "construct", "judge", "model", "prompt_version")


# ---------------------------------------------------------------------------------------------- reading


def judgments_frame(study: Workspace) -> pd.DataFrame:
    """Every record of the judgment log (`study.judging.read_judgments`: parsed once, then extended by
    what was appended), its key columns as categories (few distinct values: fast groupbys)."""
    frame = read_judgments(study)[_JUDGMENT_COLUMNS]
    return frame.astype({column: "category" for column in _KEY_COLUMNS})


def panel_judgments(frame: pd.DataFrame, config: StudyConfig) -> pd.DataFrame:
    """The judgments of the panel's judges under any rubric version (`judge.of_panel`, asked once per
    distinct identity rather than once per record)."""
    identity = ["judge", "model", "temperature"]
    if frame.empty:
        return frame
    kept = judge.of_panel(frame[identity].drop_duplicates(), config.judges)
    return frame.merge(kept, on=identity, how="inner")


@dataclass
class Gold:
    """The gold labels of one construct under one label version: annotators × units."""

    construct: str
    label_version: str
    units: list[str]  # pair ids
    annotators: list[str]
    humans: np.ndarray  # annotators × units, NaN = not labelled
    other_versions: dict[str, int]  # labels under other rubric versions (not pooled)

    @property
    def mean(self) -> np.ndarray:
        return stats.gold_mean(self.humans)


@dataclass
class CalibrationData:
    """What the calibration app reads from a study, once."""

    study: Workspace
    config: StudyConfig
    sample: pd.DataFrame  # indexed by pair_id
    judgments: pd.DataFrame  # the panel's judges (any rubric version)
    scores: pd.DataFrame  # `judge.version_scores` of `judgments`
    labels: pd.DataFrame  # blind labels of sampled pairs under every rubric version (`study.labels.blind`)
    versions: dict[str, str]  # the study's current rubric version per construct
    rubrics: dict[str, judge.Rubric]
    lock: dict | None
    simulated: dict | None
    _gold: dict = field(default_factory=dict, repr=False)
    _indices: dict = field(default_factory=dict, repr=False)  # (table, key) → row positions, or a column
    _texts: dict | None = field(default=None, repr=False)
    _texts_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def index(self, table: str, key: str | tuple) -> dict:
        """Row positions of `labels`, `judgments` or `scores` by a key column (or columns), built once."""
        found = ("index", table, key)
        if found not in self._indices:
            frame = getattr(self, table)
            self._indices[found] = frame.groupby(list(key) if isinstance(key, tuple) else key,
                                                 sort=False, observed=True).indices
        return self._indices[found]

    def column(self, table: str, name: str, dtype) -> np.ndarray:
        """A column of `labels`, `judgments` or `scores` as an array, converted once."""
        key = ("column", table, name)
        if key not in self._indices:
            self._indices[key] = getattr(self, table)[name].to_numpy(dtype=dtype)
        return self._indices[key]

    @property
    def judges(self) -> list[str]:
        return [j.name for j in self.config.judges]

    @property
    def rule(self) -> tuple[float, float]:
        return float(self.config.causal.treat_high), float(self.config.causal.treat_low)

    def texts(self, pair_id: str) -> dict[str, str]:
        """A pair's texts. The first call reads them for every gold pair at once (the pairs the app
        shows); another pair is read on its own."""
        with self._texts_lock:
            if self._texts is None:
                self._texts = self._read_texts(sorted(set(self.labels["pair_id"])))
            if pair_id not in self._texts:
                self._texts.update(self._read_texts([pair_id]))
            return self._texts.get(pair_id, dict.fromkeys(TEXTS, ""))

    def _read_texts(self, pair_ids: list[str]) -> dict[str, dict[str, str]]:
        path = self.study.sample
        present = [c for c in TEXTS if c in pq.read_schema(path).names]
        table = pq.read_table(path, columns=["pair_id", *present], filters=[("pair_id", "in", pair_ids)]) \
            if pair_ids else None
        if table is None or table.num_rows == 0:
            return {}
        frame = table.to_pandas()
        return {str(row["pair_id"]): {c: str(row.get(c) or "") for c in TEXTS} for row in frame.to_dict("records")}

    @property
    def claims(self) -> dict[str, str]:
        """Per construct, the rubric version its claim is made under (`study.labels.claim_versions`): the
        current one once blind labels under it exist, else the version the audit was labelled under."""
        return labels_of.claim_versions(self.labels, self.versions)

    def label_versions(self, construct: str) -> list[str]:
        """Rubric versions under which gold labels of the construct exist: the current one first (the
        gold `empathy export` writes), then the others, most labels first."""
        versions = labels_of.versions_of(self.labels, construct)
        current = self.versions[construct]
        return [current, *(v for v in versions if v != current)] if current in versions else versions

    def gold(self, construct: str, label_version: str | None = None) -> Gold:
        """The gold labels of a construct under a rubric version: by default the study's current one
        (as exported), or — when no label was made under it — the version with the most labels."""
        versions = self.label_versions(construct)
        label_version = label_version or (versions[0] if versions else self.versions[construct])
        key = (construct, label_version)
        if key not in self._gold:
            units, annotators, humans = labels_of.gold_matrix(self.labels, construct, label_version)
            own = self.labels[self.labels["construct"] == construct]
            others = own[own["prompt_version"] != label_version]["prompt_version"].value_counts()
            self._gold[key] = Gold(construct, label_version, units, annotators, humans,
                                   {str(k): int(v) for k, v in others.items()})
        return self._gold[key]

    def rater_versions(self, construct: str) -> list[tuple[str, str]]:
        """(judge, rubric version) with scores for the construct: the current version first, then by recency."""
        own = self.judgments[self.judgments["construct"] == construct]
        order = own.groupby(["judge", "prompt_version"], sort=False).size().reset_index()[["judge", "prompt_version"]]
        rows = [(str(j), str(v)) for j, v in order.itertuples(index=False)]
        current = self.versions[construct]
        rank = {name: i for i, name in enumerate(self.judges)}
        return sorted(rows, key=lambda jv: (rank.get(jv[0], 99), jv[1] != current))

    def judge_vector(self, construct: str, name: str, version: str, units: list[str],
                     source: str = "score") -> np.ndarray:
        """A judge's score (or expected score) under a rubric version for the given pairs, NaN where missing."""
        rows = self.index("scores", ("construct", "judge", "prompt_version")).get((construct, name, version))
        if rows is None:
            return np.full(len(units), np.nan)
        values, pair_ids = self.column("scores", source, float)[rows], self.column("scores", "pair_id", object)[rows]
        return pd.Series(values, index=pair_ids).reindex(units).to_numpy(dtype=float)

    def panel_vector(self, construct: str, version: str, units: list[str], names: list[str] | None = None,
                     source: str = "score") -> np.ndarray:
        """The unrounded panel mean, only where every judge named scored the pair (as `export` forms it)."""
        names = names or self.judges
        matrix = np.column_stack([self.judge_vector(construct, n, version, units, source) for n in names])
        return np.where(np.isnan(matrix).any(axis=1), np.nan, matrix.mean(axis=1))


TEXTS = ("prev_response", "prompt", "response", "reply")


def read_sample(study: Workspace) -> pd.DataFrame:
    """The sample without its texts (most of the file's bytes): those are read when a pair is shown."""
    path = study.require(study.sample, f"empathy corpus sample {study.root} --n N")
    columns = [c for c in pq.read_schema(path).names if c not in TEXTS]
    if "pair_id" not in columns:
        raise StudyError(f"{path} has no pair_id column")
    return pd.read_parquet(path, columns=columns).set_index("pair_id", drop=False)


def load(study: Workspace) -> CalibrationData:
    """Read a study for calibration: its sample, the panel's judgments under every rubric version, gold labels."""
    config = study.config()
    sample = read_sample(study)
    frame = panel_judgments(judgments_frame(study), config)
    frame = frame[sample.index.get_indexer(frame["pair_id"]) >= 0]
    labels = labels_of.blind(labels_of.read_labels(study), sample.index)
    rubrics = config.rubrics()
    simulated = json.loads(study.simulation.read_text()) if study.simulation.exists() else None
    return CalibrationData(study, config, sample, frame.reset_index(drop=True), judge.version_scores(frame), labels,
                           {c: r.version for c, r in rubrics.items()}, rubrics, read_lock(study), simulated)


# ---------------------------------------------------------------------------------------------- overview


@dataclass
class OverviewRow:
    rater: str  # a judge's name, or "panel"
    version: str
    current: bool  # the study's current rubric version
    locked: bool
    figures: dict  # `stats.rater_figures`: n, alpha, ci, kappa, mae, bias, confusion, flip
    fail_rate: float | None
    cost_per_1k: float | None
    pairs_scored: int  # pairs of the whole sample this rater scored under this version
    gap: dict | None = None  # `stats.ceiling_gap`, when computed


@dataclass
class Overview:
    construct: str
    gold: Gold
    rows: list[OverviewRow]
    ceiling: dict  # human–human α on units with ≥ 2 annotators, and its interval (when bootstrapped)


def overview(data: CalibrationData, construct: str, label_version: str | None = None, *, boot: int = 0,
             seed: int = 0, progress: Progress = quiet) -> Overview:
    """The matrix of judge (and panel) × rubric version against the gold labels of one construct.

    Point figures are quick; `boot` > 0 adds the intervals (α, the ceiling, the gap), which take
    seconds on a thousand gold pairs (the app computes them in a worker).
    """
    gold = data.gold(construct, label_version)
    cache: dict = {}
    high, low = data.rule
    locked = (data.lock or {}).get("constructs", {}).get(construct)
    locked_keys = {(j["name"], j["rubric_version"]) for j in locked["judges"]} if locked else set()
    own = data.scores[data.scores["construct"] == construct]
    rows = []
    pairs = data.rater_versions(construct)
    for name, version in pairs:
        this = own[(own["judge"] == name) & (own["prompt_version"] == version)]
        items = int(this["n_ok"].sum() + this["n_failed"].sum())
        vector = data.judge_vector(construct, name, version, gold.units)
        rows.append(OverviewRow(
            name, version, version == data.versions[construct], (name, version) in locked_keys,
            stats.rater_figures(vector, gold.humans, high, low, boot=boot, seed=seed),
            float(this["n_failed"].sum() / items) if items else None,
            float(this["cost_usd"].sum() / len(this) * 1000) if len(this) else None,
            int(this["score"].notna().sum())))
        if boot:
            rows[-1].gap = stats.ceiling_gap(vector, gold.humans, boot=boot, seed=seed, cache=cache)
            progress(Step("intervals", len(rows), None))
    if len(data.judges) > 1:
        for version in dict.fromkeys(v for _, v in pairs):
            if not all((name, version) in pairs for name in data.judges):
                continue
            vector = data.panel_vector(construct, version, gold.units)
            members = own[(own["prompt_version"] == version) & own["judge"].isin(data.judges)]
            items = int(members["n_ok"].sum() + members["n_failed"].sum())
            whole = data.panel_vector(construct, version, list(data.sample.index))
            row = OverviewRow(PANEL, version, version == data.versions[construct],
                              bool(locked) and {(n, version) for n in data.judges} == locked_keys,
                              stats.rater_figures(vector, gold.humans, high, low, boot=boot, seed=seed),
                              float(members["n_failed"].sum() / items) if items else None,
                              float(members["cost_usd"].sum() / max(members["pair_id"].nunique(), 1) * 1000),
                              int(np.sum(~np.isnan(whole))))
            if boot:
                row.gap = stats.ceiling_gap(vector, gold.humans, boot=boot, seed=seed, cache=cache)
            rows.append(row)
    return Overview(construct, gold, rows, stats.human_ceiling(gold.humans, boot=boot, seed=seed))


# ---------------------------------------------------------------------------------------------- disagreements


def disagreements(data: CalibrationData, construct: str, rater: str = PANEL, version: str | None = None,
                  label_version: str | None = None) -> pd.DataFrame:
    """One row per gold pair: its gold score, the rater's score and their difference, model and topic —
    largest disagreement first."""
    gold = data.gold(construct, label_version)
    version = version or data.versions[construct]
    vector = data.panel_vector(construct, version, gold.units) if rater == PANEL else \
        data.judge_vector(construct, rater, version, gold.units)
    frame = pd.DataFrame({"pair_id": gold.units, "gold": gold.mean, "score": vector})
    frame["difference"] = frame["score"] - frame["gold"]
    meta = data.sample.reindex(gold.units)
    for column in ("model", "topic"):
        frame[column] = meta[column].astype(str).to_numpy() if column in meta.columns else ""
    frame["annotators"] = np.sum(~np.isnan(gold.humans), axis=0) if len(gold.annotators) else 0
    order = frame["difference"].abs().fillna(-1).sort_values(ascending=False, kind="stable").index
    return frame.loc[order].reset_index(drop=True)


@dataclass
class PairDetail:
    pair_id: str
    texts: dict[str, str]  # prompt, response, reply (the ones the rubric shows) and the previous turn
    annotators: dict[str, float]  # annotator → score
    judges: list[dict]  # judge, version, score, expected_score (None where not recorded), rationale
    gold: float | None  # the mean over the annotators
    gold_level: int | None  # … on the rubric's levels
    rater: str  # the judge (or the panel) the pair is compared with
    rater_score: float | None  # its score (the panel: the unrounded mean) under the rubric version shown
    rater_level: int | None


def _level(value: float | None) -> int | None:
    return None if value is None else int(stats.to_levels([value])[0])


def pair_detail(data: CalibrationData, construct: str, pair_id: str, rater: str = PANEL, version: str | None = None,
                label_version: str | None = None) -> PairDetail:
    """One gold pair as the disagreements screen shows it: its texts, each annotator's label, every
    judge's score and rationale under every rubric version, and the gold and rater levels."""
    texts = data.texts(pair_id)
    labels = data.labels.iloc[data.index("labels", "pair_id").get(pair_id, [])]
    labels = labels[labels["construct"] == construct]
    gold = data.gold(construct, label_version)
    labels = labels[labels["prompt_version"] == gold.label_version]
    own = data.judgments.iloc[data.index("judgments", "pair_id").get(pair_id, [])]
    own = own[own["construct"] == construct]
    judged = []
    for record in own[own["score"].notna()].drop_duplicates(["judge", "prompt_version"], keep="last").itertuples():
        expected = None if pd.isna(record.expected_score) else float(record.expected_score)
        judged.append({"judge": record.judge, "version": record.prompt_version, "score": record.score,
                       "expected_score": expected, "rationale": record.rationale or ""})
    judged.sort(key=lambda j: (j["judge"], j["version"] != data.versions[construct]))
    annotators = dict(zip(labels["annotator"], labels["score"]))
    version = version or data.versions[construct]
    score = (data.panel_vector(construct, version, [pair_id]) if rater == PANEL else
             data.judge_vector(construct, rater, version, [pair_id]))[0]
    score = None if np.isnan(score) else float(score)
    mean = float(np.mean(list(annotators.values()))) if annotators else None
    return PairDetail(pair_id, texts, annotators, judged, mean, _level(mean), rater, score, _level(score))


# ---------------------------------------------------------------------------------------------- calibration


@dataclass
class CalibrationFit:
    construct: str
    version: str  # the rubric version of the judges' scores
    judges: list[str]
    source: str  # "score" or "expected_score"
    how: str  # the aggregate
    label_version: str
    units: list[str]  # gold pairs used (every chosen judge scored them)
    dropped: int  # gold pairs left out because some chosen judge has no value there
    cross: stats.CrossFit
    before: dict[str, dict]  # rater (judges, "panel") → figures of the raw scores on `units`
    after: dict[str, dict]  # the same, held out (cross-fitted by user)
    ceiling: dict  # human ceiling and the held-out panel's gap to it on the same units
    coverage: tuple[int, int]  # sample pairs every chosen judge scored under `version`, of all sample pairs
    arm_change: float | None  # share of those pairs whose arm changes from the raw mean to the calibrated panel
    folds: int
    seed: int


def fit(data: CalibrationData, construct: str, judges: list[str], *, version: str | None = None,
        source: str = "score", how: str = "mean", folds: int = 5, seed: int = 0, boot: int = 0) -> CalibrationFit:
    """Isotonic maps per judge and the panel aggregate, cross-fitted by user on the gold labels; the
    before/after figures are on held-out folds only.

    Judges and gold labels are taken under one rubric version (`version`; default: the version the
    construct's claim is made under, `CalibrationData.claims`): a map from judges who read one text
    to labels made under another would be locked as if the two measured the same thing.
    """
    if not judges:
        raise StudyError("choose at least one judge to calibrate")
    if source not in SOURCES:
        raise StudyError(f"source must be one of {', '.join(SOURCES)} (got {source!r})")
    version = version or data.claims[construct]
    gold = data.gold(construct, version)
    if not gold.units:
        where = ", ".join(f"{short(v)} ({n})" for v, n in gold.other_versions.items()) or "none"
        raise StudyError(
            f"no blind gold labels of {construct} under rubric {short(version)}: a calibration fits judges and "
            f"labels made under the same rubric (labels under other versions: {where}). "
            f"`empathy annotate push` puts the audit pairs before the annotators under the current rubric")
    raw = np.column_stack([data.judge_vector(construct, n, version, gold.units, source) for n in judges])
    for j, name in enumerate(judges):
        if np.isnan(raw[:, j]).all():
            what = "expected score (it needs logprobs = true)" if source == "expected_score" else "score"
            raise StudyError(f"judge {name} has no {what} on the gold pairs of {construct} under rubric {version}")
    keep = ~np.isnan(raw).any(axis=1) & ~np.isnan(gold.mean)
    units = [u for u, k in zip(gold.units, keep) if k]
    raw, humans, target = raw[keep], gold.humans[:, keep], gold.mean[keep]
    groups = data.sample.reindex(units)["user_id"].astype(str).to_numpy() if "user_id" in data.sample.columns \
        else np.array(units)
    try:
        cross = stats.cross_fit(raw, target, groups, how, folds=folds, seed=seed)
    except AgreementError as exc:
        raise StudyError(f"cannot calibrate {construct}: {exc}") from exc
    high, low = data.rule
    raw_panel = raw.mean(axis=1)
    # Intervals (`boot`) for the panel and the ceiling gap only: those are what a lock records.
    before = {name: stats.rater_figures(raw[:, j], humans, high, low) for j, name in enumerate(judges)}
    after = {name: stats.rater_figures(cross.held_out_judges[:, j], humans, high, low) for j, name in enumerate(judges)}
    before[PANEL] = stats.rater_figures(raw_panel, humans, high, low, boot=boot, seed=seed)
    after[PANEL] = stats.rater_figures(cross.held_out, humans, high, low, boot=boot, seed=seed)
    whole = np.column_stack([data.judge_vector(construct, n, version, list(data.sample.index), source) for n in judges])
    scored = ~np.isnan(whole).any(axis=1)
    calibrated = cross.final.predict(whole[scored]) if scored.any() else np.array([])
    arm_change = stats.flip_share(whole[scored].mean(axis=1), calibrated, high, low) if scored.any() else None
    return CalibrationFit(construct, version, list(judges), source, how, gold.label_version, units,
                          int(len(gold.units) - len(units)), cross, before, after,
                          stats.ceiling_gap(cross.held_out, humans, boot=boot, seed=seed),
                          (int(scored.sum()), len(data.sample)), arm_change, folds, seed)


# ---------------------------------------------------------------------------------------------- the lock


def lock(data: CalibrationData, result: CalibrationFit, *, boot: int = 1_000, now: datetime | None = None,
         override: bool = False) -> Path:
    """Lock the calibration of one construct (`study.lock`): the fit again with `boot` bootstrap draws
    for the evidence — held-out figures with intervals, the ceiling gap, n, the date.

    A held-out panel α below `study.lock.MIN_ALPHA` (or undefined) is refused unless `override`; an
    override is written into the lock's evidence.
    """
    alpha = result.after[PANEL]["alpha"]
    if below_floor(alpha) and not override:
        raise StudyError(f"the calibrated panel's held-out α ({'undefined' if alpha is None else f'{alpha:.2f}'}) is "
                         f"below the floor of {MIN_ALPHA} a lock needs (Krippendorff's lowest level for tentative "
                         "conclusions): locked, these scores would be reported as validated. Improve the rubric or "
                         "the panel, or lock with the override (it is recorded in the lock and said wherever the "
                         "lock is used)")
    identity = {j.name: j for j in data.config.judges}
    evidence_fit = fit(data, result.construct, result.judges, version=result.version, source=result.source,
                       how=result.how, folds=result.folds, seed=result.seed, boot=boot) if boot else result
    locked = lock_entry(
        judges=[identity[name] for name in result.judges], version=result.version, source=result.source,
        final=evidence_fit.cross.final, how=result.how, locked_at=now or datetime.now(timezone.utc),
        evidence={
            "simulated": bool(data.simulated),
            "label_version": result.label_version,
            "n_gold": len(result.units),
            "dropped_gold": result.dropped,
            "annotators": data.gold(result.construct, result.label_version).annotators,
            "folds": result.folds, "seed": result.seed, "bootstrap": boot,
            "grouped_by": "user_id",
            "before": evidence_fit.before,
            "after_held_out": evidence_fit.after,
            "ceiling": evidence_fit.ceiling,
            "coverage": {"scored": result.coverage[0], "sample": result.coverage[1]},
            "arm_change": result.arm_change,
            "treatment_rule": {"high": data.rule[0], "low": data.rule[1]},
            "current_rubric": data.versions[result.construct],  # the study's rubric when locked
            "override": ({"floor": MIN_ALPHA, "alpha_held_out": alpha,
                          "reason": "locked below the agreement floor on the user's explicit override"}
                         if below_floor(alpha) else None),
        })
    data.lock = write_lock(data.study, result.construct, locked)
    return data.study.calibration


# ---------------------------------------------------------------------------------------------- rubric copies


def rubric_text(study: Workspace, construct: str) -> str:
    """The rubric file the study uses for a construct: its own copy, else the packaged file."""
    return judge.rubric_bytes(construct, study.rubrics).decode("utf-8")


def save_rubric(study: Workspace, construct: str, text: str) -> judge.Rubric:
    """Check an edited rubric and write it as the study's copy; returns it with its (new) version."""
    config = study.config()
    context = config.judge.attachment_context if construct == "attachment" else None
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / f"{construct}.toml").write_text(text, encoding="utf-8")
        try:
            judge.load_rubric(construct, context, Path(scratch))
        except judge.JudgeError as exc:
            raise StudyError(str(exc).replace(str(Path(scratch) / f"{construct}.toml"), "the edited rubric")) from exc
    study.rubrics.mkdir(parents=True, exist_ok=True)
    write_text(study.rubric_copy(construct), text)
    return study.config().rubrics()[construct]


def gold_pairs(data: CalibrationData) -> list[str]:
    """Every pair with a gold label of either construct (what a rubric run judges)."""
    return sorted(set(data.labels["pair_id"]))

