"""`empathy estimate DIR|PAIRS [--out OUT]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from empathy_study import causal, study
from empathy_study.study.cli._common import console, progress_display, user_errors
from empathy_study.study.workspace import StudyError


def results_table(result: causal.EstimateResult) -> Table:
    table = Table(title="Effect of empathy (≥ high) vs not (≤ low) on attachment", title_justify="left")
    for column in ("method", "estimand", "weighted", "estimate", "95 % CI", "n used", "validated"):
        table.add_column(column, justify="left" if column in ("method", "estimand") else "right")
    for r in result.rows:
        if r.estimate != r.estimate:  # not estimated: its reason is among the warnings
            table.add_row(r.method, r.estimand, "yes" if r.weighted else "", "–", "–", "0", "–")
            continue
        ci = f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]" + ("" if r.interval_valid else " ✗")
        table.add_row(r.method + (" ★" if r.label == result.primary else ""), r.estimand,
                      "yes" if r.weighted else "", f"{r.estimate:+.3f}", ci, f"{r.n_used:,}",
                      "yes" if r.validation == "validated" else "no")
    table.caption = ("★ pre-specified primary estimate; ✗ interval known not to cover (plain matching); validated: "
                     "covered on every bench design that applies (why not: estimates.json, report.html)")
    return table


def check_table(result: causal.EstimateResult) -> Table:
    """Each checked row on the SIMULATED studies, beside the study's own estimate."""
    block = result.check
    table = Table(title=f"Check on {block['reps']} SIMULATED studies built from this one (planted effect known; "
                        "not a finding)", title_justify="left")
    table.add_column("row")
    for column in ("yours", "coverage [95 % CI]", "bias", "RMSE", "width"):
        table.add_column(column, justify="right", no_wrap=True)
    own = {r.label: r for r in result.rows}
    for row in block["rows"]:
        mine = own.get(row["label"])
        yours = f"{mine.estimate:+.3f}" if mine is not None and mine.estimate == mine.estimate else "–"
        label = row["label"] + (" ★" if row["primary"] else "")
        if not row["estimated"]:
            table.add_row(label, yours, f"not estimated (0 of {row['reps']})", "–", "–", "–")
            continue
        low, high = row["coverage_ci"]
        some = "" if row["estimated"] == row["reps"] else f" ({row['estimated']} of {row['reps']})"
        table.add_row(label, yours, f"{row['coverage']:.2f} [{low:.2f}–{high:.2f}]{some}", f"{row['bias']:+.3f}",
                      f"{row['rmse']:.3f}", f"{row['median_width']:.3f}")
    surfaces = block["surfaces"]
    table.caption = (f"★ primary. Simulated data, surfaces fitted to yours (propensity AUC "
                     f"{surfaces['propensity']['auc_out_of_fold']:.2f}, outcome R² "
                     f"{surfaces['outcome']['r2_out_of_fold']:.2f}, out of fold), planted effect "
                     f"{block['planted']['base']:+.2f} (SD {block['planted']['spread_sd']:.2f}). Coverage of the 95 % "
                     f"intervals with its Wilson CI; width: median interval width. "
                     f"{block['runtime']['wall_seconds']:.0f} s; every replication in {block['log']['path']}")
    return table


def print_warnings(result: causal.EstimateResult) -> None:
    for i, line in enumerate(result.warnings):
        style = "bold red" if i == 0 and result.primary_missing else "bold yellow"  # the missing primary is first
        console.print(f"[{style}]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def print_robustness(result: causal.EstimateResult) -> None:
    """One line of sensitivity, one per refuter (the numbers are in estimates.json and the report)."""
    block = result.sensitivity
    parts = []
    for method, value in block.get("e_value", {}).items():
        if method != "how":
            parts.append(f"E-value of {method} {value['e_value']:.2f} (CI {value['e_value_ci']:.2f})")
    if block.get("rosenbaum"):
        gamma = block["rosenbaum"]["gamma_max"]
        parts.append("matching significant up to Γ = " + (f"{gamma:.2f}" if gamma else "– (not at Γ = 1)"))
    for method, ovb in block.get("omitted_variable", {}).items():
        if ovb.get("robustness_value_ci") is not None:
            parts.append(f"robustness value of {method} {ovb['robustness_value_ci']:.3f}")
    if parts:
        console.print("sensitivity: " + "; ".join(parts), highlight=False)
    for target, checks in result.refuters.items():
        for name, r in checks.items():
            console.print(f"refuter {name.replace('_', ' ')} ({r.get('kind', '')}) of {target}: {r['verdict']} — "
                          f"{escape(r['summary'])}", highlight=False)


def print_selection(result: causal.EstimateResult) -> None:
    """The estimand's population, and the reply effect and Lee bounds where terminal pairs were judged."""
    block = result.selection
    if not block.get("available"):
        console.print(f"selection on replying: every estimate is conditional on a reply; not analysed — "
                      f"{escape(str(block.get('reason')))}", highlight=False)
        return
    reply, lee = block["reply_effect"], block["lee_bounds"]
    console.print(f"effect of empathy on replying: {reply['estimate']:+.3f} [{reply['ci_low']:.3f}, "
                  f"{reply['ci_high']:.3f}] — {reply['verdict']}", highlight=False)
    interval = "" if lee["ci_low"] is None else f" (95 % CI {lee['ci_low']:.3f} … {lee['ci_high']:.3f})"
    console.print(f"Lee bounds on the effect on attachment among always-repliers: [{lee['lower']:.3f}, "
                  f"{lee['upper']:.3f}]{interval}; assumes monotonicity", highlight=False)
    for line in block.get("warnings", []):
        console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


@user_errors
def estimate(
    pairs: Annotated[Path, typer.Argument(help="A study directory (its scored_pairs.parquet), or any Parquet/CSV "
                                               "file with the scored_pairs columns.", resolve_path=True)],
    out: Annotated[Path | None, typer.Option(help="Directory for estimates.json, estimates.csv, matched_pairs.csv and "
                                                  "report.html (default: DIR/estimates).", file_okay=False,
                                             resolve_path=True)] = None,
    treat_high: Annotated[float | None, typer.Option(help="Treated if empathy ≥ this (default 5).")] = None,
    treat_low: Annotated[float | None, typer.Option(help="Control if empathy ≤ this (default 3); scores between are excluded.")] = None,
    distance: Annotated[str | None, typer.Option(help="Matching distance: cosine (prompt embedding), propensity, or combined.")] = None,
    caliper: Annotated[float | None, typer.Option(help="Largest cosine distance between matched prompts (default 0.5).")] = None,
    embedding: Annotated[str | None, typer.Option(help="Prompt embedding: minilm (all-MiniLM-L6-v2 as int8 ONNX), "
                                                      "minilm-torch (the fp32 PyTorch model) or fast (a static model "
                                                      "distilled from it; for the whole corpus).")] = None,
    dims: Annotated[int | None, typer.Option(help="Principal components kept of the prompt embedding (default 128).")] = None,
    nuisance: Annotated[str | None, typer.Option(help="Propensity and outcome model class: auto (chosen per nuisance "
                                                     "by out-of-fold loss), linear, spline, kernel or boosting.")] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-fitting folds, grouped by user (default 5).")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="User-bootstrap draws of the Lee bounds (default 1000).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random step (default 0).")] = None,
    terminal: Annotated[Path | None, typer.Option(help="Scored terminal pairs for selection on replying (default: "
                                                       "scored_terminal_pairs.parquet beside PAIRS, if there).",
                                                  exists=True, dir_okay=False, resolve_path=True)] = None,
    check: Annotated[bool, typer.Option("--check", help="Also check the estimators on SIMULATED studies built from this "
                                                        "one (its texts, covariates, users, sample and audit design; "
                                                        "flexible treatment and outcome surfaces; a planted effect): "
                                                        "bias, coverage and width of each row on data shaped like "
                                                        "yours, in estimates.json (check), the report and OUT/"
                                                        "check.jsonl.")] = False,
    check_reps: Annotated[int | None, typer.Option(help=f"Simulated studies of --check (default "
                                                        f"{study.DEFAULT_CHECK_REPS}; a few minutes on the demo's "
                                                        "3,000 pairs).")] = None,
) -> None:
    """Estimate the effect of empathetic responses on attachment: naive, matching (greedy, optimal), doubly
    robust, and — once the blind audit sample has human labels — doubly robust corrected for the judges' errors.

    Defaults come from the [causal] table of the study's study.toml (the directory given, or the
    one holding PAIRS); options given here override them. Every output records the treatment
    rule, seeds and versions; warnings (estimates past the scale, rows not estimated, small arms,
    few clusters, failed judges, missing audit labels) are printed here and shown in the report.

    With --check, each row is then also run on simulated studies built from this one, with a
    planted effect: its coverage, bias and width on data shaped like yours are printed beside the
    estimate, and a primary whose coverage there is below 0.85 is a warning.
    """
    reps = study.check_reps(check, check_reps)
    path, ws = study.locate_pairs(pairs)
    if out is None:
        if ws is None or path != ws.scored_pairs:
            raise StudyError("--out is needed when PAIRS is a file outside a study directory")
        out = ws.estimates
    config = study.estimate_config(ws, {
        "treat_high": treat_high, "treat_low": treat_low, "distance": distance, "caliper": caliper,
        "embedding": embedding, "embedding_dims": dims, "nuisance": nuisance, "folds": folds, "bootstrap": bootstrap, "seed": seed},
        options={"embedding_dims": "--dims"})
    with progress_display() as progress:
        result = study.estimate(path, out, config, progress, terminal_path=terminal, check=reps)
    console.print(results_table(result))
    if result.check:
        console.print(check_table(result))
    print_robustness(result)
    print_selection(result)
    if result.gold.get("summary"):
        console.print(result.gold["summary"], highlight=False)
    if (result.gold.get("design") or {}).get("sentence"):
        console.print(result.gold["design"]["sentence"], highlight=False)
    print_warnings(result)
    console.print(f"rule: {result.rule}")
    console.print(result.provenance["validation"], highlight=False, markup=False)
    console.print(f"report: {out / 'report.html'}")
