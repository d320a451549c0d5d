"""Which conversations and turn-pairs enter the study, each decision with a named reason.

`transactional_reason` is the first, keyword-only topic filter. The build now runs the two-pass
population filter instead (`_prefilter.py`, then the judge pass); the old rule stays as the
baseline its measurements and the corpus benchmark compare against (tests/corpus/).
"""

from __future__ import annotations

import re
from typing import Literal

import py3langid
from pydantic import BaseModel, Field

from ._pairs import TurnPair


class CorpusConfig(BaseModel):
    """Filter settings (the `[corpus]` table of `study.toml`). Lengths are in characters."""

    min_prompt_chars: int = Field(5, ge=0, description="shorter prompts carry too little context")
    max_prompt_chars: int = Field(2_000, ge=1, description="longer prompts are mostly pasted documents")
    min_response_chars: int = Field(10, ge=0, description="shorter responses leave a judge nothing to rate")
    max_response_chars: int = Field(4_000, ge=1, description="also bounds what a judge must read")
    min_reply_chars: int = Field(2, ge=0, description="shorter replies (a lone character) carry no attachment to rate")
    max_reply_chars: int = Field(2_000, ge=1, description="longer replies are mostly pasted documents")
    keep_transactional: bool = Field(False, description="true switches the socio-emotional prefilter off (keeps "
                                                         "every pair, e.g. for an audit frame)")
    classify_judges: list[str] = Field(default_factory=list,
                                       description="judges of the study's panel (names of [[judges]] tables) that "
                                                   "run the judge pass, `empathy corpus classify`; empty: the "
                                                   "embedded local judge local/smollm2")
    classifier: bool = Field(True, description="run the offline population classifier on the cheap pass's "
                                               "candidates when no judge pass is configured (classify_judges "
                                               "empty); false keeps every candidate")
    workers: int = Field(0, ge=0, description="workers of a sharded (WildChat) build, one shard each at a time; "
                                              "0: one per CPU core this process may use, at most one per shard")
    build_backend: Literal["local", "ray"] = Field("local", description="where the shard workers of a sharded build "
                                                                        "run: local processes, or Ray tasks on the "
                                                                        "cluster ray.init() reaches (extra "
                                                                        "empathy-study[ray]; RAY_ADDRESS names a "
                                                                        "cluster, whose nodes must see the inputs "
                                                                        "and the study)")


# --- code -------------------------------------------------------------------------------------
_CODE = re.compile(
    r"```"
    r"|^[ \t]*(?:def|class|import|from \S+ import|#include|public|private|function|const|let|var)\b"
    r"|(?:def|function)[ \t]+\w+[ \t]*\("
    r"|SELECT\b[^;]*?\bFROM\b|CREATE TABLE\b"
    r"|</?(?:div|span|html|body|script|table|p|a|button|input)\b[^>]*>"
    r"|Traceback \(most recent call last\)|(?:Error|Exception):"
    r"|[;{}][ \t]*$"
    r"|\.\w+\([^)\n]*\)[ \t]*;?[ \t]*$"
    r"|=>|::|\$[A-Za-z_]\w*|==",
    re.MULTILINE,
)

# --- task requests ----------------------------------------------------------------------------
_TASK_VERBS = (
    r"write|rewrite|re-write|create|generate|make|produce|compose|draft|give me|list|name \d+|"
    r"explain|summari[sz]e|translate|rephrase|paraphrase|continue|describe|design|build|implement|"
    r"fix|debug|convert|calculate|compute|solve|provide|suggest|analy[sz]e|compare|add|remove|"
    r"change|update|modify|show me|tell me about|define|expand|shorten|improve|correct|proofread|"
    r"edit|outline|elaborate|evaluate|review|extract|format|organi[sz]e|plan|recommend|find|"
    r"act as (?!my)|pretend to be (?!my)|play the role|you are an? (?!friend)|i want you to act as (?!my)|"
    r"what (is|are|was|were|does|do) (?!you)|who (is|was|are)|when (is|was|did)|where (is|are|can)|"
    r"how (do|does|can|to|would|should|many|much|long) (?!you feel)|why (is|are|does|do) (?!you)|"
    r"is there|are there|does|do i need"
)
_TASK_START = re.compile(
    rf"^\W*(ok(ay)?|great|thanks?( you)?|good|now|so|and|also|hi|hello|hey)?[\s,.!]*(please\s+)?"
    rf"((can|could|would|will) you (please )?|i (want|need|would like) (you )?to |help me (to )?)?"
    rf"({_TASK_VERBS})\b",
    re.IGNORECASE,
)
# "please <verb>" anywhere near the start is a request even after a preamble.
_PLEASE_VERB = re.compile(rf"\bplease,? ({_TASK_VERBS}|remember|perform|take|use)\b", re.IGNORECASE)
_CONTINUATION = re.compile(r"^\W*(continue|more|go on|next|keep going|again|regenerate)\W*$", re.IGNORECASE)

# --- personal, emotional or social cues -------------------------------------------------------
_FEELINGS = (
    r"sad|happy|lonely|alone|depressed|anxious|scared|afraid|worried|tired|exhausted|stressed|"
    r"overwhelmed|hurt|angry|mad|upset|lost|confused|excited|grateful|glad|nervous|bored|sick|"
    r"heartbroken|miserable|hopeless|ashamed|guilty|jealous|insecure|proud|in love|stupid|useless|worthless|"
    r"frustrated|disappointed|unloved|unwanted"
)
_SELF_FEELING = (
    rf"\bi('m| am| feel| felt| was| have been|'ve been| get| got)( so| very| really| a bit| kind of)? ({_FEELINGS})\b"
    r"|\bi (struggle|am struggling|can'?t cope|need someone|feel like)\b"
)
_SELF_FEELING_RE = re.compile(_SELF_FEELING, re.IGNORECASE)
_PERSONAL = re.compile(
    _SELF_FEELING + r"|\b(i|we) (love|miss|hate|hug|kiss) (you|him|her|them|my)\b"
    r"|\b(i|i'm|i am|me|my)\b[^.!?]{0,30}\b(lonely|loneliness|heartbreak|depression|anxiety|grief|therapy|"
    r"therapist|self-esteem|crying|cried|tears)\b"
    r"|\bmy (wife|husband|partner|girlfriend|boyfriend|gf|bf|best friend|mom|mum|dad|mother|"
    r"father|parents|family|son|daughter|sister|brother|ex|crush|kids?|children|life|feelings|heart)\b"
    r"|\b(are|were|aren'?t) you (really |technically |actually )?(a |an )?(human|real|robot|alive|conscious|"
    r"sentient|happy|ok|okay|there|lonely|my)\b"
    r"|\b(do|don'?t|does) you (really |actually )?(feel|love|like me|remember me|have (feelings|emotions|a name|"
    r"friends|personal|opinions|beliefs)|believe in)\b"
    r"|\byour (feelings|opinions?|beliefs?|personal|life|day|favou?rite)\b"
    r"|\byou('re| are) (my|a good|the best|(so |very |such |truly |really )?(an? )?(amazing|kind|sweet|funny|"
    r"cute|smart|dumb|stupid|wonderful|awesome|beautiful|adorable|dummy|genius|friend|life assistant))\b"
    r"|\b(dating|my date|relationship|break ?up|boyfriend|girlfriend)\b"
    r"|\b(thank you so much|thanks so much|i appreciate you|how are you|how('s| is) your day|"
    r"good (morning|night)|nice to (meet|talk)|talk to me|can we talk|chat with me|be my|"
    r"(act|pretend|roleplay) as my|my (dear|love|darling)|you dummy|have a conversation|get to know (me|you)|"
    r"how (are you|i am|i'm|am i) feeling|my personality)\b"
    r"|\*\s*(smiles?|hugs?|laughs?|cries|sighs?|blushes?|giggles?|kisses?|nods?)\b",
    re.IGNORECASE,
)


def code_present(*texts: str) -> bool:
    return any(_CODE.search(text) for text in texts)


# Only the user's own opening words count as personal cues: a pasted essay or story may be full of
# feelings while the user's request about it is a task.
_OWN_WORDS = 400


def task_request(text: str) -> bool:
    head = text[:_OWN_WORDS]
    return bool(_TASK_START.search(head) or _PLEASE_VERB.search(head) or _CONTINUATION.search(head))


def personal_cue(*texts: str) -> bool:
    return any(_PERSONAL.search(text[:_OWN_WORDS]) for text in texts)


def transactional_reason(prompt: str, response: str, reply: str | None) -> str | None:
    """Why a pair is transactional (a task, nothing personal in it, or code), or None if it is not.

    The user's own words decide (prompt and reply); the response only counts for code. The cheap
    checks on the user's opening words run first: most pairs of a real corpus fail them, and the
    code scan of a long response is then never needed.
    """
    user_texts = (prompt,) if reply is None else (prompt, reply)
    if task_request(prompt) and not _SELF_FEELING_RE.search(prompt[:_OWN_WORDS]):
        return "transactional_task"
    if not personal_cue(*user_texts):
        return "transactional_impersonal"
    if code_present(*user_texts, response):
        return "transactional_code"
    return None


def length_reason(pair: TurnPair, config: CorpusConfig) -> str | None:
    checks = [("prompt", pair.prompt, config.min_prompt_chars, config.max_prompt_chars),
              ("response", pair.response, config.min_response_chars, config.max_response_chars)]
    if pair.reply is not None:
        checks.append(("reply", pair.reply, config.min_reply_chars, config.max_reply_chars))
    for name, text, low, high in checks:
        length = len(text.strip())
        if length < low:
            return f"{name}_too_short"
        if length > high:
            return f"{name}_too_long"
    return None


def detect_language(texts: list[str], max_chars: int = 2_000) -> str | None:
    """ISO 639-1 code of the user's text by py3langid (ships its model; no download)."""
    sample = " ".join(t[:500] for t in texts if t)[:max_chars]
    if not sample.strip():
        return None
    return py3langid.classify(sample)[0]


def is_english(language: str | None) -> bool:
    """WildChat names languages ("English"); py3langid gives codes ("en")."""
    return language is not None and language.strip().lower() in ("english", "en")
