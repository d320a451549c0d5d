"""One judgment through instructor + LiteLLM, whatever the provider: retries, fallbacks, logprobs, cost.

Every call ends as a `JudgmentRecord`: a validated score, or a failure with its reason. Nothing
raises out of here except what would fail every call alike — a server that cannot be reached, a
rejected key, an unknown model — which stops the run.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import ValidationError

from ._config import JudgeConfig
from ._local import score_probe
from ._schema import SCALE_LEVELS, Judgment, JudgmentRecord, judgment_model

# What the embedded judge's grammar allows: the same object, its rationale at most one sentence (no
# ".", "!" or "?" but at the end, no line break; the string may close at any point, so it is never
# longer than the model's own first sentence). A pattern, not maxLength: llama.cpp expands a length
# bound into as many nested optional rules, and sampling under that grammar was ten times slower.
ONE_SENTENCE = r'^[^.!?"\\\n\r\t]*[.!?]?$'
TOP_LOGPROBS = 10
# Two of the embedded judge's speed-ups (the third is _local.LOCAL_THREADS), switchable only so that
# bench/local_judge.py can measure the behaviour before them with the same code: a one-sentence
# rationale, and the score's logprobs asked for at the score's position after the answer
# (`score_probe`) instead of at every generated token.
LOCAL_ONE_SENTENCE = True
LOCAL_SCORE_PROBE = True


@functools.cache
def _libraries():
    """instructor and LiteLLM, imported on first use: LiteLLM alone takes seconds to import."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-list download at start-up
    import instructor
    import litellm

    litellm.suppress_debug_info = True
    # Failures are recorded on the judgment's row; the libraries' own error logging would only repeat them.
    logging.getLogger("instructor").setLevel(logging.CRITICAL)
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    return instructor, litellm


def _transient() -> tuple[type[BaseException], ...]:
    _, litellm = _libraries()
    return (litellm.RateLimitError, litellm.InternalServerError, litellm.ServiceUnavailableError,
            litellm.BadGatewayError, litellm.Timeout, litellm.APIConnectionError)


@dataclass(frozen=True)
class Endpoint:
    """How this run reaches a judge's model (resolved from its config; the key comes from env)."""

    model: str  # the LiteLLM model string called
    api_base: str | None
    api_key: str | None
    schema_in_response_format: bool
    price_in: float  # USD per input token; NaN when nobody knows the price
    price_out: float
    local: str | None = None  # the alias of the embedded llama.cpp model this endpoint serves

    @property
    def priced(self) -> bool:
        return not math.isnan(self.price_in)


@dataclass(frozen=True)
class WorkItem:
    pair_id: str
    construct: str
    sample_index: int
    prompt_version: str
    messages: list[dict]
    levels: tuple[int, ...] = SCALE_LEVELS  # the rubric's levels: the answer's score is one of these

    def estimated_tokens_in(self) -> int:
        return sum(len(m["content"]) for m in self.messages) // 4 + 8


class RunCannotContinue(Exception):
    """Every further call would fail the same way (server down, key rejected, model unknown): stop
    the run with one line instead of recording the same failure for every item."""


def _refusal(error: BaseException, endpoint: Endpoint, judge: JudgeConfig) -> str | None:
    """Why the provider refuses this judge's calls as configured, or None for per-item errors."""
    _, litellm = _libraries()
    status = getattr(error, "status_code", None)
    if isinstance(error, (litellm.AuthenticationError, litellm.PermissionDeniedError)) or status in (401, 403):
        source = f"the key in ${judge.api_key_env}" if judge.api_key_env else "a call without an API key"
        return f"judge {judge.name}: {endpoint.model} rejected {source} (HTTP {status or 401}); check the key and its access"
    if isinstance(error, litellm.NotFoundError) or status == 404:
        where = f" at {endpoint.api_base}" if endpoint.api_base else ""
        return f"judge {judge.name}: the provider{where} does not serve model {endpoint.model} (HTTP 404)"
    return None


@functools.cache
def _schema(levels: tuple[int, ...], one_sentence: bool = False) -> dict:
    schema = judgment_model(levels).model_json_schema()
    if one_sentence:
        schema["properties"]["rationale"]["pattern"] = ONE_SENTENCE
    return schema


@functools.cache
def _response_model(levels: tuple[int, ...] = SCALE_LEVELS):
    """Judgment as instructor's response class, built once per level set.

    instructor wraps a plain model into a new class on every call and regenerates its JSON schema
    twice per call; at thousands of calls that class building dominated the client's CPU time.
    The wrapped class is made here once, with its (constant) schema computed once.
    """
    instructor, _ = _libraries()
    wrapped = instructor.openai_schema(judgment_model(levels))
    schema = wrapped.model_json_schema()
    wrapped.model_json_schema = classmethod(lambda cls, *args, **kwargs: copy.deepcopy(schema))
    return wrapped


@functools.cache
def _client():
    instructor, litellm = _libraries()
    # One path for every provider. MD_JSON puts the schema in the prompt and parses the JSON
    # out of the text; `response_format` travels as a plain kwarg, so a server that supports
    # grammar-constrained JSON (llama.cpp) can receive the schema inside it.
    return instructor.from_litellm(litellm.acompletion, mode=instructor.Mode.MD_JSON)


def expected_score(logprobs, levels: tuple[int, ...] = SCALE_LEVELS) -> float | None:
    """Σ p(s)·s over the level tokens (1..7, or 0/1: then it is P(yes)) offered where the score was written."""
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return None
    text = ""
    for token in content:
        piece = _get(token, "token") or ""
        seen_key = '"score"' in text and text.rstrip().endswith(":")
        if seen_key and piece.strip()[:1].isdigit():
            weights = {}
            for alternative in _get(token, "top_logprobs") or []:
                value = (_get(alternative, "token") or "").strip()
                if value in {str(level) for level in levels}:
                    weights[int(value)] = weights.get(int(value), 0.0) + math.exp(_get(alternative, "logprob"))
            total = sum(weights.values())
            return sum(s * p for s, p in weights.items()) / total if total > 0 else None
        text += piece
    return None


def _get(obj, name):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _reason(error: BaseException, secret: str | None) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    if secret:
        text = text.replace(secret, "***")
    return text[:500]


def _cannot_connect(error: BaseException) -> bool:
    """LiteLLM reports a refused connection as APIConnectionError or as a 500 saying "Connection error"."""
    _, litellm = _libraries()
    seen = error
    while seen is not None:
        if isinstance(seen, (litellm.APIConnectionError, ConnectionError)) or "Connection error" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _where(endpoint: Endpoint) -> str:
    """The server a call went to: its api_base, else the provider's own base-URL variables where set."""
    if endpoint.api_base:
        return endpoint.api_base
    _, litellm = _libraries()
    try:
        provider = litellm.get_llm_provider(endpoint.model)[1]
    except Exception:  # LiteLLM raises a bare Exception for models it cannot place
        provider = endpoint.model.split("/")[0]
    prefix = provider.upper().replace("-", "_") + "_"
    variables = sorted(name for name in os.environ if name.startswith(prefix)
                       and name.endswith(("_BASE_URL", "_API_BASE", "_ENDPOINT")))
    set_to = ", ".join(f"${name} = {os.environ[name]}" for name in variables)
    return f"the {provider} endpoint of {endpoint.model}" + (f" ({set_to})" if set_to else "")


def _backoff(attempt: int, error: BaseException) -> float:
    retry_after = getattr(getattr(error, "response", None), "headers", {}) or {}
    try:
        return min(60.0, float(retry_after.get("retry-after")))
    except (TypeError, ValueError, AttributeError):
        return min(30.0, 0.5 * 2 ** attempt) * (0.5 + random.random())


async def judge_once(judge: JudgeConfig, endpoints: list[Endpoint], item: WorkItem,
                     validation_retries: int, limiter=None) -> JudgmentRecord:
    """Call the judge's model (then its fallbacks) until a valid judgment or a final failure."""
    from instructor.core.exceptions import IncompleteOutputException, InstructorRetryException

    transient = _transient()
    started = time.perf_counter()
    failure: str = "no attempt made"
    spent = None  # (endpoint, last completion, usage) of answers that arrived but broke the schema
    for endpoint in endpoints:
        for attempt in range(judge.retries + 1):
            if limiter is not None:
                await limiter.wait()
            try:
                parsed, raw = await _client().chat.completions.create_with_completion(**_request(judge, endpoint, item),
                                                                                       response_model=_response_model(item.levels),
                                                                                       max_retries=validation_retries)
            except InstructorRetryException as wrapped:
                cause = wrapped.__cause__ or wrapped
                if isinstance(cause, transient):
                    failure = _reason(cause, endpoint.api_key)
                    if attempt == judge.retries and _cannot_connect(cause):
                        if endpoint is endpoints[-1]:
                            raise RunCannotContinue(f"judge {judge.name}: cannot reach {_where(endpoint)} ({failure})")
                        break  # this server is down: try the fallback
                    await asyncio.sleep(_backoff(attempt, cause))
                    continue
                refusal = _refusal(cause, endpoint, judge)
                if refusal is not None:
                    raise RunCannotContinue(refusal)
                if isinstance(cause, (ValidationError, json.JSONDecodeError, ValueError)):
                    failure = "invalid output: " + _reason(cause, endpoint.api_key)
                    spent = (endpoint, wrapped.last_completion, wrapped.total_usage)
                else:
                    failure = _reason(cause, endpoint.api_key)
                break  # not transient: retrying the same request will not help; try a fallback
            except IncompleteOutputException:
                failure = f"answer cut off at max_tokens={judge.max_tokens}"
                break
            expected = None
            if judge.logprobs and _probes(endpoint):
                expected = await _probe(endpoint, item, raw)
            return _record(judge, endpoint, item, started, parsed=parsed, raw=raw, expected=expected)
    if spent is not None:  # the tokens of rejected answers were paid for: record them
        endpoint, last, usage = spent
        return _record(judge, endpoint, item, started, raw=last, usage=usage, error=failure)
    return _record(judge, None, item, started, error=failure)


def _probes(endpoint: Endpoint) -> bool:
    return endpoint.local is not None and LOCAL_SCORE_PROBE


def sent_messages(messages: list[dict], levels: tuple[int, ...] = SCALE_LEVELS) -> list[dict]:
    """The chat messages as instructor sends them: its JSON mode adds the schema and an instruction."""
    from instructor import Mode
    from instructor.processing.response import handle_response_model

    return handle_response_model(_response_model(levels), mode=Mode.MD_JSON,
                                 messages=copy.deepcopy(messages))[1]["messages"]


async def _probe(endpoint: Endpoint, item: WorkItem, raw) -> float | None:
    content = raw.choices[0].message.content if raw is not None and raw.choices else None
    if not content:
        return None
    try:
        return await score_probe(endpoint.api_base, endpoint.local, sent_messages(item.messages, item.levels), content,
                                 levels=item.levels)
    except Exception:  # the score stands without its expected value; the record says so by a null
        return None


def _request(judge: JudgeConfig, endpoint: Endpoint, item: WorkItem) -> dict:
    response_format = {"type": "json_object"}
    if endpoint.schema_in_response_format:
        response_format["schema"] = _schema(item.levels, one_sentence=bool(endpoint.local and LOCAL_ONE_SENTENCE))
    request = {
        "model": endpoint.model, "messages": item.messages, "temperature": judge.temperature,
        "max_tokens": judge.max_tokens, "timeout": judge.timeout, "response_format": response_format,
        "num_retries": 0, "drop_params": True,
    }
    if endpoint.api_base:
        request["api_base"] = endpoint.api_base
    if endpoint.api_key:
        request["api_key"] = endpoint.api_key
    if endpoint.priced:
        # Prices given with the call take LiteLLM's short costing path; for a model it must look up,
        # its cost calculation was the largest single item of client CPU per call (bench/judge_throughput.py).
        request["input_cost_per_token"] = endpoint.price_in
        request["output_cost_per_token"] = endpoint.price_out
    if judge.logprobs and not _probes(endpoint):
        request["logprobs"] = True
        request["top_logprobs"] = TOP_LOGPROBS
    return request


def _record(judge: JudgeConfig, endpoint: Endpoint | None, item: WorkItem, started: float, *,
            parsed: Judgment | None = None, raw=None, usage=None, error: str | None = None,
            expected: float | None = None) -> JudgmentRecord:
    usage = usage if usage is not None else getattr(raw, "usage", None)
    tokens_in = getattr(usage, "prompt_tokens", None)
    tokens_out = getattr(usage, "completion_tokens", None)
    cost = None
    if endpoint is not None and tokens_in is not None and tokens_out is not None:
        cost = tokens_in * endpoint.price_in + tokens_out * endpoint.price_out
    choice = raw.choices[0] if raw is not None and getattr(raw, "choices", None) else None
    return JudgmentRecord(
        pair_id=item.pair_id, construct=item.construct, judge=judge.name, model=judge.model,
        model_returned=getattr(raw, "model", None), prompt_version=item.prompt_version,
        sample_index=item.sample_index, temperature=judge.temperature,
        score=parsed.score if parsed else None,
        expected_score=(expected if expected is not None else expected_score(getattr(choice, "logprobs", None), item.levels))
        if parsed and judge.logprobs else None,
        rationale=parsed.rationale if parsed else None, tokens_in=tokens_in, tokens_out=tokens_out,
        cost_usd=cost, latency_ms=round(1000 * (time.perf_counter() - started), 1), error=error,
        created_at=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    )
