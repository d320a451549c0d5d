"""Stage function for the causal estimates: scored pairs in; estimates.json, estimates.csv,
matched_pairs.csv and report.html out, each recording how it was made."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from empathy_study import causal
from empathy_study.shared import write_json, write_text
from empathy_study.study import selection
from empathy_study.study.export import validation_note
from empathy_study.study.progress import Progress, Step, quiet
from empathy_study.study.provenance import file_sha256, provenance, read_scored_pairs
from empathy_study.study.workspace import StudyError, Workspace


def locate_pairs(path: Path) -> tuple[Path, Workspace | None]:
    """The scored-pairs file a user named: a study directory means its scored_pairs.parquet."""
    if path.is_dir():
        study = Workspace(path)
        return study.require(study.scored_pairs, f"empathy export {path}"), study
    if not path.exists():
        raise StudyError(f"{path} does not exist: give a study directory or a scored-pairs file "
                         "(made by `empathy export DIR`)")
    beside = Workspace(path.parent)
    return path, beside if beside.config_path.exists() else None


def estimate_config(study: Workspace | None, overrides: dict, options: dict[str, str] | None = None
                    ) -> causal.CausalConfig:
    """The study's [causal] table (defaults without one), with the options given on top; a bad one is
    named as the user typed it (`options`: key → option, where the option is not `--<key>`)."""
    base = study.config().causal if study is not None else causal.CausalConfig()
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return causal.CausalConfig.model_validate({**base.model_dump(), **given})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0])
        option = (options or {}).get(key, "--" + key.replace("_", "-"))
        raise StudyError(f"invalid option {option}: {first['msg']}") from exc


def estimate(pairs_path: Path, out: Path, config: causal.CausalConfig, progress: Progress = quiet,
             title: str | None = None, terminal_path: Path | None = None) -> causal.EstimateResult:
    """Every estimator on one scored-pairs table; the four outputs written into `out`.

    Selection on replying is analysed from `terminal_path` (default: scored_terminal_pairs.parquet beside
    the scored pairs, where `empathy export` writes it).
    """
    pairs, recorded = read_scored_pairs(pairs_path)
    semisynthetic = bool(pairs.get("semisynthetic", pd.Series(dtype=bool)).any())
    embedder = causal.Embedder(embedding=config.embedding)
    result = causal.estimate_effects(pairs, config, embedder,
                                     progress=lambda step, done, total: progress(Step(step, done, total)))
    terminal_path = terminal_path or selection.locate_terminal(pairs_path)
    result.selection = selection.selection_block(pairs, terminal_path, config, embedder, progress)
    result.provenance = provenance(
        inputs={"scored_pairs": pairs_path},
        seeds={"estimate": config.seed},
        input_sha256=file_sha256(pairs_path),
        **({"terminal_sha256": file_sha256(terminal_path)} if terminal_path and terminal_path.exists() else {}),
        prompt_versions=recorded.get("prompt_versions", {}),
        config=config.model_dump(),
        upstream=recorded,
        embeddings={"embedding": embedder.embedding, "model": embedder.model_name, "embedded_now": embedder.embedded},
        semisynthetic=semisynthetic,
        validation=validation_note(recorded),  # one line: validated by which calibration lock, or never
    )
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "estimates.json", result.to_json())
    write_text(out / "estimates.csv", result.summary_frame().to_csv(index=False))
    write_text(out / "matched_pairs.csv", result.matched_pairs.to_csv(index=False))
    report = causal.render_report(result, semisynthetic=semisynthetic,
                                  title=title or ("Semi-synthetic check: planted effect" if semisynthetic
                                                  else "Effect of empathetic responses on attachment"))
    write_text(out / "report.html", report)
    return result
