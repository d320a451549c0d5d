"""Judge diagnostics from the log: failures, distributions, length bias, response leakage into
attachment, tokens and cost — and the score matrices that agreement statistics (annotation's,
applied by the study) compare: judge against judge, sample against sample. Pure functions."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ._config import JudgeConfig
from ._local import LOCAL_PREFIX
from ._scores import current_judgments, of_panel


def failure_rates(frame: pd.DataFrame) -> list[dict]:
    """Per judge × construct: items with no valid score after every attempt, and the reasons."""
    rows = []
    for (judge, construct), group in frame.groupby(["judge", "construct"]):
        items = group.groupby(["pair_id", "sample_index"])["score"].apply(lambda s: s.notna().any())
        reasons = group.loc[group["score"].isna(), "error"].fillna("").str.split(":").str[0].value_counts()
        rows.append({"judge": judge, "construct": construct, "items": int(len(items)),
                     "failed_items": int((~items).sum()), "failure_rate": float((~items).mean()),
                     "failed_calls": int(group["score"].isna().sum()), "reasons": reasons.to_dict()})
    return rows


def distributions(frame: pd.DataFrame) -> list[dict]:
    ok = frame[frame["score"].notna()]
    rows = []
    for (judge, construct), group in ok.groupby(["judge", "construct"]):
        counts = group["score"].astype(int).value_counts().reindex(range(1, 8), fill_value=0)
        rows.append({"judge": judge, "construct": construct, "counts": {int(k): int(v) for k, v in counts.items()},
                     "mean": float(group["score"].mean())})
    return rows


def _scores_by(frame: pd.DataFrame, construct: str, column: str = "judge", sample_index: int | None = 0) -> pd.DataFrame:
    ok = frame[(frame["construct"] == construct) & frame["score"].notna()]
    if sample_index is not None:
        ok = ok[ok["sample_index"] == sample_index]
    return ok.drop_duplicates(["pair_id", column], keep="last").pivot(index="pair_id", columns=column, values="score")


def retest_matrices(frame: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    """(judge, construct) → pairs × (sample 0, sample 1), for judges configured with samples ≥ 2."""
    found = {}
    for (judge, construct), group in frame[frame["score"].notna()].groupby(["judge", "construct"]):
        wide = group.drop_duplicates(["pair_id", "sample_index"], keep="last").pivot(
            index="pair_id", columns="sample_index", values="score")
        if {0, 1} <= set(wide.columns):
            found[(judge, construct)] = wide[[0, 1]].rename(columns={0: "sample 0", 1: "sample 1"})
    return found


def judge_matrix(frame: pd.DataFrame, construct: str) -> pd.DataFrame:
    """pairs × judges: each judge's sample-0 score of the construct."""
    return _scores_by(frame, construct)


def length_bias(frame: pd.DataFrame, texts: pd.DataFrame) -> list[dict]:
    """Rank correlation of each judge's score with the length of the text it rates."""
    from scipy import stats  # here, not at import: every `empathy` command imports the judge package

    lengths = {"empathy": texts.set_index("pair_id")["response"].fillna("").str.len(),
               "attachment": texts.set_index("pair_id")["reply"].fillna("").str.len()}
    rows = []
    for construct, length in lengths.items():
        wide = _scores_by(frame, construct)
        for judge in wide.columns:
            both = pd.concat([wide[judge], length], axis=1, join="inner").dropna()
            if len(both) >= 5 and both.iloc[:, 0].nunique() > 1:
                rho = stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1])
                rows.append({"judge": judge, "construct": construct, "spearman": float(rho.statistic),
                             "p_value": float(rho.pvalue), "n": int(len(both))})
    return rows


def response_leakage(frame: pd.DataFrame, default_version: str, shown_version: str, swapped_version: str,
                     empathy: pd.Series) -> list[dict]:
    """How much attachment ratings move when the rater also sees the assistant's response.

    shown − hidden: the leak of the response into the outcome; its rank correlation with the
    pair's empathy score says whether warmer responses inflate attachment. shown − swapped: how
    much depends on *this* response rather than on seeing any response at all.
    """
    from scipy import stats  # here, not at import: every `empathy` command imports the judge package

    attachment = frame[(frame["construct"] == "attachment") & frame["score"].notna() & (frame["sample_index"] == 0)]
    rows = []
    for judge, group in attachment.groupby("judge"):
        by_version = group.drop_duplicates(["pair_id", "prompt_version"], keep="last").pivot(
            index="pair_id", columns="prompt_version", values="score")
        if not {default_version, shown_version} <= set(by_version.columns):
            continue
        paired = by_version[[default_version, shown_version]].dropna()
        change = paired[shown_version] - paired[default_version]
        row = {"judge": judge, "n": int(len(paired)), "mean_change_when_shown": float(change.mean()) if len(paired) else None}
        linked = pd.concat([change.rename("change"), empathy.rename("empathy")], axis=1, join="inner").dropna()
        if len(linked) >= 5 and linked["change"].nunique() > 1 and linked["empathy"].nunique() > 1:
            row["spearman_change_vs_empathy"] = float(stats.spearmanr(linked["change"], linked["empathy"]).statistic)
        if swapped_version in by_version.columns:
            swap = by_version[[shown_version, swapped_version]].dropna()
            row["mean_shown_minus_swapped"] = float((swap[shown_version] - swap[swapped_version]).mean()) if len(swap) else None
        rows.append(row)
    return rows


def usage(frame: pd.DataFrame) -> list[dict]:
    rows = []
    for judge, group in frame.groupby("judge"):
        latency = group["latency_ms"].dropna()
        rows.append({"judge": judge, "calls": int(len(group)), "tokens_in": int(group["tokens_in"].fillna(0).sum()),
                     "tokens_out": int(group["tokens_out"].fillna(0).sum()),
                     "cost_usd": float(group["cost_usd"].fillna(0).sum()),
                     "median_latency_ms": float(np.median(latency)) if len(latency) else None,
                     "expected_score_share": float(group["expected_score"].notna().mean())})
    return rows


_WORD = re.compile(r"[^\W\d_]{2,}")  # two or more letters, any script
MIN_SCORES = 5  # scores of a judge × construct before "never varies" means something
NEAR_CONSTANT = 0.8  # one score on this share of a judge's pairs (or more): its scores barely tell pairs apart
MIN_RATIONALES = 3
DEGENERATE = ("constant_scores", "near_constant")


def is_sentence(text: str | None) -> bool:
    """Reads like a sentence: three words or more (two different), mostly letters, not markup or JSON.

    What a small model writes when it fails to reason — "{", "][", "Development Officer", a copy of
    the schema — is not.
    """
    text = (text or "").strip()
    words = _WORD.findall(text)
    visible = sum(not ch.isspace() for ch in text)
    letters = sum(ch.isalpha() for ch in text)
    return (len(words) >= 3 and len({w.lower() for w in words}) >= 2 and visible > 0 and letters / visible >= 0.6
            and not text.startswith(("{", "[", "<")))


def judge_warnings(frame: pd.DataFrame) -> list[dict]:
    """Per judge × construct, what makes its scores unusable whatever their agreement says: scores that
    never vary (they cannot rank pairs), rationales that are mostly not sentences (the model is not
    reasoning about the text)."""
    ok = frame[frame["score"].notna()]
    found = []
    for (judge, construct), group in ok.groupby(["judge", "construct"]):
        scores = group["score"].astype(int)
        commonest = scores.value_counts()
        if len(scores) >= MIN_SCORES and scores.nunique() == 1:
            found.append({"judge": judge, "construct": construct, "kind": "constant_scores",
                          "message": f"{judge} gave every one of its {len(scores)} {construct} scores a "
                                     f"{scores.iloc[0]}: its scores cannot tell pairs apart"})
        elif len(scores) >= MIN_SCORES and commonest.iloc[0] / len(scores) >= NEAR_CONSTANT:
            found.append({"judge": judge, "construct": construct, "kind": "near_constant",
                          "message": f"{judge} gave {commonest.iloc[0]} of its {len(scores)} {construct} scores a "
                                     f"{commonest.index[0]}: its scores barely tell pairs apart"})
        rationales = group["rationale"].fillna("")
        if len(rationales) >= MIN_RATIONALES:
            bad = rationales[~rationales.map(is_sentence)]
            if len(bad) / len(rationales) > 0.5:
                examples = ", ".join(repr(t[:40]) for t in bad.drop_duplicates().head(2))
                found.append({"judge": judge, "construct": construct, "kind": "not_sentences",
                              "message": f"{len(bad)} of {len(rationales)} {construct} rationales of {judge} are "
                                         f"not sentences (e.g. {examples}): the model is not reasoning about the text"})
    return found


HOSTED_JUDGE = """[[judges]]
name = "gpt-4o-mini"
model = "openai/gpt-4o-mini"          # any LiteLLM model string
api_key_env = "OPENAI_API_KEY"        # the variable's NAME: export OPENAI_API_KEY=... in your shell"""

SERVED_JUDGE = """[[judges]]
name = "my-server"
model = "openai/MODEL"                # openai/<the model name your server serves>
api_base = "http://127.0.0.1:8000/v1" # llama.cpp: llama-server -m FILE.gguf --port 8000; vLLM: vllm serve MODEL --port 8000"""


def study_judge_note(judges: list[JudgeConfig], warnings: list[dict], study_dir: str) -> str | None:
    """What to change when the panel cannot make a study: a panel of embedded judges only, or an embedded
    judge flagged by `judge_warnings` (a smoke test either way), or any judge whose scores (nearly) never
    vary. None when none of these is seen."""
    models = {j.name: j.model for j in judges}
    embedded = {n for n, m in models.items() if m.startswith(LOCAL_PREFIX)}
    warned = {w["judge"] for w in warnings}
    local = sorted(embedded if embedded and embedded == set(models) else embedded & warned)
    flat = sorted({w["judge"] for w in warnings if w["kind"] in DEGENERATE and w["judge"] not in local})
    if not local and not flat:
        return None
    lines = []
    if local:
        names = ", ".join(f"{n} ({models[n]})" for n in local)
        seen = (" Its scores here are the warnings above; no estimate made from them means anything."
                if warned & set(local) else " No estimate made from its scores means anything.")
        lines.append(f"The embedded judge {names} is a smoke test, not a study: a small model that runs offline, to "
                     f"show that the flow runs end to end — not a measurement.{seen}")
    if flat:
        lines.append(f"{', '.join(flat)}: scores that (nearly) never vary put (nearly) every pair in one arm; no "
                     "estimate can rest on them.")
    lines += [f"To make a study, replace that [[judges]] table in {study_dir}/study.toml with a capable judge — a "
              "hosted model with its key:", "", HOSTED_JUDGE, "",
              "or any OpenAI-compatible server (llama.cpp's llama-server with a model file you bring, vLLM) through "
              "api_base:", "", SERVED_JUDGE, "",
              f"then `empathy judge run {study_dir} --dry-run` prints the calls, tokens and cost before anything "
              "is called."]
    return "\n".join(lines)


def judge_report(frame: pd.DataFrame, texts: pd.DataFrame, judges: list[JudgeConfig], versions: dict[str, str],
                 swap_versions: tuple[str, str] | None) -> dict:
    """Every diagnostic of the current panel that needs no agreement statistic, as plain data, from the
    log's frame (`JudgmentLog.frame`)."""
    if frame.empty:
        return {"note": "the judgment log is empty: run `empathy judge run` first"}
    current = current_judgments(frame, judges, versions)
    constructs = sorted(current["construct"].unique())
    panel_empathy = _scores_by(current, "empathy").mean(axis=1) if "empathy" in constructs else pd.Series(dtype=float)
    leakage = []
    if swap_versions and "attachment" in versions:
        leakage = response_leakage(of_panel(frame, judges), versions["attachment"], *swap_versions, panel_empathy)
    return {
        "prompt_versions": versions,
        "failures": failure_rates(current),
        "distributions": distributions(current),
        "length_bias": length_bias(current, texts),
        "response_leakage": leakage,
        "usage": usage(frame),
        "warnings": judge_warnings(current),
    }
