"""Agreement between the third rater of `socioemotional_agreement.jsonl` and the raters of the two earlier sets.

Per earlier set, weighted to that set (each sampled pair stands for `1 / agreement_prob` of its stratum's
pairs): the share of pairs on which the two raters agree, Cohen's κ (scikit-learn, with those weights),
how often the new rater says yes where the earlier one said yes or no, and the cheap pass's precision among
the set's candidates as each rater reads it — the figure whose gap between the sets (0.23 on the audit's
candidates, 0.13 on the held-out set's) a rater difference could explain. 95 % intervals: 2,000 bootstrap
resamples within the strata. Krippendorff's α (the `krippendorff` package) on the unweighted sample is
printed beside κ as a check of the same agreement by another library.

Usage (from the repository root):
  .venv/bin/python data/socioemotional_agreement_measure.py [--labels LABELS.jsonl]
`--labels` first writes the new rater's answers (`blind_id`, `socio_emotional`, `label_note`) into the set.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "socioemotional_agreement.jsonl"
LABELLED_BY = ("AI model (Claude, Anthropic), a helper on this repository (a third rater, another session than "
               "either earlier set's), reading each pair blind — texts only, no set, stratum or earlier label — "
               "and answering yes/no with the audit's definition; not a human")
BOOTSTRAP = 2_000


def read() -> pd.DataFrame:
    return pd.read_json(SAMPLE, lines=True, dtype={"pair_id": str, "blind_id": str})


def write_labels(path: Path) -> None:
    sample = read()
    labels = pd.read_json(path, lines=True, dtype={"blind_id": str}).set_index("blind_id")
    if labels.index.duplicated().any() or set(labels.index) != set(sample["blind_id"]):
        raise SystemExit(f"error: {path} must hold exactly one answer per blind_id of {SAMPLE.name}")
    sample["socio_emotional"] = sample["blind_id"].map(labels["socio_emotional"]).astype(bool)
    sample["label_note"] = sample["blind_id"].map(labels["label_note"]).fillna("")
    sample["labelled_by"] = LABELLED_BY
    SAMPLE.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in sample.to_dict(orient="records")))


def figures(pairs: pd.DataFrame) -> dict[str, float]:
    """The measurements on one earlier set's sampled pairs (weighted to that set)."""
    weight = 1 / pairs["agreement_prob"].to_numpy()
    earlier, new = pairs["earlier_label"].to_numpy(bool), pairs["socio_emotional"].to_numpy(bool)
    candidate = pairs["agreement_stratum"].str.startswith("candidate").to_numpy()
    return {
        "agreement": float(np.average(earlier == new, weights=weight)),
        "kappa": float(cohen_kappa_score(earlier, new, sample_weight=weight)),
        "new_yes_where_earlier_yes": float(np.average(new[earlier], weights=weight[earlier])),
        "new_yes_where_earlier_no": float(np.average(new[~earlier], weights=weight[~earlier])),
        "candidate_precision_earlier": float(np.average(earlier[candidate], weights=weight[candidate])),
        "candidate_precision_new": float(np.average(new[candidate], weights=weight[candidate])),
    }


def measure(sample: pd.DataFrame, seed: int = 0, bootstrap: int = BOOTSTRAP) -> dict[str, dict]:
    """Per earlier set: each figure, its stratified-bootstrap 95 % interval (degenerate where a stratum
    holds no disagreement, or where the earlier labels are a census), α on the raw sample, and the raw
    counts of the two raters' answers."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, pairs in sample.groupby("source_set", sort=False):
        strata = [group.index.to_numpy() for _, group in pairs.groupby("agreement_stratum")]
        draws = [figures(pairs.loc[np.concatenate([rng.choice(rows, len(rows)) for rows in strata])])
                 for _ in range(bootstrap)]
        point = figures(pairs)
        out[name] = {key: {"estimate": value,
                           "ci": [float(np.nanquantile([d[key] for d in draws], q)) for q in (0.025, 0.975)]}
                     for key, value in point.items()}
        ratings = np.vstack([pairs["earlier_label"].astype(int), pairs["socio_emotional"].astype(int)])
        out[name]["alpha_unweighted_sample"] = float(krippendorff.alpha(reliability_data=ratings,
                                                                       level_of_measurement="nominal"))
        out[name]["pairs"] = len(pairs)
        out[name]["counts"] = {f"earlier {'yes' if e else 'no'}, new {'yes' if n else 'no'}": int(k)
                               for (e, n), k in pairs.groupby(["earlier_label", "socio_emotional"]).size().items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, help="the new rater's answers, written into the set first")
    args = parser.parse_args()
    if args.labels:
        write_labels(args.labels)
    sample = read()
    if sample["socio_emotional"].isna().any():
        raise SystemExit(f"error: {SAMPLE.name} has pairs the new rater has not labelled")
    for name, result in measure(sample).items():
        print(f"{name} (rater of the earlier set against the new rater), {result['pairs']} pairs, "
              f"Krippendorff's α on the sample {result['alpha_unweighted_sample']:.3f}:")
        for key, entry in result.items():
            if isinstance(entry, dict) and "estimate" in entry:
                print(f"  {key:30} {entry['estimate']:.3f} [{entry['ci'][0]:.3f}, {entry['ci'][1]:.3f}]")
        print("  sampled pairs: " + "; ".join(f"{k} {v}" for k, v in result["counts"].items()))


if __name__ == "__main__":
    main()
