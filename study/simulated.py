"""A calibration study of SIMULATED annotators and judges on real text, for the demo, tests and benches.

Real turn-pairs carry a planted truth on both scales; simulated annotators label a Poisson audit
sample of them (blind, `overlap` each), and three simulated judges score every pair: one reads
about a point low, one answers "1" nearly everywhere yet ranks pairs through its expected score,
one is noisy. An older rubric version of the first judge exists on the gold pairs only. Everything
made here says it is simulated: the directory holds `simulated.json`, annotators are called
`simulated-annotator-N`, judges `sim-…` with models `simulated/…`, every rationale begins
"SIMULATED", labels and the sample carry a `simulated` column, and the calibration app puts
SIMULATED in its title bar.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from empathy_study import annotation, judge
from empathy_study.shared import CONSTRUCTS, write_json, write_parquet
from empathy_study.study.workspace import Workspace

JUDGES = (  # name, how it errs
    ("sim-low", "reads about a point below the truth"),
    ("sim-ones", "answers 1 nearly everywhere; its expected score still ranks pairs"),
    ("sim-noisy", "unbiased, with large noise"),
)
OLDER_VERSION = "simulated-older"


def _study_toml(judges: tuple) -> str:
    tables = "".join(f'\n[[judges]]\nname = "{name}"\nmodel = "simulated/{name}"\nlogprobs = true\n'
                     for name, _ in judges)
    return ('# A SIMULATED calibration study (see simulated.json): its judges cannot be called.\n'
            '[study]\nname = "simulated-calibration"\n\n[judge]\nswap_check_pairs = 0\n' + tables)


def simulated_study(out: Path, pairs: pd.DataFrame, *, n: int = 600, gold: int = 150, annotators: int = 4,
                    overlap: int = 2, seed: int = 0) -> Workspace:
    """Write a simulated calibration study into `out` from real turn-pairs; returns its workspace."""
    rng = np.random.default_rng(seed)
    study = Workspace(out)
    out.mkdir(parents=True, exist_ok=True)
    study.config_path.write_text(_study_toml(JUDGES), encoding="utf-8")
    chosen = pairs.sample(n=min(n, len(pairs)), random_state=seed).reset_index(drop=True)
    sample = chosen.copy()
    sample["topic"] = [f"sim-topic-{k}" for k in rng.integers(0, 5, len(sample))]
    sample["stratum"] = sample["topic"]
    sample["inclusion_prob"] = len(sample) / len(pairs)
    sample["simulated"] = True
    write_parquet(study.sample, sample)

    truth = {c: np.clip(rng.normal(4.0, 1.6, len(sample)), 1, 7) for c in CONSTRUCTS}
    write_parquet(out / "simulated_truth.parquet", pd.DataFrame({"pair_id": sample["pair_id"], **truth}))
    versions = study.config().prompt_versions()
    rate = min(1.0, gold / len(sample))
    audited = annotation.audit_draw(sample["pair_id"], rate, seed)

    labels = []
    names = [f"simulated-annotator-{k + 1}" for k in range(annotators)]
    for i in np.flatnonzero(audited):
        for who in rng.choice(names, size=min(overlap, annotators), replace=False):
            for construct in CONSTRUCTS:
                score = int(np.clip(np.rint(truth[construct][i] + rng.normal(0, 0.6)), 1, 7))
                labels.append({"pair_id": sample["pair_id"][i], "construct": construct, "annotator": str(who),
                               "score": score, "mode": "blind", "annotation_id": len(labels) + 1,
                               "updated_at": "simulated", "prompt_version": versions[construct], "simulated": True})
    frame = pd.DataFrame(labels)
    frame["score"] = frame["score"].astype("Int64")
    write_parquet(study.labels, frame)
    write_json(study.annotation_state, {"simulated": True, "audit": {"rate": rate, "seed": seed},
                                       "prompt_versions": versions})

    created = datetime(2026, 1, 1, tzinfo=timezone.utc).isoformat()
    records = []

    def record(pair_id: str, construct: str, name: str, version: str, value: float, expected: float) -> None:
        score = int(np.clip(np.rint(value), 1, 7))
        records.append(judge.JudgmentRecord(
            pair_id=pair_id, construct=construct, judge=name, model=f"simulated/{name}", model_returned=None,
            prompt_version=version, sample_index=0, temperature=0.0, score=score,
            expected_score=float(np.clip(expected, 1, 7)), rationale=f"SIMULATED judgment ({name}).",
            tokens_in=None, tokens_out=None, cost_usd=0.0, latency_ms=None, error=None, created_at=created))

    for construct in CONSTRUCTS:
        t = truth[construct]
        noise = rng.normal(0, 0.7, len(t))
        for i, pair_id in enumerate(sample["pair_id"]):
            record(pair_id, construct, "sim-low", versions[construct], t[i] - 1.2 + noise[i], t[i] - 1.2 + noise[i] / 2)
            ranked = 1 + 0.35 * (t[i] - 1) + rng.normal(0, 0.25)
            record(pair_id, construct, "sim-ones", versions[construct], 1 if t[i] < 6.2 else 2, ranked)
            loud = t[i] + rng.normal(0, 1.5)
            record(pair_id, construct, "sim-noisy", versions[construct], loud, loud)
        for i in np.flatnonzero(audited):  # an earlier rubric text, judged on the gold pairs only
            worse = t[i] - 1.5 + rng.normal(0, 1.3)
            record(sample["pair_id"][i], construct, "sim-low", OLDER_VERSION, worse, worse)
    if study.judgments.exists():
        study.judgments.unlink()
    judge.JudgmentLog(study.judgments).append(records)
    write_json(study.simulation, {
        "simulated": True,
        "what": "real turn-pairs with a planted truth; annotators and judges are simulated from it",
        "seed": seed, "pairs": int(len(sample)), "audit_rate": rate, "annotators": names, "overlap": overlap,
        "judges": {name: how for name, how in JUDGES}, "truth": "simulated_truth.parquet",
    })
    return study
