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
    for column in ("method", "estimand", "weighted", "estimate", "95 % CI", "n used"):
        table.add_column(column, justify="left" if column in ("method", "estimand") else "right")
    for r in result.rows:
        if r.estimate != r.estimate:  # not estimated: its reason is among the warnings
            table.add_row(r.method, r.estimand, "yes" if r.weighted else "", "–", "–", "0")
            continue
        ci = f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]" + ("" if r.interval_valid else " ✗")
        table.add_row(r.method + (" ★" if r.label == result.primary else ""), r.estimand,
                      "yes" if r.weighted else "", f"{r.estimate:+.3f}", ci, f"{r.n_used:,}")
    table.caption = "★ pre-specified primary estimate; ✗ interval known not to cover (plain matching)"
    return table


def print_warnings(result: causal.EstimateResult) -> None:
    for line in result.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def print_robustness(result: causal.EstimateResult) -> None:
    """One line of sensitivity, one per refuter (the numbers are in estimates.json and the report)."""
    block = result.sensitivity
    parts = []
    if "dr" in block.get("e_value", {}):
        parts.append(f"E-value of dr {block['e_value']['dr']['e_value']:.2f} (CI {block['e_value']['dr']['e_value_ci']:.2f})")
    if block.get("rosenbaum"):
        gamma = block["rosenbaum"]["gamma_max"]
        parts.append("matching significant up to Γ = " + (f"{gamma:.2f}" if gamma else "– (not at Γ = 1)"))
    if block.get("omitted_variable", {}).get("robustness_value_ci") is not None:
        parts.append(f"robustness value {block['omitted_variable']['robustness_value_ci']:.3f}")
    if parts:
        console.print("sensitivity: " + "; ".join(parts), highlight=False)
    for name, r in result.refuters.items():
        if isinstance(r, dict):
            console.print(f"refuter {name.replace('_', ' ')}: {r['verdict']} — {escape(r['summary'])}", highlight=False)


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
    nuisance: Annotated[str | None, typer.Option(help="Propensity and outcome models: boosting or linear.")] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-fitting folds, grouped by user (default 5).")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="Cluster-bootstrap draws for matching SEs (default 1000).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random step (default 0).")] = None,
    terminal: Annotated[Path | None, typer.Option(help="Scored terminal pairs for selection on replying (default: "
                                                       "scored_terminal_pairs.parquet beside PAIRS, if there).",
                                                  exists=True, dir_okay=False, resolve_path=True)] = None,
) -> None:
    """Estimate the effect of empathetic responses on attachment: naive, matching (greedy, optimal), doubly
    robust, and — once the blind audit sample has human labels — doubly robust corrected for the judges' errors.

    Defaults come from the [causal] table of the study's study.toml (the directory given, or the
    one holding PAIRS); options given here override them. Every output records the treatment
    rule, seeds and versions; warnings (estimates past the scale, rows not estimated, small arms,
    few clusters, failed judges, missing audit labels) are printed here and shown in the report.
    """
    path, ws = study.locate_pairs(pairs)
    if out is None:
        if ws is None or path != ws.scored_pairs:
            raise StudyError("--out is needed when PAIRS is a file outside a study directory")
        out = ws.estimates
    config = study.estimate_config(ws, {
        "treat_high": treat_high, "treat_low": treat_low, "distance": distance, "caliper": caliper,
        "embedding": embedding, "embedding_dims": dims, "nuisance": nuisance, "folds": folds, "bootstrap": bootstrap, "seed": seed})
    with progress_display() as progress:
        result = study.estimate(path, out, config, progress, terminal_path=terminal)
    console.print(results_table(result))
    print_robustness(result)
    print_selection(result)
    if result.gold.get("summary"):
        console.print(result.gold["summary"], highlight=False)
    print_warnings(result)
    console.print(f"rule: {result.rule}")
    console.print(result.provenance["validation"], highlight=False, markup=False)
    console.print(f"report: {out / 'report.html'}")
