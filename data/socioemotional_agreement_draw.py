"""Draw the double-labelled sample `socioemotional_agreement.jsonl` (data/README.md) and the blind file its
new rater reads.

Why: the offline classifier's held-out precision (0.42) fell short of its cross-validated 0.60, and so did
the cheap pass's (0.13 on the held-out set against 0.22 on the audit). The two sets were labelled by two
different AI raters, and no pair was labelled by both, so it is unknown whether the sets or the raters
differ. A third rater labels a sample of each set blind; its agreement with each earlier rater, and its
own positive rate among each set's cheap-pass candidates, tell the two readings apart.

Design: within each earlier set (`socioemotional_audit.jsonl`, rater A; `socioemotional_holdout.jsonl`,
rater B), four strata: the cheap pass's decision (candidate or rejected) × the earlier label. Each
stratum is a seeded random order of its pairs (SEED) and the sample is its first n (SIZES, or the whole
stratum when smaller), so `agreement_prob = n / N` within the set is exact. Stratifying on the earlier
label makes the rare positives numerous enough to measure agreement on; the new rater sees neither the
label nor the stratum.

Usage (from the repository root): .venv/bin/python data/socioemotional_agreement_draw.py BLIND_FILE
writes data/socioemotional_agreement.jsonl (new labels null) and BLIND_FILE (texts and a blind id only,
in an order hashed from the blind id), which the new rater reads instead of this folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from empathy_study import corpus

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "socioemotional_agreement.jsonl"
SETS = {"audit": "socioemotional_audit.jsonl", "holdout": "socioemotional_holdout.jsonl"}
SIZES = {"candidate/yes": 40, "candidate/no": 60, "rejected/yes": 15, "rejected/no": 35}
SEED = 2028
TEXTS = ["prev_prompt", "prev_response", "prompt", "response", "reply"]


def blind_id(pair_id: str) -> str:
    return hashlib.sha256(f"agreement-{SEED}-{pair_id}".encode()).hexdigest()[:10]


def draw(name: str, pairs: pd.DataFrame) -> pd.DataFrame:
    cell = np.where(corpus.prefilter_candidates(pairs), "candidate", "rejected")
    label = np.where(pairs["socio_emotional"].astype(bool), "yes", "no")
    pairs = pairs.assign(agreement_stratum=[f"{c}/{y}" for c, y in zip(cell, label)])
    drawn = []
    for offset, (stratum, n) in enumerate(SIZES.items()):
        members = pairs[pairs["agreement_stratum"] == stratum]
        order = np.random.default_rng([SEED, list(SETS).index(name), offset]).permutation(len(members))
        take = members.iloc[order[:n]]
        drawn.append(take.assign(stratum_size=len(members), stratum_sample=len(take),
                                 agreement_prob=len(take) / len(members)))
    out = pd.concat(drawn, ignore_index=True)
    return out.assign(source_set=name, earlier_label=out["socio_emotional"].astype(bool),
                      earlier_labelled_by=out["labelled_by"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("blind_file", type=Path)
    args = parser.parse_args()
    sample = pd.concat([draw(name, pd.read_json(HERE / file, lines=True, dtype={"pair_id": str,
                                                                                 "conversation_id": str}))
                        for name, file in SETS.items()], ignore_index=True)
    sample["blind_id"] = sample["pair_id"].map(blind_id)
    columns = ["pair_id", "blind_id", "source_set", "agreement_stratum", "stratum_size", "stratum_sample",
               "agreement_prob", "earlier_label", "earlier_labelled_by", *TEXTS]
    sample = sample[columns].assign(socio_emotional=None, labelled_by=None, label_note=None)
    SAMPLE.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n"
                              for row in sample.to_dict(orient="records")))
    blind = sample.sort_values("blind_id")[["blind_id", *TEXTS]]
    args.blind_file.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n"
                                       for row in blind.to_dict(orient="records")))
    print(sample.groupby(["source_set", "agreement_stratum"])[["stratum_size", "stratum_sample"]].first())
    print(f"wrote {SAMPLE.name} ({len(sample)} pairs) and {args.blind_file}")


if __name__ == "__main__":
    main()
