"""Measuring the population filter: a labelled sample with a known design, and what it says.

**Design.** Socio-emotional pairs are rare in chat corpora (a few percent), so a simple random
sample finds too few of them to measure recall. The audit sample is stratified by a broad cue
score — how many personal, emotional or social words the user's own words hold — and by the same
score over the conversation's earlier user messages (a continuing turn of a personal conversation
may hold no cue of its own). Strata with cues are sampled at higher rates; every pair's inclusion
probability is recorded, so estimates hold for the whole frame. Each stratum is a random
permutation of its pairs and the sample is its first `n` pairs, so a second wave that raises `n`
adds pairs without disturbing the first.

The cue lexicon is part of the *design*, fixed when a sample is drawn: any filter may be measured
on the sample, whatever it looks at.

**Estimates.** Precision, recall and any other share are ratios of two design-weighted totals.
Their standard errors come from Taylor linearisation within strata (with the finite-population
correction), and their 95 % intervals from Korn & Graubard's Clopper–Pearson interval at the
effective sample size, which stays inside [0, 1] and behaves near 0 and 1 where Wald intervals do
not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.special import betaincinv  # the beta quantile, without loading scipy.stats at CLI start-up

from ._errors import CorpusError

# A broad net on purpose: it should rarely miss a personal pair, and may catch many task pairs.
_CUE = re.compile(
    r"\b(?:feel\w*|felt|sad\w*|happ(?:y|ier|iness)|lonel\w*|alone|love[ds]?|loving|miss(?:ed|ing)?|hate|"
    r"cry\w*|cried|tears?|hurt\w*|afraid|scared|fear\w*|worr\w*|anxi\w*|stress\w*|depress\w*|tired|upset|"
    r"angry|mad|sorry|apolog\w*|thank\w*|thx|appreciate\w*|friends?|friendship|wife|husband|girlfriend|"
    r"boyfriend|gf|bf|partner|mom|mum|mommy|dad|daddy|mother|father|parents?|famil\w*|son|daughter|sister|"
    r"brother|kids?|child(?:ren)?|baby|dating|date|relationship|break ?up|ex|crush|heart\w*|life|lives|"
    r"hug\w*|kiss\w*|smil\w*|laugh\w*|haha\w*|hehe|lol|lmao|wow|awesome|amazing|cute|sweet|kind|nice|"
    r"cool|great|glad|fun|funny|bored|boring|hello|hi|hey|morning|night|how are you|you'?re|your|yourself|"
    r"are you|do you|talk\w*|chat\w*|human|robot|alive|conscious\w*|sentient|emotions?|emotional|"
    r"therap\w*|grief|griev\w*|die|died|dying|death|nervous|excited|proud|ashamed|guilt\w*|jealous|"
    r"insecure|lost|confused|overwhelm\w*|dummy|stupid|idiot|silly|dude|bro|buddy|mate|pal|sweetheart|"
    r"darling|honey|dear|babe|lonely|myself|personal\w*|health|sick|ill|pain|doctor|job|boss|school|"
    r"sleep\w*|dream\w*|wish|hope\w*|please don'?t|i'?m|i am|i was|i feel|me too)\b"
    r"|[!?]{2,}|[:;]-?[()DP]|<3|\*[a-z][a-z ]{1,30}\*",
    re.IGNORECASE,
)
OWN_CHARS = 600  # of each user message: a long paste is material, not the user's own voice

# (name, own cue at least, own cue at most, context cue at least, context cue at most), in order.
STRATA: tuple[tuple[str, int, int, int, int], ...] = (
    ("own3+", 3, 10**9, 0, 10**9),
    ("own2", 2, 2, 0, 10**9),
    ("own1-context2+", 1, 1, 2, 10**9),
    ("own1-context0-1", 1, 1, 0, 1),
    ("own0-context3+", 0, 0, 3, 10**9),
    ("own0-context2", 0, 0, 2, 2),
    ("own0-context1", 0, 0, 1, 1),
    ("own0-context0", 0, 0, 0, 0),
)
AUDIT_COLUMNS = ("stratum", "own_cue", "context_cue", "stratum_size", "stratum_sample", "stratum_rank",
                 "inclusion_prob")


def cue_count(text: str | None) -> int:
    """How many cue words the first OWN_CHARS characters of a user message hold."""
    return len(_CUE.findall((text or "")[:OWN_CHARS]))


def audit_features(pairs: pd.DataFrame) -> pd.DataFrame:
    """pair_id, own_cue (prompt + reply), context_cue and stratum of every pair of a turn-pair table.

    context_cue is the largest cue count of one earlier user message of the same conversation: the
    prompts of its earlier turns in the table, and `prev_prompt` where the table has it.
    """
    missing = [c for c in ("pair_id", "conversation_id", "turn_index", "prompt", "reply") if c not in pairs.columns]
    if missing:
        raise CorpusError(f"the audit design needs the column(s) {', '.join(missing)}")
    frame = pairs[["pair_id", "conversation_id", "turn_index"]].copy()
    prompt_cue = pairs["prompt"].map(cue_count)
    frame["own_cue"] = prompt_cue + pairs["reply"].map(cue_count)
    frame["_prompt_cue"] = prompt_cue
    ordered = frame.sort_values(["conversation_id", "turn_index", "pair_id"])
    before = ordered.groupby("conversation_id", sort=False)["_prompt_cue"].shift(1, fill_value=0)
    context = before.groupby(ordered["conversation_id"], sort=False).cummax().reindex(frame.index)
    if "prev_prompt" in pairs.columns:
        context = np.maximum(context, pairs["prev_prompt"].map(cue_count))
    frame["context_cue"] = context.astype(int)
    frame["stratum"] = stratum_of(frame["own_cue"].to_numpy(), frame["context_cue"].to_numpy())
    return frame.drop(columns=["_prompt_cue", "conversation_id", "turn_index"])


def stratum_of(own: np.ndarray, context: np.ndarray) -> np.ndarray:
    names = np.full(len(own), "", dtype=object)
    for name, own_low, own_high, ctx_low, ctx_high in STRATA:
        hit = (names == "") & (own >= own_low) & (own <= own_high) & (context >= ctx_low) & (context <= ctx_high)
        names[hit] = name
    assert (names != "").all(), "the strata cover every pair"
    return names


PREFILTER_CELLS = ("candidate", "rejected")  # the cheap pass's decision, a second stratifier


def stratum_names(by_prefilter: bool = False) -> list[str]:
    """The design's strata in order: the cue strata, or each cue stratum split by the cheap pass's
    decision ("own3+/candidate", "own3+/rejected", …)."""
    names = [s[0] for s in STRATA]
    return [f"{n}/{cell}" for n in names for cell in PREFILTER_CELLS] if by_prefilter else names


def prefilter_candidates(pairs: pd.DataFrame) -> np.ndarray:
    """Whether the cheap pass keeps each pair (read with its preceding exchange)."""
    from ._prefilter import prefilter_reason

    texts = pairs.reindex(columns=["prompt", "response", "reply", "prev_prompt", "prev_response"]).fillna("")
    return np.array([prefilter_reason(p, r, y or None, pp or None, pr or None) is None
                     for p, r, y, pp, pr in texts.itertuples(index=False)], dtype=bool)


def draw_audit(pairs: pd.DataFrame, sizes: Mapping[str, int], seed: int,
               by_prefilter: bool = False) -> tuple[pd.DataFrame, dict]:
    """The audit sample: the first `sizes[stratum]` pairs of a seeded random order of each stratum.

    With `by_prefilter`, each cue stratum is split in two by the cheap pass's decision, so that a
    measurement of what follows the cheap pass can sample its candidates far more densely than the
    pairs it rejects (the strata are then `stratum_names(True)`). Returns the sampled pairs
    (turn-pair columns + AUDIT_COLUMNS; inclusion_prob = n_h / N_h, exact) and the design (frame
    size, seed, strata with sizes, sample sizes and probabilities).
    """
    names = stratum_names(by_prefilter)
    unknown = sorted(set(sizes) - set(names))
    if unknown:
        raise CorpusError(f"unknown audit stratum {unknown[0]!r}: the strata are {', '.join(names)}")
    if pairs["pair_id"].duplicated().any():
        raise CorpusError("pair_id is not unique in the audit frame")
    features = audit_features(pairs)
    if by_prefilter:
        kept = pd.Series(prefilter_candidates(pairs), index=pairs["pair_id"].to_numpy())
        cell = np.where(kept.reindex(features["pair_id"]).to_numpy(), *PREFILTER_CELLS)
        features["stratum"] = features["stratum"] + "/" + cell
    frame = pairs.merge(features, on="pair_id", how="left")
    chosen, strata = [], []
    for index, name in enumerate(names):
        members = frame[frame["stratum"] == name].sort_values("pair_id")
        size, n = len(members), min(int(sizes.get(name, 0)), len(members))
        rank = np.empty(size, dtype=np.int64)
        rank[np.random.default_rng([seed, index]).permutation(size)] = np.arange(size)
        members = members.assign(stratum_rank=rank, stratum_size=size, stratum_sample=n,
                                 inclusion_prob=n / size if size else 0.0)
        chosen.append(members[members["stratum_rank"] < n])
        strata.append({"stratum": name, "size": size, "sample": n, "inclusion_prob": n / size if size else 0.0,
                       "asked": int(sizes.get(name, 0))})
    sample = pd.concat(chosen, ignore_index=True).sort_values(["stratum", "stratum_rank"], ignore_index=True)
    design = {"frame": len(frame), "seed": seed, "strata": strata, "n": len(sample),
              "stratification": "own cue (prompt + reply, first 600 characters each) × context cue (largest of "
                                "one earlier user message); lexicon in corpus/_audit.py"
                                + (" × the cheap pass's decision (corpus/_prefilter.py)" if by_prefilter else "")}
    return sample, design


# --- estimates -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rate:
    """A design-weighted ratio (precision, recall, a share) with its uncertainty."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n: int  # labelled pairs in the denominator
    n_effective: float  # the sample size a simple random sample would need for the same variance

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()} | {
            "half_width": round(self.half_width, 4)}


def design_ratio(numerator, denominator, strata, stratum_sizes: Mapping[str, int], level: float = 0.95) -> Rate:
    """Σ w·y / Σ w·x over a stratified random sample (w = N_h / n_h), its linearised SE and a
    Korn–Graubard interval.

    `numerator` (y) and `denominator` (x) are per-pair values (0/1 indicators for rates, y ≤ x);
    `strata` names each pair's stratum and `stratum_sizes` gives N_h. n_h is the number of pairs
    of the stratum passed in (labelled pairs: a skipped pair leaves its stratum's sample).
    """
    y = np.asarray(numerator, dtype=float)
    x = np.asarray(denominator, dtype=float)
    strata = np.asarray(strata)
    if not (len(y) == len(x) == len(strata)):
        raise ValueError("numerator, denominator and strata must have the same length")
    names, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    missing = [s for s in names if s not in stratum_sizes]
    if missing:
        raise ValueError(f"no stratum size for {missing[0]!r}")
    population = np.array([stratum_sizes[s] for s in names], dtype=float)
    if (counts > population).any():
        raise ValueError("a stratum holds more sampled pairs than its size")
    weight = (population / counts)[inverse]
    x_total = float((weight * x).sum())
    n_den = int((x > 0).sum())
    if x_total == 0:
        return Rate(float("nan"), float("nan"), float("nan"), float("nan"), n_den, 0.0)
    ratio = float((weight * y).sum() / x_total)
    residual = weight * (y - ratio * x) / x_total  # each pair's linearised contribution
    variance = 0.0
    for h in range(len(names)):
        if counts[h] < 2:
            continue  # a stratum with one labelled pair carries no variance estimate
        part = residual[inverse == h]
        fpc = 1 - counts[h] / population[h]
        variance += fpc * counts[h] / (counts[h] - 1) * ((part - part.mean()) ** 2).sum()
    se = float(np.sqrt(variance))
    low, high, n_eff = korn_graubard(ratio, se, n_den, level)
    return Rate(ratio, se, low, high, n_den, n_eff)


def korn_graubard(p: float, se: float, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """Clopper–Pearson at the effective sample size n* = p(1 − p) / se², capped at n (Korn & Graubard
    1998); with no estimated variance (p = 0 or 1, or one stratum) n* = n."""
    if n == 0 or np.isnan(p):
        return float("nan"), float("nan"), 0.0
    n_eff = float(n) if se == 0 or p in (0.0, 1.0) else min(float(n), p * (1 - p) / se**2)
    x = p * n_eff
    alpha = 1 - level
    low = 0.0 if x <= 0 else float(betaincinv(x, n_eff - x + 1, alpha / 2))
    high = 1.0 if x >= n_eff else float(betaincinv(x + 1, n_eff - x, 1 - alpha / 2))
    return low, high, n_eff


def filter_rates(truth, kept, strata, stratum_sizes: Mapping[str, int], among=None) -> dict[str, Rate]:
    """Precision and recall of a filter's decisions (`kept`) against labels (`truth`), and the share
    it keeps, over the frame — or, with `among` (a mask), within that part of it (a second pass
    measured on the candidates of the first)."""
    truth = np.asarray(truth, dtype=bool)
    kept = np.asarray(kept, dtype=bool)
    among = np.ones(len(truth), dtype=bool) if among is None else np.asarray(among, dtype=bool)
    return {
        "precision": design_ratio(truth & kept & among, kept & among, strata, stratum_sizes),
        "recall": design_ratio(truth & kept & among, truth & among, strata, stratum_sizes),
        "kept_share": design_ratio(kept & among, among, strata, stratum_sizes),
        "prevalence": design_ratio(truth & among, among, strata, stratum_sizes),
    }
