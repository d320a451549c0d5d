"""`empathy demo`: every stage, in order, on the embedded defaults (bundled corpus, local judge)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.table import Table

from empathy_study import annotation, causal, corpus, study
from empathy_study.study import calibrate, simulated
from empathy_study.study.cli import corpus as corpus_cli
from empathy_study.study.cli import judge as judge_cli
from empathy_study.study.cli._common import console, progress_display
from empathy_study.study.cli.estimate import results_table
from empathy_study.study.tui.screens import number
from empathy_study.study.workspace import Workspace

DEMO_SAMPLE = 12  # the local judge takes 4-6 s a call on 2 cores: this keeps the demo to minutes
DEMO_SEED = 0
DEMO_SWAP_CHECK = 4  # attachment pairs re-judged with the response shown / swapped
PLANTED_PAIRS = 3_000
MIN_ARM = 20  # treated and control pairs needed before the demo estimates on judged scores
CALIBRATION_DIR = "calibration-simulated"
CALIBRATION_PAIRS, CALIBRATION_GOLD = 600, 150


def run_demo(out: Path) -> None:
    demo = Workspace(out)
    if not demo.config_path.exists():
        demo.init()
        text = demo.config_path.read_text(encoding="utf-8")
        demo.config_path.write_text(text.replace("swap_check_pairs = 20", f"swap_check_pairs = {DEMO_SWAP_CHECK}"),
                                     encoding="utf-8")
    console.rule("1 · corpus: the bundled real ShareGPT conversations → turn-pairs")
    with progress_display() as progress:
        built = study.build_corpus(demo, "sharegpt", [], progress)
    console.print(corpus_cli.funnel_table(built.funnel))
    console.rule(f"2 · a stratified sample of {DEMO_SAMPLE} pairs")
    drawn = study.draw_sample(demo, DEMO_SAMPLE, DEMO_SEED)
    console.print(f"sampled {drawn.rows} of {drawn.population:,} pairs across {drawn.strata} strata")
    console.rule("3 · the local judge panel (SmolLM2 on llama.cpp, no network) scores the sample")
    with progress_display() as progress:
        judged = study.run_judges(demo, progress=progress)
    if judged.summary is not None:
        console.print(judge_cli.run_table(judged.summary, judged.plan.plans))
    study.export_scores(demo)
    for table in judge_cli.report_tables(study.report_judges(demo)):
        console.print(table)
    exported = study.export(demo)
    console.print(f"wrote {exported.path}: judged {exported.record['judged']}")
    console.rule("4 · human ground truth: the blind audit sample goes to Label Studio")
    push_to_label_studio(demo)
    console.rule("5 · causal estimates on the judged sample")
    estimate_judged(demo)
    console.rule("6 · causal estimates on a semi-synthetic study (real text, planted effect)")
    planted_study(out / "semisynthetic")
    console.rule("7 · calibration: the judges against (SIMULATED) annotators, in the terminal app")
    calibration = calibration_study(demo, out / CALIBRATION_DIR)
    console.print(f"\nThe demo study is in {out}")
    if demo.labels.exists():
        console.print(f"Calibrate its judges against your annotators: `empathy calibrate {demo.root}`")
    console.print(f"Open the calibration app on the simulated study: `empathy calibrate {calibration.root}`")


def push_to_label_studio(demo: Workspace) -> None:
    try:
        results = study.push(demo, review=False)
    except annotation.AnnotationError as exc:
        console.print(f"skipped: {exc}\nTo annotate: `make labelstudio`, `source .labelstudio/credentials.env`, "
                      "export LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY as it prints; for each annotator "
                      "`make labelstudio-annotator NAME=…` and "
                      f"`empathy annotate add-annotator {demo.root} EMAIL --url URL`; then "
                      f"`empathy annotate push {demo.root}`.", highlight=False)
        return
    for r in results:
        console.print(f"{r.project}: {r.new_tasks} new tasks ({r.existing_tasks} already there) — project {r.project_id}")
    console.print(f"annotate in the browser, then `empathy annotate pull {demo.root}` and `empathy agree {demo.root}`")


def estimate_judged(demo: Workspace) -> None:
    if not demo.scored_pairs.exists():
        console.print("no scored_pairs.parquet yet (the judge has not scored the sample): skipping")
        return
    frame = pd.read_parquet(demo.scored_pairs)
    config = demo.config().causal
    rule = causal.TreatmentRule(config.treat_high, config.treat_low)
    arms = rule.assign(frame["empathy"]).value_counts()
    treated, control = int(arms.get(1.0, 0)), int(arms.get(0.0, 0))
    if min(treated, control) < MIN_ARM:
        console.print(f"not estimating on the judged sample: {treated} treated and {control} control pairs "
                      f"under the rule ({rule.describe()}); each arm needs at least {MIN_ARM}. "
                      "A larger sample (`empathy corpus sample --n`) and judge run would give them.")
        return
    with progress_display() as progress:
        result = study.estimate(demo.scored_pairs, demo.estimates, config, progress)
    console.print(results_table(result))
    console.print(f"report: {demo.estimates / 'report.html'}")


def planted_study(out: Path) -> None:
    """Real turn-pairs (topic filter off, for enough text), simulated scores, a known effect — read by a
    simulated judge that errs, with simulated human labels on a random 20 % audit sample."""
    from empathy_study.study.cli.estimate import print_warnings

    out.mkdir(parents=True, exist_ok=True)
    funnel = corpus.Funnel("sharegpt")
    with console.status("reading every English turn-pair of the bundled corpus"):
        corpus.build_corpus(corpus.read_source("sharegpt", [], funnel), out,
                            corpus.CorpusConfig(keep_transactional=True), funnel)
    pairs = pd.read_parquet(out / corpus.TURN_PAIRS_FILE)
    embedder = causal.Embedder()
    with console.status(f"embedding {PLANTED_PAIRS:,} prompts and simulating scores"):
        scored, truth = causal.semisynthetic_study(pairs, PLANTED_PAIRS, DEMO_SEED, embedder)
    judged = causal.judge_labels(scored, truth, causal.JudgeNoise(), audit_rate=0.2, seed=DEMO_SEED)
    judged.to_parquet(out / "scored_pairs.parquet")
    truth.to_parquet(out / "truth.parquet")
    with progress_display() as progress:
        result = study.estimate(out / "scored_pairs.parquet", out / "estimates", causal.CausalConfig(seed=DEMO_SEED),
                                progress)
    table = Table(title="Planted truth vs estimates (semi-synthetic: simulated judge, simulated human labels; "
                        "not a finding)", title_justify="left")
    for column in ("estimator", "estimate", "95 % CI", "truth it should hit"):
        table.add_column(column)
    for r in result.rows:
        if r.weighted or r.estimate != r.estimate:
            continue
        pairs = causal.target_pairs(r, result, judged, causal.TreatmentRule(), truth)
        if pairs is None:
            continue
        what = f"ATT of the {len(pairs)} treated kept" if r.estimand == "ATT_matched" else "ATE"
        target = f"{causal.true_effects(truth, pairs):.3f} ({what})"
        ci = f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]" + ("" if r.interval_valid else " ✗")
        table.add_row(f"{r.method} · {r.estimand}", f"{r.estimate:+.3f}", ci, target)
    console.print(table)
    print_warnings(result)
    console.print(f"report: {out / 'estimates' / 'report.html'}")


def calibration_study(demo: Workspace, out: Path) -> Workspace:
    """Real turn-pairs of the demo's corpus with SIMULATED annotators and judges (a planted truth):
    something to calibrate before anyone has labelled anything."""
    pairs = pd.read_parquet(demo.turn_pairs)
    made = simulated.simulated_study(out, pairs, n=min(CALIBRATION_PAIRS, len(pairs)), gold=CALIBRATION_GOLD,
                                     seed=DEMO_SEED)
    data = calibrate.load(made)
    table = Table(title="SIMULATED judges against SIMULATED annotators (empathy, current rubric)", title_justify="left")
    for column in ("judge", "α", "MAE", "bias", "n gold"):
        table.add_column(column)
    view = calibrate.overview(data, "empathy")
    for row in view.rows:
        if row.current:
            f = row.figures
            table.add_row(row.rater, *(number(f[k]) for k in ("alpha", "mae")), number(f["bias"], signed=True), str(f["n"]))
    console.print(table)
    console.print(f"human ceiling α {number(view.ceiling['alpha'])} on {view.ceiling['n']} pairs with two annotators; "
                  "how it was simulated: " + str(made.simulation))
    return made
