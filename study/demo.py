"""`empathy demo`: every stage, in order, on the embedded defaults (bundled corpus, local judge).

This module is the wiring only: it runs the stage functions and hands each result to a `DemoView`,
which decides how to show it (the CLI's is `study.cli.demo.ConsoleView`). Nothing here prints.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from empathy_study import annotation, causal, corpus, study
from empathy_study.study import calibrate, simulated
from empathy_study.study.progress import Progress
from empathy_study.study.workspace import Workspace

DEMO_SAMPLE = 12  # the local judge takes 4-6 s a call on 2 cores: this keeps the demo to minutes
DEMO_SEED = 0
DEMO_SWAP_CHECK = 4  # attachment pairs re-judged with the response shown / swapped
PLANTED_PAIRS = 3_000
MIN_ARM = 20  # treated and control pairs needed before the demo estimates on judged scores
CALIBRATION_DIR = "calibration-simulated"
CALIBRATION_PAIRS, CALIBRATION_GOLD = 600, 150


@dataclass
class JudgeDiagnostics:
    report: dict  # `study.report_judges`


@dataclass
class Pushed:
    study: Workspace
    results: list | None  # `study.push`'s projects, or None when Label Studio is not set up
    reason: str | None = None
    audit: object | None = None  # `study.push`'s AuditReach: what the demo's (small) audit drew


@dataclass
class Estimated:
    result: causal.EstimateResult
    report: Path


@dataclass
class Skipped:
    reason: str  # why a step had nothing to do


@dataclass
class PlantedRow:
    label: str  # method · estimand
    estimate: float
    ci: tuple[float, float]
    interval_valid: bool
    truth: float
    target: str  # what the truth is the effect on


@dataclass
class PlantedComparison:
    rows: list[PlantedRow]
    result: causal.EstimateResult
    report: Path


@dataclass
class CalibrationPreview:
    study: Workspace
    overview: calibrate.Overview  # SIMULATED judges against SIMULATED annotators, empathy


class DemoView(Protocol):
    def section(self, title: str) -> None: ...
    def progress(self) -> AbstractContextManager[Progress]: ...
    def status(self, text: str) -> AbstractContextManager[object]: ...
    def show(self, result: object) -> None: ...
    def done(self, demo: Workspace, calibration: Workspace) -> None: ...


def run_demo(out: Path, view: DemoView) -> None:
    demo = Workspace(out)
    if not demo.config_path.exists():
        demo.init()
        text = demo.config_path.read_text(encoding="utf-8")
        demo.config_path.write_text(text.replace("swap_check_pairs = 20", f"swap_check_pairs = {DEMO_SWAP_CHECK}"),
                                    encoding="utf-8")
    view.section("1 · corpus: the bundled real ShareGPT conversations → turn-pairs")
    with view.progress() as progress:
        view.show(study.build_corpus(demo, "sharegpt", [], progress))
    view.section(f"2 · a stratified sample of {DEMO_SAMPLE} pairs")
    view.show(study.draw_sample(demo, DEMO_SAMPLE, DEMO_SEED))
    view.section("3 · the local judge panel (SmolLM2 on llama.cpp, no network) scores the sample")
    with view.progress() as progress:
        view.show(study.run_judges(demo, progress=progress))
    study.export_scores(demo)
    view.show(JudgeDiagnostics(study.report_judges(demo)))
    view.show(study.export(demo))
    view.section("4 · human ground truth: the blind audit sample goes to Label Studio")
    view.show(push_to_label_studio(demo))
    view.section("5 · causal estimates on the judged sample")
    view.show(estimate_judged(demo, view))
    view.section("6 · causal estimates on a semi-synthetic study (real text, planted effect)")
    view.show(planted_study(out / "semisynthetic", view))
    view.section("7 · calibration: the judges against (SIMULATED) annotators, in the terminal app")
    preview = calibration_study(demo, out / CALIBRATION_DIR)
    view.show(preview)
    view.done(demo, preview.study)


def push_to_label_studio(demo: Workspace) -> Pushed:
    try:
        # The demo's sample is small: its audit serves agreement and calibration, never a corrected estimate.
        pushed = study.push(demo, review=False, small_audit=True)
        return Pushed(demo, pushed.projects, audit=pushed.audit)
    except annotation.AnnotationError as exc:
        return Pushed(demo, None, str(exc))


def estimate_judged(demo: Workspace, view: DemoView) -> Estimated | Skipped:
    if not demo.scored_pairs.exists():
        return Skipped("no scored_pairs.parquet yet (the judge has not scored the sample)")
    frame = pd.read_parquet(demo.scored_pairs)
    config = demo.config().causal
    rule = causal.TreatmentRule(config.treat_high, config.treat_low)
    arms = rule.assign(frame["empathy"]).value_counts()
    treated, control = int(arms.get(1.0, 0)), int(arms.get(0.0, 0))
    if min(treated, control) < MIN_ARM:
        return Skipped(f"not estimating on the judged sample: {treated} treated and {control} control pairs under "
                       f"the rule ({rule.describe()}); each arm needs at least {MIN_ARM}. A larger sample "
                       "(`empathy corpus sample --n`) and judge run would give them.")
    with view.progress() as progress:
        return Estimated(study.estimate(demo.scored_pairs, demo.estimates, config, progress),
                         demo.estimates / "report.html")


def planted_study(out: Path, view: DemoView) -> PlantedComparison:
    """Real turn-pairs (topic filter off, for enough text), simulated scores, a known effect — read by a
    simulated judge that errs, with simulated human labels on a random 20 % audit sample."""
    out.mkdir(parents=True, exist_ok=True)
    funnel = corpus.Funnel("sharegpt")
    with view.status("reading every English turn-pair of the bundled corpus"):
        corpus.build_corpus(corpus.read_source("sharegpt", [], funnel), out,
                            corpus.CorpusConfig(keep_transactional=True), funnel)
    pairs = pd.read_parquet(out / corpus.TURN_PAIRS_FILE)
    embedder = causal.Embedder()
    with view.status(f"embedding {PLANTED_PAIRS:,} prompts and simulating scores"):
        scored, truth = causal.semisynthetic_study(pairs, PLANTED_PAIRS, DEMO_SEED, embedder)
    judged = causal.judge_labels(scored, truth, causal.JudgeNoise(), audit_rate=0.2, seed=DEMO_SEED)
    judged.to_parquet(out / "scored_pairs.parquet")
    truth.to_parquet(out / "truth.parquet")
    with view.progress() as progress:
        result = study.estimate(out / "scored_pairs.parquet", out / "estimates", causal.CausalConfig(seed=DEMO_SEED),
                                progress)
    rows = []
    for r in result.rows:
        if r.weighted or r.estimate != r.estimate:
            continue
        targets = causal.target_pairs(r, result, judged, causal.TreatmentRule(), truth)
        if targets is None:
            continue
        what = f"ATT of the {len(targets)} treated kept" if r.estimand == "ATT_matched" else "ATE"
        rows.append(PlantedRow(f"{r.method} · {r.estimand}", r.estimate, (r.ci_low, r.ci_high), r.interval_valid,
                               causal.true_effects(truth, targets), what))
    return PlantedComparison(rows, result, out / "estimates" / "report.html")


def calibration_study(demo: Workspace, out: Path) -> CalibrationPreview:
    """Real turn-pairs of the demo's corpus with SIMULATED annotators and judges (a planted truth):
    something to calibrate before anyone has labelled anything."""
    pairs = pd.read_parquet(demo.turn_pairs)
    made = simulated.simulated_study(out, pairs, n=min(CALIBRATION_PAIRS, len(pairs)), gold=CALIBRATION_GOLD,
                                     seed=DEMO_SEED)
    return CalibrationPreview(made, calibrate.overview(calibrate.load(made), "empathy"))
