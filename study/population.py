"""The study's population: which turn-pairs are socio-emotional, and how well the filter knows it.

Two passes decide it. `empathy corpus build` runs the cheap pre-filter (rules over the pair and
its preceding exchange, tuned for recall). `classify` sends the candidates it kept to the judge
panel with the binary rubric `prompts/socioemotional.toml`, through the same machinery as the
study's judgments (versions, an append-only log, cache, cost accounting, dry run).

The filter audit measures both passes: a stratified sample of a frame built *without* the filter
(`[corpus] keep_transactional = true`), labelled blind in a binary Label Studio project, from
which design-weighted precision and recall follow (`corpus` audit design).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from empathy_study import annotation, corpus, judge
from empathy_study.annotation import socioemotional as binary
from empathy_study.shared import write_json, write_parquet
from empathy_study.study.progress import Progress, Step, quiet
from empathy_study.study.workspace import StudyError, Workspace

AUDIT_FILE = "filter_audit.parquet"
AUDIT_DESIGN_FILE = "filter_audit.json"
AUDIT_LABELS_FILE = "filter_audit_labels.parquet"
RUBRIC = "socioemotional"


def _frame(study: Workspace) -> pd.DataFrame:
    """The audit frame: the study's turn-pairs, which must have been built with the filter off."""
    pairs = corpus.read_table(study.require(study.turn_pairs, f"empathy corpus build --out {study.root}"))
    funnel = json.loads(study.funnel.read_text()) if study.funnel.exists() else {}
    if not funnel.get("config", {}).get("keep_transactional", False):
        raise StudyError(f"{study.turn_pairs} was built with the socio-emotional filter on: an audit frame needs "
                         "every pair, so build it with `[corpus] keep_transactional = true`")
    return pairs


@dataclass
class AuditDraw:
    sample: pd.DataFrame
    design: dict
    written: list[Path]


def draw_filter_audit(study: Workspace, sizes: Mapping[str, int], seed: int = 0) -> AuditDraw:
    """The stratified audit sample of the study's (unfiltered) turn-pairs → filter_audit.parquet/.json.

    Drawing again with the same seed and larger sizes keeps every pair drawn before (a second wave).
    """
    sample, design = corpus.draw_audit(_frame(study), sizes, seed)
    state = _audit_state(study)
    previous = state.get("design")
    if previous and previous["seed"] == seed and _shrinks(previous, design):
        raise StudyError("a new draw may only add pairs to each stratum of the earlier audit sample")
    design["turn_pairs_file"] = str(study.turn_pairs)
    state["design"] = design
    write_parquet(study.root / AUDIT_FILE, sample)
    write_json(study.root / AUDIT_DESIGN_FILE, state)
    return AuditDraw(sample, design, [study.root / AUDIT_FILE, study.root / AUDIT_DESIGN_FILE])


def _shrinks(before: dict, after: dict) -> bool:
    sizes = {s["stratum"]: s["sample"] for s in after["strata"]}
    return any(sizes.get(s["stratum"], 0) < s["sample"] for s in before["strata"])


def _audit_state(study: Workspace) -> dict:
    path = study.root / AUDIT_DESIGN_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _project(study: Workspace) -> tuple[binary.SocioEmotionalProject, dict, str]:
    url = os.environ.get("LABEL_STUDIO_URL") or study.config().annotation.url
    client = annotation.connect(url, os.environ.get("LABEL_STUDIO_API_KEY"))
    state = _audit_state(study)
    title = f"{study.config().study.name} · population"
    return binary.SocioEmotionalProject(client, title, state.get("project_id")), state, url


def push_filter_audit(study: Workspace) -> dict:
    """Send the audit sample to its Label Studio project (created on first use); blind tasks only."""
    sample = pd.read_parquet(study.require(study.root / AUDIT_FILE, f"empathy corpus audit draw {study.root}"))
    project, state, url = _project(study)
    new, existing = project.push(judge.load_rubric(RUBRIC), sample.to_dict("records"))
    state.update(project_id=project.project_id, url=url, salt=state.get("salt") or secrets.token_hex(8))
    write_json(study.root / AUDIT_DESIGN_FILE, state)
    return {"project": project.title, "project_id": project.project_id, "new_tasks": new, "existing_tasks": existing}


@dataclass
class AuditLabels:
    labels: pd.DataFrame  # LABEL_COLUMNS of annotation.socioemotional
    labelled: int  # audit pairs with at least one answer
    sampled: int
    skipped: int
    unparsed: int
    path: Path


def pull_filter_audit(study: Workspace) -> AuditLabels:
    """Every answer of the project → filter_audit_labels.parquet (replaced whole; written only after
    everything was read)."""
    sample = pd.read_parquet(study.require(study.root / AUDIT_FILE, f"empathy corpus audit draw {study.root}"))
    project, state, _ = _project(study)
    if project.find() is None:
        raise StudyError(f"no Label Studio project {project.title!r}: run `empathy corpus audit push {study.root}`")
    pulled = project.pull(state.get("salt") or "")
    labels = pulled.labels[pulled.labels["pair_id"].isin(set(sample["pair_id"]))]
    path = study.root / AUDIT_LABELS_FILE
    write_parquet(path, labels)
    return AuditLabels(labels, labels["pair_id"].nunique(), len(sample), sum(pulled.skipped.values()),
                       pulled.unparsed, path)


# --- the judge pass ------------------------------------------------------------------------------

CLASSIFY_DIR = "population"  # DIR/population/judgments.jsonl (+ judge_runs.jsonl): the judge pass's own log
VERDICTS_FILE = "socioemotional.parquet"
PAIR_TEXTS = ("pair_id", "prev_prompt", "prev_response", "prompt", "response", "reply")
JUDGE_STAGE = "judge_pass"


def classify_log(study: Workspace) -> judge.JudgmentLog:
    return judge.JudgmentLog(study.root / CLASSIFY_DIR / judge.LOG_FILE)


def classify_judges(study: Workspace, names: Collection[str] | None = None) -> list[judge.JudgeConfig]:
    """Who runs the judge pass: the named judges of the study's panel (`names`, else `[corpus]
    classify_judges`), or, when none is named, the embedded local judge."""
    config = study.config()
    names = list(names) if names else list(config.corpus.classify_judges)
    if not names:
        return judge.default_panel()
    panel = {j.name: j for j in config.judges}
    unknown = [n for n in names if n not in panel]
    if unknown:
        raise judge.JudgeError(f"no judge named {unknown[0]!r} in the panel ({', '.join(panel) or 'empty'}): "
                               "the judge pass uses judges of the study's [[judges]] tables")
    batched = [n for n in names if panel[n].batch]
    if batched:  # the pass calls judges live; a batch judge would silently run at live prices
        raise judge.JudgeError(f"judge {batched[0]!r} is a batch judge (batch = true): the judge pass calls its "
                               "judges live — name a judge without batch = true")
    return [panel[n] for n in dict.fromkeys(names)]


def socioemotional_task(pairs: pd.DataFrame) -> judge.Task:
    """The judge pass as one panel task: every pair with its preceding exchange, the binary rubric."""
    rows = pairs.reindex(columns=list(PAIR_TEXTS)).fillna("").to_dict("records")
    return judge.Task(RUBRIC, judge.load_rubric(RUBRIC), rows)


@dataclass
class ClassifyPlan:
    plans: list[judge.JudgePlan]
    lines: list[judge.DryRunLine]
    candidates: int
    torn: int

    @property
    def calls(self) -> int:
        return sum(len(p.items) for p in self.plans)


def _candidates(study: Workspace, pairs: Collection[str] | None) -> pd.DataFrame:
    table = corpus.read_table(study.require(study.turn_pairs, f"empathy corpus build --out {study.root}"))
    if pairs is not None:
        table = table[table["pair_id"].isin(set(pairs))]
    return table


def plan_classify(study: Workspace, *, judges: Collection[str] | None = None,
                  pairs: Collection[str] | None = None) -> ClassifyPlan:
    """What the judge pass would call and cost (a dry run): the cheap pass's candidates — the
    study's turn-pairs, or `pairs` of them — not yet judged under the rubric's current version."""
    candidates = _candidates(study, pairs)
    state = classify_log(study).read()
    plans = judge.plan_panel([socioemotional_task(candidates)], classify_judges(study, judges), state,
                             study.config().judge)
    return ClassifyPlan(plans, judge.dry_run(plans), len(candidates), state.torn)


@dataclass
class ClassifyResult:
    plan: ClassifyPlan
    summary: judge.RunSummary | None  # None: nothing was left to judge
    verdicts: pd.DataFrame
    counts: dict
    written: list[Path]


def classify(study: Workspace, *, judges: Collection[str] | None = None, pairs: Collection[str] | None = None,
             max_cost: float | None = None, progress: Progress = quiet,
             stop: Callable[[], bool] | None = None) -> ClassifyResult:
    """The judge pass: the panel judges each candidate with `prompts/socioemotional.toml`; every call
    is appended to DIR/population/judgments.jsonl as it returns (a re-run costs nothing for what is
    done). Writes socioemotional.parquet (a verdict per candidate) and the pass's counts into
    funnel.json (`pairs` narrows the run and writes neither: a measurement, not the study)."""
    from empathy_study.study.judging import run_spec  # the run record says what every judge run says

    config = study.config()
    plan = plan_classify(study, judges=judges, pairs=pairs)
    log = classify_log(study)
    summary = None
    if plan.calls:
        panel = [p.judge for p in plan.plans]
        run_id = log.start_run({**run_spec(config), "panel": [j.model_dump() for j in panel],
                                "prompt_versions": {RUBRIC: judge.load_rubric(RUBRIC).version},
                                "max_cost": max_cost, "calls_planned": plan.calls, "pass": JUDGE_STAGE})
        done, failed = 0, 0

        def on_record(record: judge.JudgmentRecord) -> None:
            nonlocal done, failed
            done += 1
            failed += record.score is None
            progress(Step("judging candidates", done, plan.calls, {"failed": failed}))

        progress(Step("starting the judges", 0, None))
        with judge.open_endpoints(panel) as endpoints:
            summary = asyncio.run(judge.run_panel(plan.plans, endpoints, log, config.judge, max_cost, on_record,
                                                  run_id=run_id, stop=stop))
    candidates = _candidates(study, pairs)
    verdicts = verdicts_from_log(log.read().records, [p.judge for p in plan.plans], candidates["pair_id"])
    counts = verdict_counts(verdicts)
    written = []
    if pairs is None:
        write_parquet(study.root / VERDICTS_FILE, verdicts)
        _record_in_funnel(study, counts, [p.judge for p in plan.plans])
        written = [study.root / VERDICTS_FILE, study.funnel]
    return ClassifyResult(plan, summary, verdicts, counts, written)


def verdicts_from_log(records: list[judge.JudgmentRecord], judges: list[judge.JudgeConfig],
                      pair_ids) -> pd.DataFrame:
    """One row per candidate: how many judges answered (first draw, current rubric version), how
    many said yes, and the verdict — yes when at least half of them did (a tie keeps the pair: the
    pass errs towards the population); None while no judge has answered."""
    version = judge.load_rubric(RUBRIC).version
    frame = judge.current_judgments(judge.records_frame(records), judges, {RUBRIC: version})
    first = judge.first_draws(frame) if not frame.empty else frame
    by_pair = first.groupby("pair_id")["score"].agg(["size", "sum"]) if not first.empty else pd.DataFrame(
        columns=["size", "sum"])
    out = pd.DataFrame({"pair_id": list(pair_ids)})
    out["judges"] = out["pair_id"].map(by_pair["size"]).fillna(0).astype(int)
    out["yes"] = out["pair_id"].map(by_pair["sum"]).fillna(0).astype(int)
    verdict = (2 * out["yes"] >= out["judges"]).astype("boolean")
    verdict[out["judges"] == 0] = pd.NA
    out["verdict"] = verdict
    return out


def verdict_counts(verdicts: pd.DataFrame) -> dict:
    return {"candidates": len(verdicts), "judged": int(verdicts["verdict"].notna().sum()),
            "kept": int(verdicts["verdict"].fillna(False).sum()),
            "unjudged": int(verdicts["verdict"].isna().sum())}


def _record_in_funnel(study: Workspace, counts: dict, judges: list[judge.JudgeConfig]) -> None:
    """funnel.json gains the judge pass: a stage after `deduplicated` (pairs it keeps) and its counts."""
    funnel = json.loads(study.funnel.read_text()) if study.funnel.exists() else {"stages": [], "rejected": {}}
    stages = [s for s in funnel.get("stages", []) if s["name"] != JUDGE_STAGE]
    funnel["stages"] = stages + [{"name": JUDGE_STAGE, "rows": counts["kept"], "unit": "turn_pairs"}]
    rejected = dict(funnel.get("rejected", {}))
    rejected["judge_not_socioemotional"] = counts["judged"] - counts["kept"]
    rejected["judge_unjudged"] = counts["unjudged"]
    funnel["rejected"] = dict(sorted(rejected.items()))
    funnel[JUDGE_STAGE] = {**counts, "rubric": RUBRIC, "rubric_version": judge.load_rubric(RUBRIC).version,
                           "judges": [{"name": j.name, "model": j.model} for j in judges],
                           "log": str(Path(CLASSIFY_DIR) / judge.LOG_FILE), "verdicts": VERDICTS_FILE}
    write_json(study.funnel, funnel)


def population_pairs(study: Workspace, pairs: pd.DataFrame) -> tuple[pd.DataFrame, dict | None]:
    """The study's population: the turn-pairs the judge pass kept, once `empathy corpus classify` has
    run (socioemotional.parquet exists); the cheap pass's candidates before that."""
    path = study.root / VERDICTS_FILE
    if not path.exists():
        return pairs, None
    verdicts = pd.read_parquet(path)
    stale = set(pairs["pair_id"]) - set(verdicts["pair_id"])
    if stale:
        raise StudyError(f"{len(stale)} turn-pairs have no judge-pass verdict ({path} predates the corpus): "
                         f"run `empathy corpus classify {study.root}` again")
    kept = set(verdicts.loc[verdicts["verdict"].fillna(False).astype(bool), "pair_id"])
    return pairs[pairs["pair_id"].isin(kept)], {"verdicts_file": str(path), **verdict_counts(verdicts)}


# --- measurement on a committed labelled set ------------------------------------------------------

def read_audit(path: Path) -> pd.DataFrame:
    """A labelled audit set as committed (data/socioemotional_audit.jsonl): one row per pair, its
    design (stratum, stratum_size, inclusion_prob), its label and its texts."""
    return pd.read_json(path, lines=True, dtype={"pair_id": str, "conversation_id": str})


def filter_decisions(audit: pd.DataFrame, classifier: bool = False, progress: Progress = quiet) -> pd.DataFrame:
    """Which pairs the old keyword filter and the cheap pass keep, decided afresh from the texts; with
    `classifier`, also the default path of `empathy corpus build` (the cheap pass, then the packaged
    offline classifier on its candidates: `default_kept`)."""
    texts = audit[["prompt", "response", "reply", "prev_prompt", "prev_response"]].fillna("")
    keyword = [corpus.transactional_reason(p, r, y) is None for p, r, y in
               zip(texts["prompt"], texts["response"], texts["reply"])]
    cheap = [corpus.prefilter_reason(p, r, y or None, pp or None, pr or None) is None for p, r, y, pp, pr in
             zip(texts["prompt"], texts["response"], texts["reply"], texts["prev_prompt"], texts["prev_response"])]
    decisions = pd.DataFrame({"pair_id": audit["pair_id"], "keyword_kept": keyword, "prefilter_kept": cheap})
    if classifier:
        decisions["default_kept"] = corpus.classify_pairs(
            audit.reset_index(drop=True), np.array(cheap, dtype=bool),
            on_progress=lambda name, done, total, counters: progress(Step(name, done, total, counters)))[0]
    return decisions


def log_judges(records: list[judge.JudgmentRecord]) -> list[judge.JudgeConfig]:
    """The judges a judge-pass log holds, as identities (name, model, temperature)."""
    seen = dict.fromkeys((r.judge, r.model, r.temperature) for r in records if r.construct == RUBRIC)
    return [judge.JudgeConfig(name=n, model=m, temperature=t) for n, m, t in seen]


def measure_filters(audit: pd.DataFrame, judgments: Path | None = None, classifier: bool = False,
                    progress: Progress = quiet) -> dict:
    """Design-weighted precision, recall, kept share and prevalence (95 % Korn–Graubard CIs) of the
    old keyword filter, the cheap pass, with `classifier` the default path (cheap pass + the packaged
    classifier) and the share of each filter's kept pairs whose prompt, response or reply holds a
    code fence, and — given the judge pass's log over (some of) the cheap pass's candidates — the
    judge pass among those candidates and the whole two-pass filter.

    The judge pass may have judged only a subsample of the candidates: a second phase, a simple
    random sample within each label (every positive candidate and a random part of the negative
    ones, say). Each judged candidate then stands for 1 / (its label's judged share) candidates; the
    variance is the first phase's, over those expanded values. A judged candidate whose judgment
    failed counts as dropped (the pass did not keep it).
    """
    decisions = filter_decisions(audit, classifier, progress)
    truth = audit["socio_emotional"].astype(bool).to_numpy()
    strata = audit["stratum"].to_numpy()
    sizes = audit.groupby("stratum")["stratum_size"].first().astype(int).to_dict()
    fence = corpus.has_fence(audit)

    def rates(kept, among=None) -> dict:
        figures = {k: v.as_dict() for k, v in corpus.filter_rates(truth, kept, strata, sizes, among).items()}
        if among is None:
            figures["fence_share"] = corpus.design_ratio(kept & fence, kept, strata, sizes).as_dict()
        return figures

    cheap = decisions["prefilter_kept"].to_numpy()
    figures = {"pairs": len(audit), "positives": int(truth.sum()),
               "filters": {"keyword (old)": rates(decisions["keyword_kept"].to_numpy()), "cheap pass": rates(cheap)}}
    if classifier:
        figures["filters"]["cheap pass + classifier (default)"] = rates(decisions["default_kept"].to_numpy())
    if judgments is None:
        return figures
    records = judge.JudgmentLog(judgments).read().records
    judges = log_judges(records)
    verdicts = verdicts_from_log(records, judges, audit["pair_id"])
    version = judge.load_rubric(RUBRIC).version
    judged_ids = {r.pair_id for r in records if r.construct == RUBRIC and r.prompt_version == version}
    judged = audit["pair_id"].isin(judged_ids).to_numpy() & cheap
    said_yes = verdicts["verdict"].fillna(False).astype(bool).to_numpy() & judged
    share = {label: judged[cheap & (truth == label)].sum() / max(1, (cheap & (truth == label)).sum())
             for label in (True, False)}
    if min(share.values()) == 0:
        raise StudyError("the judge pass's log holds no judged candidate of one label: nothing to measure")
    expand = np.where(judged, 1 / np.where(truth, share[True], share[False]), 0.0)  # second-phase weight

    def ratio(numerator, denominator) -> dict:
        return corpus.design_ratio(numerator, denominator, strata, sizes).as_dict()

    yes, hit = said_yes * expand, (said_yes & truth) * expand
    figures["filters"]["judge pass (among candidates)"] = {
        "precision": ratio(hit, yes), "recall": ratio(hit, truth * expand),
        "kept_share": ratio(yes, cheap * expand), "prevalence": ratio(truth * expand, cheap * expand)}
    figures["filters"]["two-pass filter"] = {
        "precision": ratio(hit, yes), "recall": ratio(hit, truth.astype(float)),
        "kept_share": ratio(yes, np.ones(len(audit))), "prevalence": ratio(truth.astype(float), np.ones(len(audit)))}
    latency = [r.latency_ms for r in records if r.construct == RUBRIC and r.latency_ms is not None
               and r.pair_id in judged_ids]
    figures["judge_pass"] = {
        "candidates": int(cheap.sum()), "judged": int(judged.sum()),
        "judged_positive": int((judged & truth).sum()), "judged_negative": int((judged & ~truth).sum()),
        "second_phase_share": {"positive": float(share[True]), "negative": float(share[False])},
        "failed": int((judged & verdicts["verdict"].isna().to_numpy()).sum()),
        "judges": [j.name for j in judges], "rubric_version": version,
        "median_latency_s": float(np.median(latency)) / 1000 if latency else None,
        "mean_latency_s": float(np.mean(latency)) / 1000 if latency else None,
    }
    return figures
