"""Does an active audit buy the uniform audit's interval with fewer human labels? Many replications of a
semi-synthetic study on real ShareGPT text: simulated scores with a planted effect, a simulated panel of
three judges whose errors concentrate on personal prompts, and simulated "human" labels (the simulated
true scores) revealed on the audit sample. Everything but the text is simulated.

Each replication draws one study (`causal.simulate`, the planted design) on the same 2,000 real
turn-pairs (the embeddings are computed once) and one simulated panel, then runs the toolkit's primary
row, `dr_gold_corrected` (`causal.estimate_effects`, PPI++ λ included), under several audits of the
same pairs, all drawn from the same per-pair hash (`annotation.audit_draw`, seed = the replication):

- uniform: every pair at rate L / n, for L = B (the reference budget) and 0.7·B;
- active, one batch: probabilities ∝ `error_need(audit_features(panel))` — the judges' disagreement and
  closeness to a treatment threshold — scaled by `budget_probabilities` to L = B·{0.5, 0.6, 0.7, 0.8, 1.0}
  expected labels with a floor of 0.02;
- pilot (what `annotate push` does once an estimate exists): a uniform pilot of 0.3·L, the estimate on
  it, then the other 0.7·L at need = error_need × the pilot estimate's inverse-propensity weight of the
  pair's arm (`audit_need.parquet`'s weight), floor half the batch's uniform rate; gold_prob =
  ever_drawn over both batches; L = B·{0.5, 0.6, 0.7, 0.8, 1.0} (`--audits uniform,pilot`);
- sequential: three batches of 0.7·B / 3 expected new labels each; batch 1 as above, batches 2 and 3 from
  `error_need(features, squared_error, 1/π)` fitted on the labels drawn so far (the panel's squared
  error on both scales, weighted by the inverse of each labelled pair's probability of having been drawn
  so far); `gold_prob` = `ever_drawn` over the three batches. Batch b's probabilities are
  clip(c_b · need_b, floor, 1) for every pair, c_b set so that the pairs not yet drawn expect L/3 new
  labels (`budget_probabilities` on them); a pair drawn again adds no label.

The simulated panel (`PANEL`): on a pair, judge j scores empathy round(gold + bias_j + N(0, s·k_j)) and
attachment round(gold + over-read_j + N(0, a·k_j)), clipped to 1..7, with s = 0.35, a = 0.3 on easy pairs
and s = 1.6, a = 1.3 on hard ones; a pair is hard with probability sigmoid(2.5·(personal score − 0.6))
(about 30 % of pairs, most of them personal prompts). One judge is good, one noisy (k = 1.6), one
biased (empathy +0.4, attachment over-read up to +0.6 at the low end). The panel score is the judges'
mean, as `empathy export` writes it.

Each audit's row is scored against the realised effect over the pairs whose true (gold) empathy is in
an arm: coverage with a Wilson 95 % interval, median CI width, and the median of each replication's
width over the uniform audit's at B (paired: same study, same hash). Every replication is appended to
`--out` (JSON lines) as it finishes; `--summarise FILE` prints the tables of a finished or partial run.

Usage: nice -n 10 python bench/active_audit.py --reps 200 --out bench/results/active_audit.jsonl
       python bench/active_audit.py --summarise bench/results/active_audit.jsonl
"""

from __future__ import annotations

import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # before numpy loads BLAS: one thread, the cores are shared

from real_text import real_turn_pairs  # noqa: E402  (bench/ is this script's folder, first on the path)
from replications import replication_parser, run_replications, wilson  # noqa: E402

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from empathy_study import annotation, causal  # noqa: E402
from empathy_study.causal._semisynthetic import PERSONAL_ANCHORS, TASK_ANCHORS, sample_pairs  # noqa: E402

FRACTIONS = (0.5, 0.6, 0.7, 0.8, 1.0)  # active budgets, as shares of the uniform audit's B
UNIFORM_FRACTIONS = (1.0, 0.7)
IPW_FRACTIONS = (0.7, 1.0)
AUDITS = ("uniform", "active", "oracle", "sequential", "ipw", "pilot")
PILOT_FRACTIONS = (0.5, 0.6, 0.7, 0.8, 1.0)
PILOT_SHARE = 0.3  # the residual audit's uniform first batch, as a share of its labels
DEFAULT_AUDITS = ("uniform", "active", "oracle", "sequential")
SEQUENTIAL_FRACTION = 0.7  # the three batches' total budget, as a share of B
BATCHES = 3
FLOOR = 0.02  # min_audit_prob
RULE = causal.TreatmentRule()
PRIMARY = "dr_gold_corrected · ATE"
# (name, empathy bias, attachment over-read at the scale's low end, noise multiplier k)
PANEL = (("good", 0.0, 0.0, 1.0), ("noisy", 0.0, 0.0, 1.6), ("biased", 0.4, 0.6, 1.0))
EASY_NOISE, HARD_NOISE = (0.35, 0.3), (1.6, 1.3)  # (empathy SD, attachment SD) before the multiplier
HARD_CENTRE, HARD_SLOPE = 0.6, 2.5


def simulated_panel(scored: pd.DataFrame, truth: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(long scores: pair_id, judge, empathy, attachment; which pairs are hard) — all simulated."""
    rng = np.random.default_rng([seed, 31])
    n = len(scored)
    hard = rng.random(n) < 1 / (1 + np.exp(-HARD_SLOPE * (truth["personal_score"].to_numpy() - HARD_CENTRE)))
    empathy_sd = np.where(hard, HARD_NOISE[0], EASY_NOISE[0])
    attachment_sd = np.where(hard, HARD_NOISE[1], EASY_NOISE[1])
    gold_empathy = scored["empathy"].to_numpy(dtype=float)
    gold_attachment = scored["attachment"].to_numpy(dtype=float)
    frames = []
    for name, bias, over_read, k in PANEL:
        empathy = np.clip(np.round(gold_empathy + bias + rng.normal(0, 1, n) * empathy_sd * k), 1, 7)
        over = over_read * (7 - gold_attachment) / 6
        attachment = np.clip(np.round(gold_attachment + over + rng.normal(0, 1, n) * attachment_sd * k), 1, 7)
        frames.append(pd.DataFrame({"pair_id": scored["pair_id"], "judge": name, "empathy": empathy,
                                    "attachment": attachment}))
    return pd.concat(frames, ignore_index=True), hard


def audited_frame(scored: pd.DataFrame, panel_mean: pd.DataFrame, drawn: np.ndarray, gold_prob: np.ndarray) -> pd.DataFrame:
    """The estimate's input: panel means as the judges' scores, the simulated truth as human labels where drawn."""
    frame = scored.copy()
    frame["empathy_gold"] = np.where(drawn, scored["empathy"], np.nan)
    frame["attachment_gold"] = np.where(drawn, scored["attachment"], np.nan)
    frame["empathy"] = panel_mean["empathy"].to_numpy()
    frame["attachment"] = panel_mean["attachment"].to_numpy()
    frame["gold_prob"] = gold_prob
    frame["gold_drawn"] = drawn.astype(int)
    frame["simulated_judge"] = True
    return frame


def corrected_row(frame: pd.DataFrame, truth: pd.DataFrame, embedder, rep: int, need_out: list | None = None) -> dict:
    """The primary row on one audit, scored against the realised effect it targets (`need_out` receives the
    estimate's `audit_need`: where the correction's residual is predicted large)."""
    config = causal.CausalConfig(seed=rep, estimators=["dr_gold_corrected"], refuters=[], heterogeneity=False,
                                 sensitivity=False, workers=1)
    try:
        result = causal.estimate_effects(frame, config, embedder)
    except causal.CausalError as error:  # recorded, never dropped: the summary counts these
        return {"failed": str(error)}
    row = next((r for r in result.rows if r.label == PRIMARY), None)
    if row is None or not np.isfinite(row.estimate):
        return {"failed": "no finite dr_gold_corrected row"}
    if need_out is not None:
        need_out.append(result.audit_need)
    target = causal.true_effects(truth, causal.target_pairs(row, result, frame, RULE, truth))
    return {"estimate": row.estimate, "se": row.se, "low": row.ci_low, "high": row.ci_high, "truth": target,
            "covered": bool(row.ci_low <= target <= row.ci_high), "width": row.ci_high - row.ci_low,
            "ppi_lambda": row.ppi_lambda, "gold_n": row.gold_n}


def batch_probabilities(need: np.ndarray, undrawn: np.ndarray, labels: float) -> np.ndarray:
    """Every pair's probability in a later batch: clip(c·need, floor, 1), with c such that the pairs not yet
    drawn expect `labels` new labels. A drawn pair's value is what it would have had undrawn: ever_drawn
    needs it for the pair's weight."""
    fresh = annotation.budget_probabilities(need[undrawn], labels, FLOOR)
    free = (fresh > FLOOR) & (fresh < 1)
    if not free.any():
        raise ValueError("every undrawn pair's probability sits at the floor or at 1: no scale to carry over")
    scale = float(np.median(fresh[free] / need[undrawn][free]))
    return np.clip(scale * need, FLOOR, 1)


def sequential_audit(scored: pd.DataFrame, panel_mean: pd.DataFrame, features: pd.DataFrame, labels: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Three batches, each set from the labels drawn before it: (drawn, gold_prob, per-batch records)."""
    ids = scored["pair_id"]
    drawn = np.zeros(len(scored), bool)
    history, batches = [], []
    squared_error = ((panel_mean["empathy"] - scored["empathy"].to_numpy()) ** 2
                     + (panel_mean["attachment"] - scored["attachment"].to_numpy()) ** 2)  # known once labelled
    for batch in range(1, BATCHES + 1):
        if batch == 1:
            need, how = annotation.error_need(features)
        else:
            so_far = pd.Series(annotation.ever_drawn(np.vstack(history)), index=ids.to_numpy())
            labelled = pd.Series(squared_error.to_numpy(), index=ids.to_numpy())[drawn]
            need, how = annotation.error_need(features, labelled, 1 / so_far)
        need = need.reindex(ids).to_numpy(dtype=float)
        probability = annotation.budget_probabilities(need, labels / BATCHES, FLOOR) if batch == 1 \
            else batch_probabilities(need, ~drawn, labels / BATCHES)
        new = annotation.audit_draw(ids, probability, seed, batch) & ~drawn
        batches.append({"batch": batch, "expected_new": float(probability[~drawn].sum()),
                        "new_labels": int(new.sum()), "need": how,
                        "need_ratio_p90_p10": float(np.quantile(need, 0.9) / np.quantile(need, 0.1))})
        history.append(probability)
        drawn |= new
    return drawn, annotation.ever_drawn(np.vstack(history)), batches


def pilot_audit(scored: pd.DataFrame, panel_mean: pd.DataFrame, truth: pd.DataFrame, embedder, labels: float,
                   rep: int, error_need: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Two batches as `annotate push` draws them around an estimate: a uniform pilot of PILOT_SHARE·labels,
    the estimate on it, then the rest at need = error_need × the pilot estimate's `audit_need` weight (the
    inverse-propensity weight a label error carries into the correction), at the toolkit's default floor
    (half the batch's uniform rate). (drawn, gold_prob, record); a pilot estimate that fails leaves the
    rest at error_need alone, and says so."""
    ids, n = scored["pair_id"], len(scored)
    pilot = np.full(n, labels * PILOT_SHARE / n)
    drawn = annotation.audit_draw(ids, pilot, rep, 1)
    needs: list = []
    pilot_row = corrected_row(audited_frame(scored, panel_mean, drawn, pilot), truth, embedder, rep, needs)
    rest = labels - float(pilot.sum())
    need = needs[0] if needs and needs[0] is not None else None
    if need is None:
        values, how = error_need, f"error_need alone (the pilot's estimate gave no weight: {pilot_row.get('failed', 'none')})"
    else:
        values = need.set_index("pair_id")["weight"].reindex(ids).to_numpy(dtype=float) * error_need
        values, how = np.where(np.isnan(values), np.nanmax(values), values), "error_need × the pilot estimate's weight"
    floor = rest / int((~drawn).sum()) / 2
    second = annotation.budget_probabilities(values, rest, floor, counted=~drawn)
    drawn |= annotation.audit_draw(ids, second, rep, 2)
    record = {"need": how, "pilot_labels": int(annotation.audit_draw(ids, pilot, rep, 1).sum()),
              "need_ratio_p90_p10": float(np.quantile(values, 0.9) / np.quantile(values, 0.1))}
    return drawn, annotation.ever_drawn(np.vstack([pilot, second])), record


def inverse_propensity(scored: pd.DataFrame, panel_mean: pd.DataFrame, components: np.ndarray) -> np.ndarray:
    """The weight a pair's DR moment carries in the panel's arm, from a propensity fitted on observed data only."""
    from sklearn.linear_model import LogisticRegression

    arm = RULE.assign(panel_mean["empathy"]).to_numpy()
    night = (pd.to_datetime(scored["timestamp"]).dt.hour < 6).to_numpy(dtype=float)
    X = np.column_stack([components, pd.get_dummies(scored["model"], dtype=float).to_numpy(), night])
    rows = ~np.isnan(arm)
    e = LogisticRegression(C=1.0, max_iter=2_000).fit(X[rows], arm[rows].astype(int)).predict_proba(X)[:, 1]
    e = np.clip(e, 0.01, 0.99)
    return np.where(arm == 1, 1 / e, np.where(arm == 0, 1 / (1 - e), np.maximum(1 / e, 1 / (1 - e))))


def replicate(chosen: pd.DataFrame, score: np.ndarray, components: np.ndarray, embedder, rep: int, budget: float,
              kinds: tuple[str, ...] = DEFAULT_AUDITS) -> list[dict]:
    scored, truth = causal.simulate(chosen, score, seed=1_000 + rep, planted=causal.PlantedEffect())
    panel, hard = simulated_panel(scored, truth, 1_000 + rep)
    panel_mean = panel.groupby("pair_id")[["empathy", "attachment"]].mean().reindex(scored["pair_id"])
    features = annotation.audit_features(panel, RULE.high, RULE.low)
    need, _ = annotation.error_need(features)
    need = need.reindex(scored["pair_id"]).to_numpy(dtype=float)
    ids, n = scored["pair_id"], len(scored)
    audits = [("uniform", f, np.full(n, budget * f / n)) for f in UNIFORM_FRACTIONS]
    audits += [("active", f, annotation.budget_probabilities(need, budget * f, FLOOR)) for f in FRACTIONS]
    # not realisable (it reads the simulated truth): the need error_need's model aims at, to show the headroom
    squared = ((panel_mean["empathy"].to_numpy() - scored["empathy"].to_numpy()) ** 2
               + (panel_mean["attachment"].to_numpy() - scored["attachment"].to_numpy()) ** 2)
    oracle = np.sqrt(np.maximum(squared, squared.mean() / 20))
    audits.append(("oracle", SEQUENTIAL_FRACTION, annotation.budget_probabilities(oracle, budget * SEQUENTIAL_FRACTION, FLOOR)))
    if "ipw" in kinds:
        weighted = need * inverse_propensity(scored, panel_mean, components)
        audits += [("ipw", f, annotation.budget_probabilities(weighted, budget * f, FLOOR)) for f in IPW_FRACTIONS]
    audits = [a for a in audits if a[0] in kinds]
    records = []
    for audit, fraction, probability in audits:
        drawn = annotation.audit_draw(ids, probability, rep, 1)
        records.append({"audit": audit, "fraction": fraction, "expected_labels": float(probability.sum()),
                        "labels": int(drawn.sum()), "hard_share_of_labels": float(hard[drawn].mean()),
                        **corrected_row(audited_frame(scored, panel_mean, drawn, probability), truth, embedder, rep)})
    for fraction in PILOT_FRACTIONS if "pilot" in kinds else ():
        drawn, gold_prob, phases = pilot_audit(scored, panel_mean, truth, embedder, budget * fraction, rep, need)
        records.append({"audit": "pilot", "fraction": fraction, "expected_labels": budget * fraction,
                        "labels": int(drawn.sum()), "hard_share_of_labels": float(hard[drawn].mean()), "phases": phases,
                        **corrected_row(audited_frame(scored, panel_mean, drawn, gold_prob), truth, embedder, rep)})
    if "sequential" in kinds:
        drawn, gold_prob, batches = sequential_audit(scored, panel_mean, features, budget * SEQUENTIAL_FRACTION, rep)
        records.append({"audit": "sequential", "fraction": SEQUENTIAL_FRACTION,
                        "expected_labels": budget * SEQUENTIAL_FRACTION, "labels": int(drawn.sum()),
                        "hard_share_of_labels": float(hard[drawn].mean()), "batches": batches,
                        **corrected_row(audited_frame(scored, panel_mean, drawn, gold_prob), truth, embedder, rep)})
    for record in records:
        record.update(kind="audit", rep=rep, pairs=n, budget=budget, hard_share=float(hard.mean()), simulated=True)
    return records


def audit_table(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame[frame["failed"].isna()] if "failed" in frame.columns else frame
    reference = ok[(ok["audit"] == "uniform") & (ok["fraction"] == 1.0)].set_index("rep")["width"]
    out = []
    for (audit, fraction), group in frame.groupby(["audit", "fraction"], sort=False):
        failed = int(group["failed"].notna().sum()) if "failed" in group.columns else 0
        done = group[group["failed"].isna()] if "failed" in group.columns else group
        covered = int(done["covered"].sum())
        low, high = wilson(covered, len(done))
        paired = (done.set_index("rep")["width"] / reference).dropna()
        out.append({"audit": audit, "fraction": fraction, "reps": len(done), "failed": failed,
                    "labels": float(done["labels"].mean()), "hard_share": float(done["hard_share_of_labels"].mean()),
                    "coverage": covered / len(done), "coverage_ci": (low, high),
                    "bias": float((done["estimate"] - done["truth"]).mean()),
                    "rmse": float(np.sqrt(((done["estimate"] - done["truth"]) ** 2).mean())),
                    "median_width": float(done["width"].median()), "paired_ratio": float(paired.median()),
                    "ppi_lambda": float(done["ppi_lambda"].median())})
    return pd.DataFrame(out)


def saving(table: pd.DataFrame, family: str) -> dict:
    """The fewest labels of an audit family (on its grid, and linearly interpolated) whose median width ≤
    the uniform audit's at B."""
    uniform = table[(table["audit"] == "uniform") & (table["fraction"] == 1.0)].iloc[0]
    active = table[table["audit"] == family].sort_values("labels")
    reaching = active[active["median_width"] <= uniform["median_width"]]
    out = {"uniform_labels": uniform["labels"], "uniform_width": uniform["median_width"],
           "uniform_coverage": uniform["coverage"]}
    if len(reaching):
        best = reaching.iloc[0]
        out.update(active_labels=best["labels"], active_width=best["median_width"], active_coverage=best["coverage"],
                   saved=round(1 - best["labels"] / uniform["labels"], 2) + 0.0)  # + 0.0: no "-0 %"
        above = active[active["labels"] < best["labels"]]
        if len(above):  # between the grid point below (wider) and this one
            prev = above.iloc[-1]
            share = (prev["median_width"] - uniform["median_width"]) / (prev["median_width"] - best["median_width"])
            out["interpolated_labels"] = prev["labels"] + share * (best["labels"] - prev["labels"])
            out["interpolated_saved"] = round(1 - out["interpolated_labels"] / uniform["labels"], 2) + 0.0
    return out


def summarise(frame: pd.DataFrame) -> str:
    frame = frame[frame["kind"] == "audit"]
    table = audit_table(frame)
    lines = [f"SIMULATED: real ShareGPT text, simulated scores, simulated 3-judge panel and simulated human labels; "
             f"{int(frame['pairs'].iloc[0]):,} pairs, B = {frame['budget'].iloc[0]:g}, "
             f"{frame['hard_share'].mean():.0%} of pairs hard, {frame['rep'].nunique()} replications",
             f"{'audit':11} {'budget':>6} {'labels':>7} {'hard %':>6} {'coverage':>8} {'95 % CI of coverage':>20} "
             f"{'bias':>7} {'RMSE':>6} {'median width':>12} {'÷ uniform B':>11} {'median λ':>8} {'failed':>6}"]
    for r in table.itertuples():
        lines.append(f"{r.audit:11} {f'{r.fraction:g}·B':>6} {r.labels:7.1f} {r.hard_share:6.0%} {r.coverage:8.3f} "
                     f"{f'[{r.coverage_ci[0]:.3f}, {r.coverage_ci[1]:.3f}]':>20} {r.bias:+7.3f} {r.rmse:6.3f} {r.median_width:12.3f} "
                     f"{r.paired_ratio:11.3f} {r.ppi_lambda:8.2f} {r.failed:6d}")
    for family in ("active", "ipw", "pilot"):
        if family not in set(table["audit"]):
            continue
        result = saving(table, family)
        if "active_labels" in result:
            line = (f"\n{family} reached the uniform audit's median width ({result['uniform_width']:.3f} with "
                    f"{result['uniform_labels']:.0f} labels) with {result['active_labels']:.0f} labels on the grid "
                    f"(median width {result['active_width']:.3f}): {result['saved']:.0%} fewer labels")
            if "interpolated_labels" in result:
                line += (f"; interpolated between grid points, {result['interpolated_labels']:.0f} labels "
                         f"({result['interpolated_saved']:.0%} fewer)")
            lines.append(line + f"; coverage {result['uniform_coverage']:.3f} uniform, "
                                f"{result['active_coverage']:.3f} {family}")
        else:
            lines.append(f"\nno {family} budget on the grid reached the uniform audit's median width "
                         f"({result['uniform_width']:.3f} with {result['uniform_labels']:.0f} labels)")
    sequential = frame[frame["audit"] == "sequential"]
    if len(sequential) and "batches" in sequential.columns:
        batches = pd.DataFrame([b for bs in sequential["batches"] for b in bs])
        for batch, group in batches.groupby("batch"):
            lines.append(f"sequential batch {batch}: {group['new_labels'].mean():.1f} new labels on average "
                         f"({group['expected_new'].mean():.1f} expected), need p90/p10 "
                         f"{group['need_ratio_p90_p10'].median():.2f}; last replication's need: {group['need'].iloc[-1]}")
    return "\n".join(lines)


def main() -> None:
    parser = replication_parser(__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=400, help="B: the uniform audit's expected labels")
    parser.add_argument("--audits", default=",".join(DEFAULT_AUDITS), help=f"comma-separated: {', '.join(AUDITS)}")
    args = parser.parse_args()
    if args.summarise:
        print(summarise(pd.concat([pd.read_json(path, lines=True) for path in args.summarise], ignore_index=True)))
        return
    if not FLOOR * args.n < args.budget * min(FRACTIONS) / BATCHES:
        parser.error(f"a budget of {args.budget:g} is too small for {args.n} pairs at a floor of {FLOOR:g}")
    kinds = tuple(args.audits.split(","))
    if unknown := [k for k in kinds if k not in AUDITS]:
        parser.error(f"unknown audit {unknown[0]!r}: one of {', '.join(AUDITS)}")
    if "uniform" not in kinds:
        parser.error("--audits needs uniform: every width is compared with the uniform audit's at B")
    warnings.filterwarnings("ignore")
    started = time.perf_counter()
    embedder = causal.Embedder()
    chosen = sample_pairs(real_turn_pairs(), args.n, seed=0)
    prompts = embedder.embed(chosen["prompt"].tolist())
    score = causal.personal_score(prompts, embedder.embed(PERSONAL_ANCHORS), embedder.embed(TASK_ANCHORS))
    centred = prompts - prompts.mean(axis=0)
    components = centred @ np.linalg.svd(centred, full_matrices=False)[2][:20].T
    embedder.embed(chosen["prev_response"].fillna("").astype(str).tolist())
    print(f"{args.n:,} real turn-pairs embedded in {time.perf_counter() - started:.0f} s", flush=True)
    records = run_replications(lambda rep: replicate(chosen, score, components, embedder, rep, args.budget, kinds),
                               args.first, args.reps, args.out)
    print(summarise(pd.DataFrame(records)))


if __name__ == "__main__":
    main()
