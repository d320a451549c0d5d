"""Semi-synthetic studies: real conversation text, simulated scores with a planted effect.

The texts (prompt, response, reply, previous turn) are real turn-pairs. Empathy and attachment
scores are simulated so that the true effect of every unit is known. Confounding runs through
the prompt's meaning (how personal vs task-like it reads, measured against anchor sentences in
the embedding space), the model (several are simulated: ShareGPT has one family) and the turn and
time of day. The effect is heterogeneous: larger for one model and for personal prompts.

Designs. `design="planted"` is the one the defaults were first chosen on (linear-logistic
confounding). `design="nonlinear"`: confounding through non-linear functions of the prompt's meaning
and a random effect per user (pairs of one user share an outcome shift and an effect shift), so
clustering matters. `design="ushape"`: both very personal and very technical prompts draw more
empathy, and baseline attachment curves with the prompt's meaning (a shape no other design has).
`design="usershift"`: the effect differs only between users (SD `user_effect_sd`), nothing in the
effect modifiers — the null of the heterogeneity test when prompts identify users.

A simulated judge (`judge_labels`) misreads the treatment on a share of pairs — more often on
personal prompts — and over-reads attachment (more at the low end of the scale); the simulated
scores stand for the human (gold) labels, revealed only on a random audit sample.

The truth is returned in a separate table; the estimators never see it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from empathy_study.shared import judge_column

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
DESIGNS = ("planted", "nonlinear", "ushape", "usershift")


@dataclass(frozen=True)
class PlantedEffect:
    base: float = 0.6  # effect for a task-like prompt on gpt-3.5 / claude
    gpt4_extra: float = 0.3  # gpt-4's users respond more
    personal_slope: float = 0.25  # × tanh(personal score): more for personal prompts
    confounding: float = 0.9  # how strongly prompt meaning drives both treatment and outcome
    noise: float = 1.0  # SD of the outcome noise before rounding to 1..7
    design: str = "planted"  # or "nonlinear", "ushape", "usershift" (see the module's docstring)
    user_effect_sd: float = 1.0  # usershift: SD of the users' effect shifts
    negative_control: bool = False  # also simulate `prompt_attachment`: the prompt's attachment, which empathy cannot move
    hidden: float = 0.0  # strength of an unobserved user trait that raises treatment, outcome and prompt_attachment alike


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
    design = planted.design
    nonlinear = design == "nonlinear"
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}: one of {', '.join(DESIGNS)}")
    users = pd.factorize(pairs["user_id"] if "user_id" in pairs.columns else pairs["pair_id"])[0]
    # the hidden trait has its own random stream: studies without it draw exactly what they drew before
    hidden = planted.hidden * np.random.default_rng([seed, 7]).normal(0, 1, n)
    user_shift = rng.normal(0, 0.6, users.max() + 1)[users] if design in ("nonlinear", "usershift") else np.zeros(n)
    user_effect = rng.normal(0, 0.3, users.max() + 1)[users] if nonlinear else np.zeros(n)
    if design == "usershift":  # its own stream: the other designs draw exactly what they drew before
        user_effect = np.random.default_rng([seed, 9]).normal(0, planted.user_effect_sd, users.max() + 1)[users]
    drive = {"nonlinear": 1.3 * np.tanh(1.5 * z) + 0.45 * (z**2 - 1),
             "ushape": 0.9 * (z**2 - 1) + 0.3 * z}.get(design, z)
    propensity = 1 / (1 + np.exp(-(-0.2 + c * drive + 0.5 * gpt4 - 0.4 * claude + 0.25 * np.log(turn) + 0.4 * night
                                   + hidden)))
    treated = rng.random(n) < propensity
    # Observed empathy: 5-7 when treated, 1-3 when not; a random 15 % score 4 (excluded by the rule).
    empathy = np.where(treated, rng.integers(5, 8, n), rng.integers(1, 4, n)).astype(float)
    empathy[rng.random(n) < 0.15] = 4.0

    modifiers = 0.0 if design == "usershift" else planted.gpt4_extra * gpt4 + planted.personal_slope * np.tanh(z)
    effect = planted.base + modifiers + user_effect
    shape = {"nonlinear": 0.6 * z + 0.5 * np.sin(2 * z) + 0.35 * (z**2 - 1) + 0.3 * gpt4 * z,
             "ushape": 0.9 * np.sin(1.6 * z) + 0.5 * np.abs(z) - 0.4}.get(design, z)
    latent = 3.0 + c * shape + 0.4 * gpt4 - 0.3 * claude + 0.2 * np.log(turn) + 0.3 * night + user_shift \
        + rng.normal(0, planted.noise, n) + hidden
    y0 = np.clip(np.round(latent), 1, 7)
    y1 = np.clip(np.round(latent + effect), 1, 7)
    attachment = np.where(treated, y1, y0)

    scored = pairs.reset_index(drop=True).copy()
    scored["model"] = model
    scored["timestamp"] = timestamp
    scored["empathy"] = empathy
    scored["attachment"] = attachment
    scored["semisynthetic"] = True
    if planted.negative_control:  # written before the response: the prompt's meaning and the hidden trait, no effect
        control_rng = np.random.default_rng([seed, 8])
        scored["prompt_attachment"] = np.clip(np.round(2.5 + 0.8 * c * shape + hidden
                                                       + control_rng.normal(0, 0.8, n)), 1, 7)
    truth = pd.DataFrame({
        "pair_id": scored["pair_id"], "treated": treated, "propensity": propensity,
        "unit_effect": y1 - y0, "expected_effect": effect, "personal_score": z, "empathy": empathy,
    })
    return scored, truth


@dataclass(frozen=True)
class JudgeNoise:
    """How a simulated judge errs. `misread`: share of in-arm pairs the judge puts in the other arm
    (on average; more often on personal prompts, by `personal_tilt`). Attachment is over-read by up to
    `over_read` points (most at the low end of the scale) with noise of SD `noise`."""

    misread: float = 0.08
    personal_tilt: float = 1.0
    over_read: float = 0.5
    noise: float = 0.7
    band: float = 0.05  # share of in-arm pairs the judge scores 4 (excluded)
    empathy_shift: float = 0.0  # read every empathy score this many points high (clipped to 1..7)


GOOD_JUDGE = JudgeNoise()
POOR_JUDGE = JudgeNoise(misread=0.25, over_read=0.9, noise=1.0, band=0.08)
# A panel of three judges of different quality (bench/panel_audit.py): one good, one noisy (errors
# unrelated to the prompt), one biased (reads empathy 1.5 points high, over-reads attachment, more on
# personal prompts).
PANEL_JUDGES = {"sim-good": JudgeNoise(misread=0.03, over_read=0.1, noise=0.4, band=0.02),
                "sim-noisy": JudgeNoise(misread=0.3, personal_tilt=0.0, over_read=0.0, noise=2.0, band=0.1),
                "sim-biased": JudgeNoise(misread=0.05, personal_tilt=2.0, over_read=1.5, noise=0.5, band=0.03,
                                         empathy_shift=1.5)}


def _read(scored: pd.DataFrame, truth: pd.DataFrame, noise: JudgeNoise, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    """One simulated judge's (empathy, attachment) of every pair, from the simulated true scores."""
    n = len(scored)
    z = truth["personal_score"].to_numpy()
    gold_empathy = scored["empathy"].to_numpy(dtype=float)
    gold_attachment = scored["attachment"].to_numpy(dtype=float)
    tilt = 1 / (1 + np.exp(-noise.personal_tilt * z))
    flip = rng.random(n) < np.clip(2 * noise.misread * tilt, 0, 1)
    treated, control = gold_empathy >= 5, gold_empathy <= 3
    empathy = gold_empathy.copy()
    empathy[flip & treated] = rng.integers(1, 4, n)[flip & treated]
    empathy[flip & control] = rng.integers(5, 8, n)[flip & control]
    empathy[(treated | control) & ~flip & (rng.random(n) < noise.band)] = 4.0
    middle = gold_empathy == 4
    empathy[middle] = np.where(rng.random(n) < 0.5, 4.0, np.where(rng.random(n) < 0.5, 3.0, 5.0))[middle]
    over = noise.over_read * (7 - gold_attachment) / 6 * (1 + 0.5 * np.tanh(z))
    attachment = np.clip(np.round(gold_attachment + over + rng.normal(0, noise.noise, n)), 1, 7)
    return np.clip(empathy + noise.empathy_shift, 1, 7), attachment


def _audited(scored: pd.DataFrame, audited: np.ndarray, audit_rate: float) -> pd.DataFrame:
    """The simulated true scores as human labels on the audited pairs (the judges' columns still to fill)."""
    judged = scored.copy()
    judged["empathy_gold"] = np.where(audited, scored["empathy"].to_numpy(dtype=float), np.nan)
    judged["attachment_gold"] = np.where(audited, scored["attachment"].to_numpy(dtype=float), np.nan)
    judged["gold_prob"] = audit_rate
    judged["gold_drawn"] = audited.astype(int)
    judged["simulated_judge"] = True
    return judged


def judge_labels(scored: pd.DataFrame, truth: pd.DataFrame, noise: JudgeNoise, audit_rate: float,
                 seed: int) -> pd.DataFrame:
    """The judge's scores in `empathy`/`attachment`; the simulated true scores become the human labels
    `empathy_gold`/`attachment_gold` on a random audit sample (probability `audit_rate`, in `gold_prob`)."""
    empathy, attachment = _read(scored, truth, noise, np.random.default_rng(seed))
    audited = np.random.default_rng([seed, 1]).random(len(scored)) < audit_rate  # the same audit whatever the judge
    judged = _audited(scored, audited, audit_rate)
    judged["empathy"] = empathy
    judged["attachment"] = attachment
    return judged


def panel_labels(scored: pd.DataFrame, truth: pd.DataFrame, judges: dict[str, JudgeNoise], audit_rate: float,
                 seed: int) -> pd.DataFrame:
    """`judge_labels` for a panel: each simulated judge's own scores in `<construct>__<judge>` (each judge
    errs independently), their mean in `empathy`/`attachment` (the panel score, every judge scoring
    every pair), and the simulated true scores as human labels on the audit sample `judge_labels` draws."""
    audited = np.random.default_rng([seed, 1]).random(len(scored)) < audit_rate
    judged = _audited(scored, audited, audit_rate)
    reads = {name: _read(scored, truth, noise, np.random.default_rng([seed, 2, j]))
             for j, (name, noise) in enumerate(judges.items())}
    for name, (empathy, attachment) in reads.items():
        judged[judge_column("empathy", name)], judged[judge_column("attachment", name)] = empathy, attachment
    judged["empathy"] = np.mean([e for e, _ in reads.values()], axis=0)
    judged["attachment"] = np.mean([a for _, a in reads.values()], axis=0)
    return judged


def true_effects(truth: pd.DataFrame, pair_ids: pd.Series | None = None, treated_only: bool = False) -> float:
    """The realised average effect (Y(1) − Y(0)) over a set of pairs (default: all)."""
    rows = truth if pair_ids is None else truth[truth["pair_id"].isin(set(pair_ids))]
    if treated_only:
        rows = rows[rows["treated"]]
    return float(rows["unit_effect"].mean())


def target_pairs(row, result, scored: pd.DataFrame, rule, truth: pd.DataFrame | None = None) -> pd.Series | None:
    """The pairs whose realised effect an estimate row targets: for `ATT_matched` the treated units
    its matching kept, for `ATE` every pair the treatment rule keeps; None for `ATE_trimmed`,
    whose trimmed set depends on estimated propensities the truth table does not know."""
    if row.estimand == "ATT_matched":
        return result.matched_treated(row.method)
    if row.estimand == "ATE":
        # The stated estimand: pairs in an arm by their true (gold) empathy, whatever the judge said.
        source = truth if truth is not None else scored
        return source.loc[rule.assign(source["empathy"]).notna(), "pair_id"]
    return None


def sample_pairs(pairs: pd.DataFrame, n: int, seed: int, by_user: bool = False) -> pd.DataFrame:
    """n real turn-pairs, seeded: independent pairs, or (by_user) whole users' pairs so clusters have several."""
    if n > len(pairs):
        from ._errors import CausalError

        raise CausalError(f"a semi-synthetic study of {n} pairs needs at least {n} turn-pairs (got {len(pairs)})")
    ordered = pairs.sort_values("pair_id")
    if not by_user:
        return ordered.sample(n=n, random_state=seed).reset_index(drop=True)
    users = ordered["user_id"].drop_duplicates().sample(frac=1.0, random_state=seed)
    sizes = ordered.groupby("user_id").size().loc[users]
    chosen = users[(sizes.cumsum() <= n).to_numpy()]
    return ordered[ordered["user_id"].isin(set(chosen))].reset_index(drop=True)


def semisynthetic_study(
    pairs: pd.DataFrame, n: int, seed: int, embedder, planted: PlantedEffect = PlantedEffect()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw n real turn-pairs (seeded) and simulate their scores. Returns (scored pairs, truth)."""
    chosen = sample_pairs(pairs, n, seed)
    prompts = embedder.embed(chosen["prompt"].astype(str).tolist())
    score = personal_score(prompts, embedder.embed(PERSONAL_ANCHORS), embedder.embed(TASK_ANCHORS))
    return simulate(chosen, score, seed, planted)
