"""Which rows of an estimate have been shown to cover, and which are exploratory.

A row is *validated* when its 95 % interval covered the truth in at least `COVERAGE_FLOOR` of the
replications on every bench design that applies to it (bench/estimator_coverage.py, many
replications on real text with planted effects), under the settings the bench ran with. Anything
else — a row the bench did not run, a design where it fell short, or a study whose settings differ
from the bench's in a way that can change coverage — is *exploratory*, and says why.

The record (`validation.json`, package data next to this module) is written by the bench with its
command, date and per-design figures; the same record gives the refuters' measured level and power
and the heterogeneity test's level. Nothing here estimates anything.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

COVERAGE_FLOOR = 0.90
# Bench designs each kind of row must have covered on (`weighted` rows: the stratified sample's design).
UNWEIGHTED_DESIGNS = ("planted", "nonlinear", "ushape", "usershift")
WEIGHTED_DESIGNS = ("weighted",)
# Settings that change what a row's interval is; a study that differs in one is outside the evidence. The
# embedding is recorded per row and design (the bench's rows were not all estimated with the same one).
SETTINGS = ("treat_high", "treat_low", "embedding_dims", "prev_embedding_dims", "distance", "caliper",
            "propensity_caliper", "neighbours", "nuisance", "folds", "propensity_clip", "trim")


@lru_cache(maxsize=1)
def record() -> dict:
    """The bench's validation record, or {} when none has been written."""
    path = resources.files(__package__).joinpath("validation.json")
    return json.loads(path.read_text()) if path.is_file() else {}


def differing_settings(config: dict, evidence: dict) -> list[str]:
    bench = evidence.get("config", {})
    return [f"{key} = {config.get(key)!r} (bench: {bench.get(key)!r})" for key in SETTINGS
            if key in bench and config.get(key) != bench.get(key)]


def row_status(label: str, weighted: bool, config: dict, evidence: dict | None = None) -> tuple[str, str]:
    """("validated" | "exploratory", why) for the row called `label` (method · estimand) under `config`."""
    evidence = record() if evidence is None else evidence
    if not evidence:
        return "exploratory", "no validation record: bench/estimator_coverage.py has not been run for this version"
    designs = WEIGHTED_DESIGNS if weighted else UNWEIGHTED_DESIGNS
    results = evidence.get("rows", {}).get(label + (" · weighted" if weighted else ""), {})
    missing = [d for d in designs if d not in results]
    unrun = f"not run on the bench design{'s' if len(missing) > 1 else ''} {', '.join(missing)}" if missing else ""
    # A shortfall where it was run is the stronger reason, so it is said first.
    short = [f"{d} {results[d]['coverage']:.2f}" for d in designs
             if d in results and results[d]["coverage"] < COVERAGE_FLOOR]
    if short:
        return "exploratory", (f"its 95 % interval covered less than {COVERAGE_FLOOR:.0%} of the time on the bench "
                               f"design{'s' if len(short) > 1 else ''} {', '.join(short)}"
                               + (f"; {unrun}" if unrun else ""))
    if missing:
        return "exploratory", unrun
    other = sorted({str(results[d].get("embedding", evidence.get("config", {}).get("embedding"))) for d in designs}
                   - {config.get("embedding")})
    if other:
        return "exploratory", (f"covered on the bench with the prompt embedding {' and '.join(map(str, other))}, "
                               f"not this study's {config.get('embedding')!r}")
    differs = differing_settings(config, evidence)
    if differs:
        return "exploratory", "validated under the bench's settings, which this study changes: " + "; ".join(differs)
    coverage = ", ".join(f"{d} {results[d]['coverage']:.2f} of {results[d].get('reps', evidence.get('reps', '?'))}"
                         for d in designs)
    return "validated", f"covered on every bench design ({coverage} replications)"


def refuter_evidence(name: str, evidence: dict | None = None) -> str:
    """One sentence: the refuter's measured false-alarm rate and power on the bench, or that it has none."""
    evidence = record() if evidence is None else evidence
    figures = evidence.get("refuters", {}).get(name)
    if not figures:
        return "Its level and power have not been measured on the bench."
    parts = [f"{case}: fails {entry['failed']:.0%} of {entry['reps']} runs"
             + (f" (estimated with the {entry['embedding']} embedding)" if "embedding" in entry else "")
             for case, entry in figures.items()]
    return "Measured on the bench — " + "; ".join(parts) + "."


def heterogeneity_evidence(evidence: dict | None = None) -> str:
    """One sentence: how often the calibration test rejected on the bench's designs, or that it was not run."""
    evidence = record() if evidence is None else evidence
    designs = evidence.get("heterogeneity", {}).get("designs", {})
    if not designs:
        return "The test's level has not been measured on the bench."
    parts = [f"{name} ({entry['pairs']:,} pairs): rejected {entry['rejects']:.0%} of {entry['reps']}"
             for name, entry in designs.items()]
    return ("Measured on the bench (bench/hte_level.py; null designs: only users differ; power design: a planted "
            "modifier heterogeneity) — " + "; ".join(parts) + ".")
