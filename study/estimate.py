"""Stage function for the causal estimates: scored pairs in; estimates.json, estimates.csv,
matched_pairs.csv and report.html out, each recording how it was made."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from empathy_study import causal
from empathy_study.shared import write_json, write_parquet, write_text
from empathy_study.study import selection
from empathy_study.study.audit_design import AUDIT_NEED
from empathy_study.study.export import validation_note
from empathy_study.study.progress import Progress, Step, quiet
from empathy_study.study.provenance import file_sha256, git_state, provenance, read_scored_pairs, versions
from empathy_study.study.workspace import StudyError, Workspace

CHECK_LOG = "check.jsonl"  # one line per simulated study of `--check`, written as each finishes
CHECK_HEADER = "empathy-study check (simulated studies)"
DEFAULT_CHECK_REPS = 50


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


def check_reps(check: bool, reps: int | None) -> int | None:
    """How many simulated studies `--check` runs (None: no check), or a StudyError for a bad option."""
    if reps is not None and not check:
        raise StudyError("--check-reps is the number of simulated studies of --check: add --check")
    if reps is not None and reps < 1:
        raise StudyError(f"invalid option --check-reps: the check needs at least 1 simulated study (got {reps})")
    return (DEFAULT_CHECK_REPS if reps is None else reps) if check else None


def estimate(pairs_path: Path, out: Path, config: causal.CausalConfig, progress: Progress = quiet,
             title: str | None = None, terminal_path: Path | None = None,
             check: int | None = None) -> causal.EstimateResult:
    """Every estimator on one scored-pairs table; the four outputs written into `out`.

    Selection on replying is analysed from `terminal_path` (default: scored_terminal_pairs.parquet beside
    the scored pairs, where `empathy export` writes it). With `check` (a number of simulated studies),
    the estimators are then checked on simulated studies built from this one (`run_check`) and the
    outputs rewritten with the check: a check cut short leaves the estimate written.
    """
    pairs, recorded = read_scored_pairs(pairs_path)
    semisynthetic = bool(pairs.get("semisynthetic", pd.Series(dtype=bool)).any())
    embedder = causal.Embedder(embedding=config.embedding)
    steps = lambda step, done, total: progress(Step(step, done, total))  # noqa: E731
    terminal_path = terminal_path or selection.locate_terminal(pairs_path)
    made_from = provenance(
        inputs={"scored_pairs": pairs_path},
        seeds={"estimate": config.seed},
        input_sha256=file_sha256(pairs_path),
        **({"terminal_sha256": file_sha256(terminal_path)} if terminal_path and terminal_path.exists() else {}),
        prompt_versions=recorded.get("prompt_versions", {}),
        config=config.model_dump(),
        upstream=recorded,
        semisynthetic=semisynthetic,
        validation=validation_note(recorded),  # one line: validated by which calibration lock, or never
    )
    result = causal.estimate_effects(pairs, config, embedder, progress=steps,
                                     terminal=selection.read_terminal(terminal_path), provenance=made_from,
                                     judge_columns=recorded.get("panel_columns"))
    title = title or ("Semi-synthetic check: planted effect" if semisynthetic
                      else "Effect of empathetic responses on attachment")
    _write_outputs(result, out, semisynthetic, title)
    if check is not None:
        result.check = run_check(pairs, pairs_path, out / CHECK_LOG, config, embedder, check, result.primary, steps,
                                 recorded.get("panel_columns"))
        if result.check["warning"]:
            result.warnings.append(result.check["warning"])
        result.provenance["seeds"]["check"] = config.seed
        _write_outputs(result, out, semisynthetic, title)
    return result


def _write_outputs(result: causal.EstimateResult, out: Path, semisynthetic: bool, title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "estimates.json", result.to_json())
    write_text(out / "estimates.csv", result.summary_frame().to_csv(index=False))
    write_text(out / "matched_pairs.csv", result.matched_pairs.to_csv(index=False))
    need = out / AUDIT_NEED
    if result.audit_need is not None:  # where an active audit's next batch looks (study/audit_design.py)
        write_parquet(need, result.audit_need)
    else:
        need.unlink(missing_ok=True)  # an older estimate's need must not stand for this one
    write_text(out / "report.html", causal.render_report(result, semisynthetic=semisynthetic, title=title))


def run_check(pairs: pd.DataFrame, pairs_path: Path, log: Path, config: causal.CausalConfig,
              embedder: causal.Embedder, reps: int, primary: str, report, judge_columns: dict | None = None) -> dict:
    """The check's simulated studies, each written to `log` as it finishes; a run cut short resumes
    from the replications of an earlier run on the same scored pairs, configuration and toolkit."""
    started, cpu_started, load_before = time.perf_counter(), time.process_time(), os.getloadavg()
    key = hashlib.sha256(json.dumps({"input_sha256": file_sha256(pairs_path), "config": config.model_dump(),
                                     "versions": versions(), "git": (git_state() or {}).get("commit")},
                                    sort_keys=True, default=str).encode()).hexdigest()
    done, replaced = _read_check_log(log, key)
    header = {"log": CHECK_HEADER, "schema_version": 1, "key": key, "simulated": True, "seed": config.seed,
              "input": str(pairs_path)}
    # rewritten whole (a line torn by a kill is dropped), then one line appended per new replication
    write_text(log, "".join(json.dumps(r, default=str) + "\n" for r in [header, *done.values()]))

    def write(record: dict) -> None:
        with log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")

    world = causal.fit_world(pairs, config, embedder, report, judge_columns)
    block = causal.run_check(world, config, embedder, reps, primary, report, done, write)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    block["runtime"] = {"wall_seconds": wall, "cpu_seconds": cpu, "replications_run": reps - block["resumed"],
                        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
                        "cpu_note": "CPU seconds of this process (all its threads); Ray workers not counted"}
    block["log"] = {"path": str(log), "replaced_earlier_run": replaced,
                    "reuse": "a replication is reused only from a log of the same scored pairs, configuration, "
                             "package versions and commit"}
    return block


def _read_check_log(log: Path, key: str) -> tuple[dict[int, dict], bool]:
    """(replications an earlier run of the same key finished, whether a log of another run is replaced)."""
    if not log.exists():
        return {}, False
    lines = log.read_text(encoding="utf-8").splitlines()
    try:
        header = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        header = {}
    if header.get("log") != CHECK_HEADER or header.get("key") != key:
        return {}, True
    done = {}
    for line in lines[1:]:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line torn by a kill: that replication runs again
            continue
        done[record["rep"]] = record
    return done, False
