"""Semi-synthetic studies: real conversation text, simulated scores with a planted effect.

The texts (prompt, response, reply, previous turn) are real turn-pairs. Empathy and attachment
scores are simulated so that the true effect of every unit is known. Confounding runs through
the prompt's meaning (how personal vs task-like it reads, measured against anchor sentences in
the embedding space), the model (several are simulated: ShareGPT has one family) and the turn and
time of day. The effect is heterogeneous: larger for one model and for personal prompts.

The truth is returned in a separate table; the estimators never see it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PERSONAL_ANCHORS = [
    "I feel so lonely and sad lately, I don't know who to talk to.",
    "My girlfriend left me and I can't stop crying.",
    "Thank you for listening to me, you really understand me.",
    "I'm anxious about my future and my family.",
]
TASK_ANCHORS = [
    "Write a Python function that parses a CSV file.",
    "Summarize this article in five bullet points.",
    "Explain how a TCP handshake works.",
    "Translate the following paragraph into French.",
]
MODELS = ("gpt-3.5-turbo", "gpt-4", "claude-2")


@dataclass(frozen=True)
class PlantedEffect:
    base: float = 0.6  # effect for a task-like prompt on gpt-3.5 / claude
    gpt4_extra: float = 0.3  # gpt-4's users respond more
    personal_slope: float = 0.25  # × tanh(personal score): more for personal prompts
    confounding: float = 0.9  # how strongly prompt meaning drives both treatment and outcome
    noise: float = 1.0  # SD of the outcome noise before rounding to 1..7


def personal_score(prompt_embedding: np.ndarray, anchor_embedding_personal: np.ndarray,
                   anchor_embedding_task: np.ndarray) -> np.ndarray:
    """Standardised projection of each prompt on the personal-minus-task anchor direction."""
    direction = anchor_embedding_personal.mean(axis=0) - anchor_embedding_task.mean(axis=0)
    raw = prompt_embedding @ direction
    return (raw - raw.mean()) / raw.std()


def simulate(
    pairs: pd.DataFrame, score: np.ndarray, seed: int, planted: PlantedEffect = PlantedEffect()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores for `pairs` given each prompt's personal score. Returns (scored pairs, truth)."""
    rng = np.random.default_rng(seed)
    n = len(pairs)
    z = score
    # Model choice depends on the prompt: personal prompts more often reach gpt-4.
    logits = np.column_stack([np.zeros(n), 0.8 * z, -0.4 * z])
    choice = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).cumsum(axis=1)
    model = np.array(MODELS)[(rng.random(n)[:, None] > choice).sum(axis=1)]
    gpt4 = (model == "gpt-4").astype(float)
    claude = (model == "claude-2").astype(float)
    turn = pd.to_numeric(pairs["turn_index"]).to_numpy(dtype=float)
    hours = rng.integers(0, 24, n)
    night = (hours < 6).astype(float)
    timestamp = pd.Timestamp("2023-04-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 180, n), unit="D") \
        + pd.to_timedelta(hours, unit="h") + pd.to_timedelta(rng.integers(0, 3600, n), unit="s")

    c = planted.confounding
    propensity = 1 / (1 + np.exp(-(-0.2 + c * z + 0.5 * gpt4 - 0.4 * claude + 0.25 * np.log(turn) + 0.4 * night)))
    treated = rng.random(n) < propensity
    # Observed empathy: 5-7 when treated, 1-3 when not; a random 15 % score 4 (excluded by the rule).
    empathy = np.where(treated, rng.integers(5, 8, n), rng.integers(1, 4, n)).astype(float)
    empathy[rng.random(n) < 0.15] = 4.0

    effect = planted.base + planted.gpt4_extra * gpt4 + planted.personal_slope * np.tanh(z)
    latent = 3.0 + c * z + 0.4 * gpt4 - 0.3 * claude + 0.2 * np.log(turn) + 0.3 * night + rng.normal(0, planted.noise, n)
    y0 = np.clip(np.round(latent), 1, 7)
    y1 = np.clip(np.round(latent + effect), 1, 7)
    attachment = np.where(treated, y1, y0)

    scored = pairs.reset_index(drop=True).copy()
    scored["model"] = model
    scored["timestamp"] = timestamp
    scored["empathy"] = empathy
    scored["attachment"] = attachment
    scored["semisynthetic"] = True
    truth = pd.DataFrame({
        "pair_id": scored["pair_id"], "treated": treated, "propensity": propensity,
        "unit_effect": y1 - y0, "expected_effect": effect, "personal_score": z,
    })
    return scored, truth


def true_effects(truth: pd.DataFrame, pair_ids: pd.Series | None = None, treated_only: bool = False) -> float:
    """The realised average effect (Y(1) − Y(0)) over a set of pairs (default: all)."""
    rows = truth if pair_ids is None else truth[truth["pair_id"].isin(set(pair_ids))]
    if treated_only:
        rows = rows[rows["treated"]]
    return float(rows["unit_effect"].mean())


def target_pairs(row, result, scored: pd.DataFrame, rule) -> pd.Series | None:
    """The pairs whose realised effect an estimate row targets: for `ATT_matched` the treated units
    its matching kept, for `ATE` every pair the treatment rule keeps; None for `ATE_trimmed`,
    whose trimmed set depends on estimated propensities the truth table does not know."""
    if row.estimand == "ATT_matched":
        return result.matched_treated(row.method)
    if row.estimand == "ATE":
        return scored.loc[rule.assign(scored["empathy"]).notna(), "pair_id"]
    return None


def semisynthetic_study(
    pairs: pd.DataFrame, n: int, seed: int, embedder, planted: PlantedEffect = PlantedEffect()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw n real turn-pairs (seeded) and simulate their scores. Returns (scored pairs, truth)."""
    if n > len(pairs):
        from ._errors import CausalError

        raise CausalError(f"a semi-synthetic study of {n} pairs needs at least {n} turn-pairs (got {len(pairs)})")
    chosen = pairs.sort_values("pair_id").sample(n=n, random_state=seed).reset_index(drop=True)
    prompts = embedder.embed(chosen["prompt"].astype(str).tolist())
    score = personal_score(prompts, embedder.embed(PERSONAL_ANCHORS), embedder.embed(TASK_ANCHORS))
    return simulate(chosen, score, seed, planted)
