"""Coverage of every reported row, and the level and power of the refuters, over many semi-synthetic
replications on real ShareGPT text (simulated scores with a planted effect).

Each replication draws new treatments, scores and noise on the same real turn-pairs (the embeddings
are computed once) and runs the estimate twice:

- on the *true* labels: the rows that take the judges' labels as truth (naive, dr, tmle, matching),
  with the placebo and leave-one-model-out refuters and the negative control on `dr`;
- with a simulated judge (treatment misread on 8 % of pairs, more on personal prompts; attachment
  over-read) and a 25 % simulated human audit: dr_gold_only and dr_gold_corrected, the primary.

The planted confounding and effect read the prompts through the fp32 MiniLM (`minilm-torch`, the
reference) whatever `--embedding` the estimate uses, so a run with another embedding measures what
that embedding loses of the reference's reading; every record says which embedding estimated it.

Designs (`--design`, comma-separated; DESIGNS below):
- planted: linear-logistic confounding through the prompt's meaning, model, turn and hour;
- nonlinear: non-linear confounding and user random effects (whole users sampled);
- ushape: very personal and very technical prompts both draw empathy; baseline attachment curves;
- usershift: the effect differs only between users (SD 1) — nothing in the modifiers;
- weighted: the planted design on a stratified sample (personal-looking prompts drawn at 0.9, the rest
  at 0.35, `inclusion_prob` recorded): weighted rows target the whole population's effect;
- gpt4only and hidden: refuter power only — the effect sits in gpt-4's pairs alone; a hidden user
  trait (strength 1) drives treatment, outcome and the prompt's attachment.

Each row is scored against the truth it targets (the realised effect over pairs whose true empathy is
in an arm; ATT_matched over the matched treated): coverage with a Wilson 95 % interval, mean bias,
median width. Every replication is appended to `--out` (JSON lines) as it finishes, so a cut run
keeps what it did; `--summarise FILE` prints the tables of a finished or partial run, and with
`--write-validation` writes causal/validation.json, the record that marks each row validated or
exploratory in every estimate (causal/_validation.py).

Usage: nice python bench/estimator_coverage.py --design planted,nonlinear --reps 200 --out cov.jsonl
       python bench/estimator_coverage.py --summarise cov.jsonl --write-validation
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # before numpy loads BLAS: one thread, the cores are shared

from real_text import real_turn_pairs  # noqa: E402  (bench/ is this script's folder, first on the path)
from replications import replication_parser, run_replications, wilson  # noqa: E402

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from empathy_study import causal  # noqa: E402
from empathy_study.causal._embeddings import REFERENCE  # noqa: E402  (the planted designs read the prompts through it)
from empathy_study.causal._semisynthetic import PERSONAL_ANCHORS, TASK_ANCHORS, sample_pairs  # noqa: E402

ROWS_DESIGNS = ("planted", "nonlinear", "ushape", "usershift", "weighted")
POWER_DESIGNS = ("gpt4only", "hidden")
DESIGNS = ROWS_DESIGNS + POWER_DESIGNS
TRUE_LABEL_ESTIMATORS = ["naive", "dr", "tmle", "matching"]
GOLD_ESTIMATORS = ["dr_gold_only", "dr_gold_corrected"]
AUDIT_RATE = 0.25
RUNS = ("true labels", "simulated judge")  # the two estimates of a replication (--runs)
STRATUM_RATES = (0.9, 0.35)  # weighted design: prompts above the personal score's 70th percentile, the rest
EMBEDDINGS = ("minilm-torch", "minilm", "fast")
VALIDATION = Path(__file__).resolve().parent.parent / "causal" / "validation.json"


def planted_for(design: str) -> causal.PlantedEffect:
    base = dict(negative_control=True)
    if design == "gpt4only":
        return causal.PlantedEffect(base=0.0, gpt4_extra=1.2, personal_slope=0.0, **base)
    if design == "hidden":
        return causal.PlantedEffect(hidden=1.0, **base)
    return causal.PlantedEffect(design={"weighted": "planted"}.get(design, design), **base)


def stratified(scored: pd.DataFrame, truth: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The weighted design's sample: each pair drawn with its stratum's probability, recorded."""
    personal = truth["personal_score"].to_numpy() > np.quantile(truth["personal_score"], 0.7)
    probability = np.where(personal, *STRATUM_RATES)
    drawn = np.random.default_rng([seed, 21]).random(len(scored)) < probability
    sample = scored.assign(inclusion_prob=probability)[drawn].reset_index(drop=True)
    return sample, truth[drawn].reset_index(drop=True)


def records_of(result, sample, truth_sample, population_truth, design: str, run: str, rep: int,
               embedding: str) -> list[dict]:
    """One record per finite row: its estimate, the truth it targets, whether its interval covered."""
    rule = causal.TreatmentRule()
    out = []
    for r in result.rows:
        if not np.isfinite(r.estimate):
            continue
        pairs = causal.target_pairs(r, result, sample, rule, truth_sample)
        if pairs is None:
            continue
        if r.weighted:  # the population's effect: all pairs in an arm, or the matched treated weighted by design
            if r.estimand == "ATE":
                target = causal.true_effects(population_truth, population_truth.loc[
                    rule.assign(population_truth["empathy"]).notna(), "pair_id"])
            else:
                effects = truth_sample.set_index("pair_id").loc[pairs, "unit_effect"]
                weights = 1 / sample.set_index("pair_id").loc[pairs, "inclusion_prob"]
                target = float(np.average(effects, weights=weights))
        else:
            target = causal.true_effects(truth_sample, pairs)
        out.append({"kind": "row", "design": design, "run": run, "rep": rep, "row": r.label, "embedding": embedding,
                    "estimate": r.estimate, "truth": target, "low": r.ci_low, "high": r.ci_high,
                    "covered": bool(r.ci_low <= target <= r.ci_high)})
    return out


def refuter_records(result, design: str, rep: int, embedding: str) -> list[dict]:
    return [{"kind": "refuter", "design": design, "rep": rep, "embedding": embedding, "target": target, "refuter": name,
             "verdict": entry["verdict"]}
            for target, checks in result.refuters.items() for name, entry in checks.items()]


def heterogeneity_records(result, design: str, rep: int, embedding: str) -> list[dict]:
    """The forest's calibration test on the true labels (the planted designs' effect grows with how
    personal the prompt is, so a rejection is power)."""
    test = result.hte.get("calibration_test")
    return [{"kind": "hte", "design": design, "rep": rep, "embedding": embedding, **test}] if test else []


def replicate(design: str, chosen: pd.DataFrame, score: np.ndarray, embedder, rep: int,
              runs: tuple[str, ...] = RUNS, heterogeneity: bool = False,
              estimators: list[str] = TRUE_LABEL_ESTIMATORS) -> list[dict]:
    scored, truth = causal.simulate(chosen, score, seed=1_000 + rep, planted=planted_for(design))
    population_truth = truth
    if design == "weighted":
        scored, truth = stratified(scored, truth, 1_000 + rep)
    records = []
    power_only = design in POWER_DESIGNS
    if "true labels" not in runs:
        return records + _gold_records(scored, truth, population_truth, design, embedder, rep)
    estimators = ["dr"] if power_only else estimators
    refuters = ["leave_one_model_out"] if design == "gpt4only" else [] if design == "hidden" else \
        ["placebo", "leave_one_model_out"]
    config = causal.CausalConfig(seed=rep, estimators=estimators, refuters=refuters, heterogeneity=heterogeneity,
                                 sensitivity=False, embedding=embedder.embedding)
    result = causal.estimate_effects(scored, config, embedder)
    records += heterogeneity_records(result, design, rep, embedder.embedding)
    records += records_of(result, scored, truth, population_truth, design, "true labels", rep, embedder.embedding)
    records += refuter_records(result, design, rep, embedder.embedding)
    if not power_only and "simulated judge" in runs:
        records += _gold_records(scored, truth, population_truth, design, embedder, rep)
    return records


def _gold_records(scored, truth, population_truth, design: str, embedder, rep: int) -> list[dict]:
    """The gold rows under a simulated judge and a simulated audit (the same draw whatever ran before)."""
    judged = causal.judge_labels(scored, truth, causal.JudgeNoise(), AUDIT_RATE, seed=1_000 + rep)
    config = causal.CausalConfig(seed=rep, estimators=GOLD_ESTIMATORS, refuters=[], heterogeneity=False,
                                 sensitivity=False, embedding=embedder.embedding)
    result = causal.estimate_effects(judged.drop(columns=["prompt_attachment"]), config, embedder)
    return records_of(result, judged, truth, population_truth, design, "simulated judge", rep, embedder.embedding)


def row_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Coverage, bias and width per design, row and the embedding that estimated it."""
    out = []
    for (design, label, embedding), group in rows.groupby(["design", "row", "embedding"], sort=False):
        covered = int(group["covered"].sum())
        low, high = wilson(covered, len(group))
        error = group["estimate"] - group["truth"]
        out.append({"design": design, "row": label, "embedding": embedding, "reps": len(group),
                    "coverage": covered / len(group),
                    "coverage_ci": [low, high], "bias": float(error.mean()),
                    "rmse": float(np.sqrt((error**2).mean())),
                    "median_width": float(np.median(group["high"] - group["low"]))})
    return pd.DataFrame(out)


REFUTER_CASES = {  # refuter → (case name, design, what a sound method should do there)
    "placebo": [("no effect can exist (treatment permuted), planted design", "planted")],
    "leave_one_model_out": [("effect in every model, planted design (false alarm)", "planted"),
                            ("effect only in gpt-4's pairs (power)", "gpt4only")],
    "negative_control_outcome": [("nothing hidden, planted design (false alarm)", "planted"),
                                 ("non-linear confounding (what it sees of misfit nuisances)", "nonlinear"),
                                 ("hidden user trait of strength 1 (power)", "hidden")],
}


def refuter_table(refuted: pd.DataFrame) -> dict:
    out: dict = {}
    for name, cases in REFUTER_CASES.items():
        for case, design in cases:
            runs = refuted[(refuted["refuter"] == name) & (refuted["design"] == design)
                           & (refuted["target"] == "dr · ATE") & (refuted["verdict"] != "not run")]
            if len(runs):
                out.setdefault(name, {})[case] = {"failed": float((runs["verdict"] == "failed").mean()),
                                                  "reps": int(len(runs)),
                                                  "embedding": "+".join(sorted(runs["embedding"].unique()))}
    return out


def summarise(frame: pd.DataFrame) -> str:
    lines = []
    rows = frame[frame["kind"] == "row"]
    if len(rows):
        table = row_table(rows)
        for (design, embedding), block in table.groupby(["design", "embedding"], sort=False):
            lines.append(f"\n{design} design, estimated with the {embedding} embedding: "
                         f"{int(block['reps'].max())} replications")
            lines.append(f"{'row':40} {'coverage':>8} {'95 % CI of coverage':>20} {'mean bias':>9} {'RMSE':>6} "
                         f"{'median width':>12}")
            for r in block.itertuples():
                lines.append(f"{r.row:40} {r.coverage:8.2f} {f'[{r.coverage_ci[0]:.2f}, {r.coverage_ci[1]:.2f}]':>20} "
                             f"{r.bias:+9.3f} {r.rmse:6.3f} {r.median_width:12.3f}")
    refuted = frame[frame["kind"] == "refuter"]
    if len(refuted):
        for embedding, block in refuted.groupby("embedding", sort=False):
            lines.append(f"\nrefuters of dr · ATE, estimated with the {embedding} embedding: share of runs that failed")
            for name, cases in refuter_table(block).items():
                for case, entry in cases.items():
                    lines.append(f"  {name:26} {case:62} {entry['failed']:5.2f} of {entry['reps']}")
    return "\n".join(lines)


def embedding_comparison(frame: pd.DataFrame, embeddings: list[str]) -> str:
    """The same replications estimated with two embeddings, row by row: each one's coverage, and how far the
    second moves the estimate (mean and SD of the paired differences, in units of the first's median
    half-width) and the interval (median width ratio)."""
    first, second = embeddings
    rows = frame[(frame["kind"] == "row") & frame["embedding"].isin(embeddings)]
    rows = rows.drop_duplicates(["design", "row", "rep", "embedding"], keep="last")
    wide = rows.assign(width=rows["high"] - rows["low"]).pivot_table(
        index=["design", "row", "rep"], columns="embedding", values=["estimate", "width", "covered"], aggfunc="first")
    wide = wide.dropna()
    lines = [f"\n{second} against {first}, the same replications (planted through {REFERENCE})",
             f"{'design':10} {'row':34} {'reps':>4} {'cover ' + first:>18} {'cover ' + second:>14} "
             f"{'mean Δ / half-width':>19} {'SD Δ / half-width':>17} {'width ratio':>11}"]
    for (design, label), group in wide.groupby(level=["design", "row"], sort=False):
        half = float(np.median(group[("width", first)])) / 2
        delta = group[("estimate", second)] - group[("estimate", first)]
        lines.append(f"{design:10} {label:34} {len(group):4d} {group[('covered', first)].astype(float).mean():18.2f} "
                     f"{group[('covered', second)].astype(float).mean():14.2f} {delta.mean() / half:+19.2f} "
                     f"{delta.std() / half:17.2f} "
                     f"{float(np.median(group[('width', second)] / group[('width', first)])):11.2f}")
    if "hte" in set(frame["kind"]):
        tests = frame[(frame["kind"] == "hte") & frame["embedding"].isin(embeddings)]
        for (design, embedding), block in tests.groupby(["design", "embedding"], sort=False):
            rejected = int((block["p_value"] < 0.05).sum())
            low, high = wilson(rejected, len(block))
            lines.append(f"  {embedding:13} heterogeneity calibration test, {design}: rejects at 5 % in "
                         f"{rejected / len(block):.2f} [{low:.2f}, {high:.2f}] of {len(block)}, median β_het "
                         f"{block['beta_het'].median():.2f}")
    refuted = frame[(frame["kind"] == "refuter") & frame["embedding"].isin(embeddings)]
    for embedding in embeddings:
        for name, cases in refuter_table(refuted[refuted["embedding"] == embedding]).items():
            for case, entry in cases.items():
                lines.append(f"  {embedding:13} {name:26} {case:62} fails {entry['failed']:5.2f} of {entry['reps']}")
    return "\n".join(lines)


def heterogeneity_record(paths: list[Path]) -> dict:
    """The calibration test's rejection rate per bench/hte_level.py design (the estimate's own path)."""
    if not paths:
        return {}
    frame = pd.concat([pd.read_json(path, lines=True) for path in paths], ignore_index=True)
    frame = frame[frame["path"] == "new"]
    out = {}
    for design, group in frame.groupby("design", sort=False):
        rejected = int((group["p_value"] < 0.05).sum())
        out[design] = {"rejects": rejected / len(group), "rejects_ci": list(wilson(rejected, len(group))),
                       "reps": int(len(group)), "pairs": int(group["n"].median())}
    return {"designs": out, "source": "bench/hte_level.py; docs/hte-level.md"}


# What one replication's record is of, per kind: a later record of the same replaces an earlier one.
RECORD_KEYS = {"row": ["row"], "refuter": ["target", "refuter"], "hte": []}


def latest_records(frame: pd.DataFrame) -> pd.DataFrame:
    """Each replication's last record of each row, refuter and heterogeneity test, whichever file it came from."""
    return pd.concat([frame[frame["kind"] == kind].drop_duplicates(["design", "rep", *keys], keep="last")
                      for kind, keys in RECORD_KEYS.items()], ignore_index=True)


def validation_record(frame: pd.DataFrame, source: str, hte: list[Path]) -> dict:
    rows = frame[frame["kind"] == "row"]
    # One embedding per row and design: replications estimated with several are recorded as that mix.
    rows = rows.assign(embedding=rows.groupby(["design", "row"])["embedding"].transform(
        lambda e: "+".join(sorted(e.unique()))))
    rows = row_table(rows)
    return {
        "written": datetime.date.today().isoformat(),
        "command": f"python bench/estimator_coverage.py --summarise {source} --write-validation"
                   + (f" --hte {' '.join(str(p) for p in hte)}" if hte else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "reps": int(rows["reps"].min()) if len(rows) else 0,
        "config": causal.CausalConfig().model_dump() | {"embedding": sorted(rows["embedding"].unique())},
        "judge": "simulated judge (JudgeNoise defaults) with a 25 % simulated audit for the gold rows; "
                 "the true labels for the rows that take the judges' labels as truth",
        "rows": {label: {r.design: {"coverage": r.coverage, "coverage_ci": r.coverage_ci, "bias": r.bias,
                                    "median_width": r.median_width, "reps": r.reps, "embedding": r.embedding}
                         for r in group.itertuples()}
                 for label, group in rows.groupby("row", sort=False)},
        "refuters": refuter_table(frame[frame["kind"] == "refuter"]),
        "heterogeneity": heterogeneity_record(hte),
    }


def main() -> None:
    parser = replication_parser(__doc__.splitlines()[0], "pairs per study (the weighted design's population)",
                                "only print the tables of results files; a later file's record of the same design, "
                                "replication and row (refuter, heterogeneity test) replaces an earlier file's, "
                                "whatever embedding estimated either")
    parser.add_argument("--design", default=",".join(DESIGNS), help=f"comma-separated: {', '.join(DESIGNS)}")
    parser.add_argument("--runs", default="all", choices=["all", "gold", "true"],
                        help="gold: only the simulated-judge estimate (the gold rows), to re-measure a changed "
                             "gold estimator without re-running the rest; true: only the true-label estimate")
    parser.add_argument("--estimators", default=",".join(TRUE_LABEL_ESTIMATORS),
                        help="comma-separated estimators of the true-label run (the power designs run dr alone)")
    parser.add_argument("--embedding", default=causal.CausalConfig().embedding, choices=EMBEDDINGS,
                        help="the estimate's prompt embedding (the planted design always reads the fp32 reference)")
    parser.add_argument("--heterogeneity", action="store_true",
                        help="also fit the forest on the true labels and record its calibration test")
    parser.add_argument("--compare", nargs=2, metavar=("FIRST", "SECOND"), choices=EMBEDDINGS,
                        help="with --summarise: the same replications estimated with two embeddings, side by side")
    parser.add_argument("--write-validation", action="store_true", help=f"with --summarise: write {VALIDATION.name}")
    parser.add_argument("--hte", type=Path, nargs="*", default=[],
                        help="with --write-validation: bench/hte_level.py results to record the heterogeneity test's level")
    args = parser.parse_args()
    if args.summarise:
        frame = pd.concat([pd.read_json(path, lines=True) for path in args.summarise], ignore_index=True)
        if args.compare:
            print(embedding_comparison(frame, args.compare))
            return
        frame = latest_records(frame)
        print(summarise(frame))
        if args.write_validation:
            record = validation_record(frame, " ".join(str(p) for p in args.summarise), args.hte)
            VALIDATION.write_text(json.dumps(record, indent=1) + "\n")
            print(f"\nwrote {VALIDATION}")
        return
    warnings.filterwarnings("ignore")
    reference = causal.Embedder(embedding=REFERENCE)
    embedder = causal.Embedder(embedding=args.embedding)
    pairs = real_turn_pairs()
    for design in args.design.split(","):
        if design not in DESIGNS:
            parser.error(f"unknown design {design!r}: one of {', '.join(DESIGNS)}")
        chosen = sample_pairs(pairs, args.n, seed=0, by_user=design in ("nonlinear", "usershift", "ushape"))
        score = causal.personal_score(reference.embed(chosen["prompt"].tolist()), reference.embed(PERSONAL_ANCHORS),
                                      reference.embed(TASK_ANCHORS))
        embedder.embed(chosen["prompt"].tolist())  # once, before the replications: each reads the cache
        embedder.embed(chosen["prev_response"].fillna("").astype(str).tolist())
        runs = {"all": RUNS, "gold": ("simulated judge",), "true": ("true labels",)}[args.runs]
        estimators = args.estimators.split(",")
        records = run_replications(lambda rep: replicate(design, chosen, score, embedder, rep, runs, args.heterogeneity,
                                                         estimators),
                                   args.first, args.reps, args.out, f"{design}: ")
        print(summarise(pd.DataFrame(records)))


if __name__ == "__main__":
    main()
