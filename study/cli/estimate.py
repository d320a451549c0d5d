"""`empathy estimate PAIRS --out OUT`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import pyarrow.parquet as pq
import typer
from rich.table import Table

import causal
from study.cli._common import console, step_progress, user_errors, write_json
from study.export import TABLE_METADATA_KEY
from study.provenance import file_sha256, provenance
from study.workspace import StudyError, Workspace


def read_scored_pairs(path: Path) -> tuple[pd.DataFrame, dict]:
    """A scored-pairs file (Parquet or CSV) and the provenance its writer recorded, if any."""
    if not path.is_file():
        raise StudyError(f"{path} does not exist")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path), {}
        table = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise StudyError(f"{path} could not be read as Parquet or CSV: {exc}") from exc
    meta = (table.schema.metadata or {}).get(TABLE_METADATA_KEY)
    return table.to_pandas(), (json.loads(meta) if meta else {})


def results_table(result: causal.EstimateResult) -> Table:
    table = Table(title="Effect of empathy (≥ high) vs not (≤ low) on attachment", title_justify="left")
    for column in ("method", "estimand", "weighted", "estimate", "95 % CI", "n used"):
        table.add_column(column, justify="left" if column in ("method", "estimand") else "right")
    for r in result.rows:
        table.add_row(r.method, r.estimand, "yes" if r.weighted else "", f"{r.estimate:+.3f}",
                      f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]", f"{r.n_used:,}")
    return table


def run_estimate(pairs_path: Path, out: Path, config: causal.CausalConfig, title: str | None = None) -> causal.EstimateResult:
    pairs, recorded = read_scored_pairs(pairs_path)
    semisynthetic = bool(pairs.get("semisynthetic", pd.Series(dtype=bool)).any())
    embedder = causal.Embedder()
    with step_progress() as update:
        result = causal.estimate_effects(pairs, config, embedder, progress=update)
    result.provenance = provenance(
        inputs={"scored_pairs": pairs_path},
        seeds={"estimate": config.seed},
        input_sha256=file_sha256(pairs_path),
        prompt_versions=recorded.get("prompt_versions", {}),
        config=config.model_dump(),
        upstream=recorded,
        embeddings={"model": causal.default_cache_dir().name, "embedded_now": embedder.embedded},
        semisynthetic=semisynthetic,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "estimates.json", result.to_json())
    result.summary_frame().to_csv(out / "estimates.csv", index=False)
    result.matched_pairs.to_csv(out / "matched_pairs.csv", index=False)
    report = causal.render_report(result, semisynthetic=semisynthetic,
                                  title=title or ("Semi-synthetic check: planted effect" if semisynthetic
                                                  else "Effect of empathetic responses on attachment"))
    (out / "report.html").write_text(report, encoding="utf-8")
    return result


def estimate(
    pairs: Annotated[Path, typer.Argument(help="scored_pairs.parquet (or any Parquet/CSV with its columns).", dir_okay=False, resolve_path=True)],
    out: Annotated[Path, typer.Option(help="Directory for estimates.json, estimates.csv, matched_pairs.csv and report.html.", file_okay=False, resolve_path=True)],
    treat_high: Annotated[float | None, typer.Option(help="Treated if empathy ≥ this (default 5).")] = None,
    treat_low: Annotated[float | None, typer.Option(help="Control if empathy ≤ this (default 3); scores between are excluded.")] = None,
    distance: Annotated[str | None, typer.Option(help="Matching distance: cosine (prompt embedding), propensity, or combined.")] = None,
    caliper: Annotated[float | None, typer.Option(help="Largest cosine distance between matched prompts (default 0.5).")] = None,
    dims: Annotated[int | None, typer.Option(help="Principal components kept of the prompt embedding (default 128).")] = None,
    nuisance: Annotated[str | None, typer.Option(help="Propensity and outcome models: boosting or linear.")] = None,
    folds: Annotated[int | None, typer.Option(help="Cross-fitting folds, grouped by user (default 5).")] = None,
    bootstrap: Annotated[int | None, typer.Option(help="Cluster-bootstrap draws for matching SEs (default 1000).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random step (default 0).")] = None,
) -> None:
    """Estimate the effect of empathetic responses on attachment: naive, matching (greedy, optimal), doubly robust.

    Defaults come from the [causal] table of the study.toml next to PAIRS, when there is one;
    options given here override them. Every output records the treatment rule, seeds and versions.
    """
    base = Workspace(pairs.parent).config().causal if (pairs.parent / "study.toml").exists() else causal.CausalConfig()
    overrides = {"treat_high": treat_high, "treat_low": treat_low, "distance": distance, "caliper": caliper,
                 "embedding_dims": dims, "nuisance": nuisance, "folds": folds, "bootstrap": bootstrap, "seed": seed}
    try:
        config = causal.CausalConfig.model_validate({**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    except ValueError as exc:
        raise StudyError(f"invalid option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc
    result = run_estimate(pairs, out, config)
    console.print(results_table(result))
    console.print(f"rule: {result.rule}")
    console.print(f"report: {out / 'report.html'}")


estimate = user_errors(estimate)
