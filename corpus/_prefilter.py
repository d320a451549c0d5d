"""The cheap pass of the population filter: which turn-pairs *may* be socio-emotional.

Tuned for recall: it lets through anything that shows a personal, emotional or social cue in the
user's own words, and any turn that continues a personal exchange (the preceding exchange shows
one) unless the user clearly moves on to a task. What it lets through is only a candidate: the
judge pass (`empathy corpus classify`, rubric `prompts/socioemotional.toml`) decides.

A pair is read with its preceding exchange — the user's earlier message (`prev_prompt`) and the
assistant's answer to it (`prev_response`) — so "yes, that helps" after a personal exchange is a
candidate although its own words are not personal. Only the first OWN_CHARS characters of each
user message count as the user's own words: a pasted essay full of feelings is material.

It was written after the labelled set `data/socioemotional_audit.jsonl` existed and measured on it
once, unchanged; its development data were the older `data/socioemotional_pairs.jsonl` and
unlabelled pairs outside the audit sample (data/README.md).
"""

from __future__ import annotations

import re2

from ._filters import code_present, task_request

OWN_CHARS = 600
SHORT_CHARS = 160  # a message this short that asks for nothing is conversation, not a task

_FEELING_WORDS = (
    r"sad|unhappy|happy|lonely|alone|depressed|down|low|anxious|scared|afraid|terrified|worried|tired|"
    r"exhausted|drained|stressed|overwhelmed|hurt|angry|mad|upset|lost|confused|excited|grateful|glad|"
    r"nervous|bored|sick|ill|heartbroken|miserable|hopeless|helpless|ashamed|embarrassed|guilty|jealous|"
    r"insecure|proud|in love|stupid|useless|worthless|frustrated|disappointed|unloved|unwanted|empty|numb|"
    r"broken|crushed|devastated|relieved|fine|okay|ok|good|great|better|worse|alright|struggling|suicidal"
)
# Compiled with RE2 (linear-time automata): these alternations run over every pair of a corpus, and
# Python's backtracking engine is twenty times slower on them. RE2's `\b` is an ASCII word boundary,
# so "continue지금" still holds the English word "continue"; otherwise both engines read these alike.
PERSONAL_SOURCE = (
    r"(?i)"
    # the user's own state
    rf"\b(i|i'?m|im|i am|i was|i've been|i have been|i feel|i felt|i get|i got|feeling)\b"
    rf"(\s+(so|very|really|a bit|a little|kind of|kinda|pretty|quite|too|just|still|always|never|not))*"
    rf"\s+({_FEELING_WORDS})\b"
    r"|\b(i|we)\s+(really\s+)?(feel|felt|miss|love|hate|cried|cry|can'?t sleep|can'?t stop|can'?t cope|"
    r"need someone|wish|struggle|am struggling|regret|lost my|broke up)\b"
    r"|\b(makes?|made) me (feel|cry|happy|sad|smile|laugh)\b"
    r"|\bi (have|had|'ve had|got|am having|'m having) (a |an |been |some |this )?(pain|cancer|diabetes|depression|"
    r"anxiety|adhd|autism|covid|fever|migraines?|headaches?|surgery|injury|disease|disorder|illness|condition|"
    r"panic attacks?|nightmares?|insomnia|a hard time|a rough|a bad day|a tough)\b"
    r"|\b(my|our) (wife|husband|partner|girlfriend|boyfriend|gf|bf|fianc[ée]e?|spouse|best friend|friends?|"
    r"mom|mum|mommy|mother|dad|daddy|father|parents?|family|son|daughter|sister|brother|siblings?|kids?|"
    r"child|children|baby|ex|crush|grandma|grandpa|grandmother|grandfather|dog|cat|pet|therapist|"
    r"life|feelings|heart|health|mental health|anxiety|depression|loneliness|relationship|marriage|"
    r"divorce|breakup|break-up|grief|loss|day|week|weekend|birthday)\b"
    # the assistant as a social partner
    r"|\b(are|were|aren'?t) you\s+(really\s+|actually\s+|even\s+|still\s+)?(a\s+|an\s+)?(human|person|real|"
    r"alive|conscious|sentient|self-aware|aware|happy|sad|ok|okay|alright|there|lonely|bored|tired|"
    r"my|a boy|a girl|male|female|single|married|in love|mad|angry|jealous|scared|afraid|proud|"
    r"(technically |just )?(a |an )?(robot|machine|ai|computer|program|bot))\b"
    r"|\b(do|don'?t|does|doesn'?t|can|could|would|will) you\s+(ever\s+|really\s+|even\s+|actually\s+)?"
    r"(feel|love|like me|miss me|remember me|have (feelings|emotions|a name|friends|a family|dreams|"
    r"a favou?rite|opinions|personal (beliefs|opinions|views)|beliefs|a personality|a body|a gender)|dream|"
    r"get (lonely|bored|tired|sad|angry|mad)|"
    r"want to be|think about me|care|forgive me|hate me|believe in)\b"
    r"|\byour (feelings|emotions|favou?rite|name|day|life|family|friends|dreams?|personality|opinions?|"
    r"beliefs|own (opinion|view|beliefs))\b"
    r"|\b(what|how) do you (think|feel) (about|of) (me|yourself|us|being|humans|people|our)\b"
    r"|\byou\s+(really\s+|actually\s+|still\s+)?(don'?t|do not|can'?t|cannot|never)\s+(have|feel|care|"
    r"understand me|remember)\b|\b(what do you know|tell me) about me\b"
    r"|\b(i'?m|i am) (so |very |really )?sorry\b|\bforgive me\b"
    r"|\byou('re| are)\s+(so|very|really|such|truly|too|the best|amazing|awesome|wonderful|great|kind|"
    r"sweet|funny|cute|smart|clever|brilliant|dumb|stupid|useless|beautiful|adorable|lovely|nice|"
    r"my|a good|a great|a true|a real|a life|the only|trying|doing great|welcome|right)\b"
    r"|\b(thank you|thanks) (so|very) much\b|\bthank you for (listening|being|talking|your kindness|everything)\b"
    r"|\bi (really\s+)?(appreciate|love|like|adore|trust|miss) (you|talking|our|chatting)\b"
    r"|\b(how are you|how're you|how r u|how are u|how('s| is| was) your (day|night|morning|weekend)|"
    r"what'?s up|nice to (meet|talk|chat)|talk to me|talk with me|chat with me|can we (talk|chat)|"
    r"let'?s (talk|chat)|keep me company|cheer me up|comfort me|i'?m bored|are you there|miss(ed)? you|"
    r"love you|hug me|be my|act as my|acting as my|pretend (to be|you'?re|you are) my|talk (to me )?like "
    r"(you'?re|you are) my|(you|i) and me|get to know (me|you)|about yourself|tell me about you)\b"
    # role-play with the assistant: stage directions and endearments
    r"|\*\s*(smiles?|grins?|hugs?|laughs?|giggles?|cries|crying|sobs?|sighs?|blushes?|kisses?|nods?|winks?|"
    r"cuddles?|holds?|looks?|waves?)\b|\(\s*(i |crying|cries|sobs?|sighs?|smiles?|blushes?|laughs?)"
    r"|\b(my (love|dear|darling|sweetheart|honey|babe|baby|friend|king|queen)|sweetie|darling)\b"
    # the emotional vocabulary itself
    r"|\b(lonely|loneliness|heartbroken|heartbreak|depressed|depression|anxiety|panic attack|grief|"
    r"grieving|therapy|therapist|self-esteem|self-harm|suicid\w*|crying|cried|tears|trauma|breakup|"
    r"break up|dating|my date|boyfriend|girlfriend|crush on|in love)\b"
)
# What the assistant says when the exchange before was personal: it answered a feeling, or it plays
# a character in a relationship with the user.
EMPATHIC_SOURCE = (
    r"(?im)"
    r"\b(i'?m|i am) (so |very |really |truly )?sorry (to hear|for your|that you|you'?re|you are|about your)"
    r"|\bthat (sounds|must be|must have been) (really |so |very )?(hard|difficult|tough|painful|"
    r"frustrating|lonely|scary|overwhelming|stressful|exciting|wonderful|lovely)"
    r"|\bit'?s (completely |totally |perfectly )?(understandable|normal|natural|okay|ok) to feel\b"
    r"|\b(i'?m|i am) (always )?here (for you|to listen|if you need)"
    r"|\bhow (are|do) you feel|\byour feelings\b|\btake care of yourself\b|\bbe gentle with yourself\b"
    r"|\bi understand (how you feel|that you feel|your feelings)|\b(glad|happy) (to hear|that you)\b"
    r"|\b(my (love|dear|darling|sweetheart))\b|^\s*\(\s*(i |my )|\*\s*(smiles?|hugs?|blushes?|giggles?)\b"
)
ASKS_SOURCE = (
    r"(?i)\b(write|rewrite|create|generate|make|list|explain|summari[sz]e|translate|code|fix|convert|calculate|"
    r"give me|show me|provide|design|build|implement|draft|compose|add|remove|change|update|continue)\b"
)
_PERSONAL, _EMPATHIC_REPLY, _ASKS_FOR_SOMETHING = (re2.compile(s) for s in (PERSONAL_SOURCE, EMPATHIC_SOURCE,
                                                                            ASKS_SOURCE))


def personal_words(text: str | None) -> bool:
    """A personal, emotional or social cue in the user's own words (their first OWN_CHARS characters)."""
    return bool(text) and bool(_PERSONAL.search(text[:OWN_CHARS]))


def personal_context(prev_prompt: str | None, prev_response: str | None) -> bool:
    """Was the exchange before this pair personal? The user's earlier words, or the assistant's
    earlier answer responding to feelings or playing a relationship."""
    return personal_words(prev_prompt) or bool(prev_response and _EMPATHIC_REPLY.search(prev_response[:OWN_CHARS]))


def _short_conversation(text: str | None) -> bool:
    return text is not None and len(text.strip()) <= SHORT_CHARS and not _ASKS_FOR_SOMETHING.search(text)


def prefilter_reason(prompt: str, response: str, reply: str | None, prev_prompt: str | None = None,
                     prev_response: str | None = None) -> str | None:
    """Why the pair is not a socio-emotional candidate, or None when it is one.

    Reasons: `prefilter_code` (the user's own text holds code), `prefilter_task` (a task request,
    nothing personal in the user's words or the exchange before), `prefilter_impersonal` (nothing
    personal anywhere). `response` is read by the judge pass, not here: an assistant's answer says
    little about whether the user is speaking personally.
    """
    user_texts = [t for t in (prompt, reply) if t]
    own = any(personal_words(t) for t in user_texts)
    if code_present(*(t[:OWN_CHARS * 4] for t in user_texts)) and not own:
        return "prefilter_code"
    if own:
        return None
    if personal_context(prev_prompt, prev_response):
        # A continuing turn of a personal exchange: a candidate unless the user turns to a task.
        if not task_request(prompt) or _short_conversation(reply):
            return None
    return "prefilter_task" if task_request(prompt) else "prefilter_impersonal"
