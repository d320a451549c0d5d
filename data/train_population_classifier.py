"""Fit the offline population classifier and write it as package data (corpus/population_classifier.json).

Training data: the AI-labelled audit and dev sets (data/README.md) — never the held-out set
`socioemotional_holdout.jsonl`, which this script does not read. Everything chosen here (which texts
are embedded, the regularisation, the decision threshold) is chosen by cross-validation on the
training data: folds group pairs by conversation, and every candidate setting is scored by the
design-weighted precision and recall of the default path (cheap pass, then the classifier) on the
audit pairs of the held-out folds, weighted to the audit frame. The threshold rule, fixed before
any held-out figure existed: the largest cross-validated recall at a cross-validated precision of at
least 0.6; if no threshold reaches 0.6, the threshold of the largest F1.

Usage (from the repository root; embeds about 9,000 texts on first run, cached afterwards):
  .venv/bin/python data/train_population_classifier.py [--search]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import platform
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold

from empathy_study import corpus
from empathy_study.corpus import _classifier
from empathy_study.study import population

HERE = Path(__file__).resolve().parent
TRAINING = ("socioemotional_audit.jsonl", "socioemotional_dev.jsonl")
OUT = HERE.parent / "corpus" / _classifier.MODEL_FILE
# A first search (the same script with every role set of four texts and C up to 0.3) found all within
# 0.02 of each other; prev_response is the costliest text to embed (long assistant answers), so the
# search is narrowed to the sets that leave it out.
ROLE_SETS = {"prompt+reply": ("prompt", "reply"), "prompt+reply+prev_prompt": ("prompt", "reply", "prev_prompt")}
C_GRID = (0.01, 0.03, 0.1)
TRAIN_ON = ("all labelled", "cheap-pass candidates")
MIN_PRECISION = 0.6
SEEDS = (0, 1, 2)


def load() -> pd.DataFrame:
    frames = []
    for name in TRAINING:
        frame = population.read_audit(HERE / name)
        frame["source"] = name
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    cheap = population.filter_decisions(table)["prefilter_kept"].to_numpy()
    table["cheap"] = cheap
    # What the model decides about: the cheap pass's candidates less those the fenced-response rule
    # rejects first (corpus/_classifier.py). The rule was added after the first held-out measurement
    # found 4.6 % of the kept pairs fenced (target < 1 %); decided on these training sets (no socio-
    # emotional candidate has a fenced response, 15 negatives do), never on held-out labels.
    table["candidate"] = cheap & ~_classifier.fenced_response(table)
    return table


def embed_all(table: pd.DataFrame) -> dict[str, np.ndarray]:
    embedder = _classifier.classifier_embedder()
    texts = _classifier.embedded_texts(table)
    return {role: embedder.embed(texts[role]).astype(np.float64) for role in _classifier.TEXTS}


def design(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict]:
    audit = (table["source"] == TRAINING[0]).to_numpy()
    sizes = table[audit].groupby("stratum")["stratum_size"].first().astype(int).to_dict()
    return audit, table["stratum"].to_numpy(), sizes


def fit(x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray, LogisticRegression]:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5_000)
    model.fit((x - mean) / scale, y)
    return mean, scale, model


def oof_scores(x, y, groups, candidate, c, train_on, seed) -> np.ndarray:
    """Out-of-fold scores of every pair (folds grouped by conversation, stratified by label)."""
    scores = np.zeros(len(y))
    for train, test in StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed).split(x, y, groups):
        if train_on == "cheap-pass candidates":
            train = train[candidate[train]]
        mean, scale, model = fit(x[train], y[train], c)
        scores[test] = model.predict_proba((x[test] - mean) / scale)[:, 1]
    return scores


def rates_at(scores, threshold, y, candidate, audit, strata, sizes) -> dict:
    kept = candidate & (scores >= threshold)  # candidate: the cheap pass's, less those with a fenced response
    return {k: v.estimate for k, v in corpus.filter_rates(y[audit], kept[audit], strata[audit], sizes).items()}


def fence_share(table, scores, threshold, candidate, audit, strata, sizes) -> float:
    kept = candidate & (scores >= threshold)
    fence = _classifier.has_fence(table)
    return corpus.design_ratio((kept & fence)[audit], kept[audit], strata[audit], sizes).estimate


def choose_threshold(scores, y, candidate, audit, strata, sizes) -> tuple[float, dict, str]:
    grid = np.unique(np.quantile(scores[candidate], np.linspace(0, 0.99, 200)))
    table = [(t, rates_at(scores, t, y, candidate, audit, strata, sizes)) for t in grid]
    eligible = [(t, r) for t, r in table if r["precision"] >= MIN_PRECISION]
    if eligible:
        t, r = max(eligible, key=lambda item: (item[1]["recall"], -item[0]))
        return float(t), r, f"largest recall at precision >= {MIN_PRECISION}"

    def f1(r):
        p, q = r["precision"], r["recall"]
        return 0.0 if not p + q or np.isnan(p) else 2 * p * q / (p + q)

    t, r = max(table, key=lambda item: f1(item[1]))
    return float(t), r, f"largest F1 (no threshold reached precision {MIN_PRECISION})"


def features(vectors, cheap, roles) -> np.ndarray:
    return np.hstack([vectors[r] for r in roles] + [cheap])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", action="store_true", help="print every setting's cross-validated figures")
    args = parser.parse_args()
    table = load()
    y = table["socio_emotional"].astype(bool).to_numpy()
    candidate = table["candidate"].to_numpy()
    groups = table["conversation_id"].astype(str).to_numpy()
    audit, strata, sizes = design(table)
    vectors = embed_all(table)
    cheap = _classifier.cheap_features(table)
    print(f"{len(table):,} training pairs, {y.sum()} socio-emotional, {table['cheap'].sum()} cheap-pass candidates, "
          f"{candidate.sum()} without a fenced response ({(y & candidate).sum()} of them socio-emotional)")

    results = []
    for (name, roles), c, train_on in product(ROLE_SETS.items(), C_GRID, TRAIN_ON):
        x = features(vectors, cheap, roles)
        per_seed, fences = [], []
        for seed in SEEDS:
            scores = oof_scores(x, y, groups, candidate, c, train_on, seed)
            per_seed.append(choose_threshold(scores, y, candidate, audit, strata, sizes))
            fences.append(fence_share(table, scores, per_seed[-1][0], candidate, audit, strata, sizes))
        recall = float(np.mean([r["recall"] for _, r, _ in per_seed]))
        precision = float(np.mean([r["precision"] for _, r, _ in per_seed]))
        results.append({"roles": name, "C": c, "train_on": train_on, "cv_precision": precision, "cv_recall": recall,
                        "cv_fence_share": float(np.mean(fences)),
                        "threshold": float(np.median([t for t, _, _ in per_seed])), "rule": per_seed[0][2]})
        if args.search:
            print(f"  {name:26s} C={c:<5} {train_on:22s} precision {precision:.3f} recall {recall:.3f} "
                  f"fence share {np.mean(fences):.3f} threshold {results[-1]['threshold']:.3f} ({per_seed[0][2]})",
                  flush=True)

    def merit(r):  # the rule of choose_threshold, applied to the settings
        return (r["cv_precision"] >= MIN_PRECISION, r["cv_recall"] if r["cv_precision"] >= MIN_PRECISION else
                2 * r["cv_precision"] * r["cv_recall"] / max(1e-9, r["cv_precision"] + r["cv_recall"]))

    best = max(results, key=merit)
    roles = ROLE_SETS[best["roles"]]
    x = features(vectors, cheap, roles)
    train = np.ones(len(y), dtype=bool) if best["train_on"] == "all labelled" else candidate
    mean, scale, model = fit(x[train], y[train], best["C"])
    from empathy_study.causal import _static
    record = json.loads((_static.onnx_model_dir() / _static.EXPORT_RECORD).read_text())
    provenance = {
        "what": "logistic regression (scikit-learn, L2, class_weight balanced) over int8 ONNX MiniLM embeddings "
                "of the pair's texts and cheap features, applied to the cheap pass's candidates",
        "trained_on": [{"file": f"data/{name}", "sha256": hashlib.sha256((HERE / name).read_bytes()).hexdigest()}
                       for name in TRAINING],
        "training_pairs": int(train.sum()), "training_positives": int(y[train].sum()),
        "labelled_by": "an AI model (Claude, Anthropic) working as a helper on this repository — not humans "
                       "(data/README.md)",
        "held_out": "data/socioemotional_holdout.jsonl: never read by the training script",
        "chosen_by": f"5-fold cross-validation grouped by conversation, seeds {list(SEEDS)}, design-weighted to the "
                     f"audit frame; threshold rule: {best['rule']}",
        "cross_validated": {"precision": round(best["cv_precision"], 4), "recall": round(best["cv_recall"], 4),
                            "code_fence_share_of_kept": round(best["cv_fence_share"], 4)},
        "search": results,
        "date": datetime.date.today().isoformat(),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__,
                     "pandas": pd.__version__, **record["versions"]},
    }
    fitted = _classifier.PopulationClassifier(
        roles, mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]), best["threshold"],
        {"model": record["model"], "onnx_sha256": record["onnx_sha256"]}, provenance)
    data = fitted.to_dict()
    for key in ("mean", "scale", "weights"):
        data[key] = [float(f"{v:.6g}") for v in data[key]]
    OUT.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    raw = OUT.read_bytes()
    print(f"chose {best}; wrote {OUT} ({len(raw):,} bytes, sha256 {hashlib.sha256(raw).hexdigest()})")


if __name__ == "__main__":
    main()
