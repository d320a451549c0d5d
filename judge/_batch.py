"""Batch judging through a provider's files/batches API (OpenAI batch format, via LiteLLM).

A judge with `batch = true` has its pending items written as batch input files, uploaded and
submitted; a later run polls the batches and appends each finished one's answers to the same
judgment log, parsed and validated by the same code as a live call (`_call._record`).

What keeps a batch from being lost or submitted twice is the ledger beside the log
(`judge_batches.jsonl`, append-only), one line per step of a batch, each written *before* the
step it makes possible and *after* the step it records:

    prepared   the input file is on disk (DIR/batches/<key>.jsonl) — written before any upload
    uploaded   the provider holds the file (its id) — after the upload
    submitted  the provider's batch id — after the batch was created
    collected  its answers are in the log — after they were appended

A batch carries its ledger key in its metadata. A run that finds a batch prepared but not
submitted (the previous run died between create and record) first looks for that key in the
provider's list of batches, and records the batch found there instead of submitting again; only
when the provider has no such batch is it submitted. Answers already in the log under the batch's
run are not appended twice, should a run die between appending and recording `collected`.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from empathy_study.shared import atomic_path

from ._call import Endpoint, WorkItem, _libraries, _reason, _record, _request, _response_model, sent_messages
from ._config import JudgeConfig
from ._errors import JudgeError
from ._local import is_local
from ._log import JudgmentLog
from ._schema import JudgmentRecord, cache_key

# LiteLLM 1.110.2 leaves one coroutine of its OpenAI file-content call unawaited while returning the
# content complete (tests/judge/test_batch.py checks every line arrives): its warning would only alarm.
warnings.filterwarnings("ignore", message="coroutine 'OpenAIFilesAPI.afile_content' was never awaited")

BATCHES_FILE = "judge_batches.jsonl"
BATCH_DIR = "batches"  # input files as uploaded, one per batch
# OpenAI's limits per batch: 50,000 requests and a 200 MB input file (others allow as much or more).
MAX_REQUESTS = 50_000
MAX_BYTES = 190_000_000
COMPLETION_WINDOW = "24h"
ENDPOINT = "/v1/chat/completions"
TERMINAL = ("completed", "failed", "expired", "cancelled")
MISSING = "missing"  # our status for a batch the provider answers 404 for: ended, nothing to download
# LiteLLM's files/batches API serves these providers (litellm.acreate_batch's custom_llm_provider).
PROVIDERS = ("openai", "azure", "vertex_ai", "bedrock", "hosted_vllm", "mistral")
_DROPPED = ("timeout", "num_retries", "drop_params", "api_base", "api_key", "input_cost_per_token",
            "output_cost_per_token")


@dataclass(frozen=True)
class BatchTarget:
    """Where a batch judge's batches go: the provider LiteLLM routes to, and the model named in each request."""

    provider: str
    model: str
    api_base: str | None
    api_key: str | None
    price_in: float  # USD per token at the batch price; NaN when nobody knows it
    price_out: float

    def kwargs(self) -> dict:
        found = {"custom_llm_provider": self.provider}
        if self.api_base:
            found["api_base"] = self.api_base
        if self.api_key:
            found["api_key"] = self.api_key
        return found


def batch_price_per_token(judge: JudgeConfig) -> tuple[float, float] | None:
    """(input, output) USD per token for a batch judge: its own prices where given (for a batch judge
    they are its batch prices), else LiteLLM's batch prices for the model, else None."""
    if judge.input_cost_per_million is not None and judge.output_cost_per_million is not None:
        return judge.input_cost_per_million / 1e6, judge.output_cost_per_million / 1e6
    _, litellm = _libraries()
    try:
        info = litellm.get_model_info(judge.model)
    except Exception:  # LiteLLM raises a bare Exception for unmapped models
        return None
    if info.get("input_cost_per_token_batches") is None or info.get("output_cost_per_token_batches") is None:
        return None
    return float(info["input_cost_per_token_batches"]), float(info["output_cost_per_token_batches"])


def batch_target(judge: JudgeConfig, *, need_key: bool = True) -> BatchTarget:
    """Resolve a batch judge, failing with one line on what cannot be batched."""
    if is_local(judge.model):
        raise JudgeError(f"judge {judge.name}: batch = true needs a provider with a batch API; "
                         f"{judge.model} is the embedded local model")
    if judge.fallbacks:
        raise JudgeError(f"judge {judge.name}: a batch judge has no fallbacks (a batch goes to one provider); "
                         "remove fallbacks or batch = true")
    _, litellm = _libraries()
    try:
        model, provider, _, _ = litellm.get_llm_provider(judge.model, api_base=judge.api_base)
    except Exception as exc:
        raise JudgeError(f"judge {judge.name}: LiteLLM does not know the model {judge.model!r}") from exc
    if provider not in PROVIDERS:
        raise JudgeError(f"judge {judge.name}: LiteLLM has no batch API for provider {provider!r} "
                         f"(batch providers: {', '.join(PROVIDERS)})")
    api_key = os.environ.get(judge.api_key_env) if judge.api_key_env else None
    if need_key and judge.api_key_env and not api_key:
        raise JudgeError(f"judge {judge.name}: the environment variable {judge.api_key_env} (its API key) is not set")
    if api_key is None and judge.api_base:
        api_key = "no-key"  # as for live calls: OpenAI-compatible servers without auth still expect a key field
    price = batch_price_per_token(judge) or (math.nan, math.nan)
    return BatchTarget(provider, model, judge.api_base, api_key, *price)


def custom_id(item: WorkItem) -> str:
    """Everything needed to file the answer: the item's key within its judge, and its rubric's levels."""
    return json.dumps([item.pair_id, item.construct, item.prompt_version, item.sample_index, list(item.levels)],
                      separators=(",", ":"))


def _item_of(line_id: str) -> WorkItem:
    pair_id, construct, version, index, levels = json.loads(line_id)
    return WorkItem(pair_id, construct, int(index), version, [], tuple(levels))


def request_line(judge: JudgeConfig, target: BatchTarget, item: WorkItem) -> dict:
    """One line of the input file: the same request a live call sends, as instructor sends it."""
    endpoint = Endpoint(target.model, None, None, bool(judge.schema_in_response_format), math.nan, math.nan)
    body = {k: v for k, v in _request(judge, endpoint, item).items() if k not in _DROPPED}
    body["messages"] = sent_messages(item.messages, item.levels)
    return {"custom_id": custom_id(item), "method": "POST", "url": ENDPOINT, "body": body}


def chunks(lines: list[str]) -> list[list[str]]:
    """Input lines cut into batches within the provider's request and size limits."""
    found, current, size = [], [], 0
    for line in lines:
        if current and (len(current) >= MAX_REQUESTS or size + len(line) + 1 > MAX_BYTES):
            found.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line.encode("utf-8")) + 1
    return found + ([current] if current else [])


@dataclass
class Batch:
    """One batch as the ledger knows it."""

    key: str
    judge: JudgeConfig
    run_id: str | None
    path: Path
    requests: int
    prepared_at: str
    file_id: str | None = None
    batch_id: str | None = None
    collected: dict | None = None
    status: str | None = None  # as last retrieved in this run
    counts: dict = field(default_factory=dict)

    @property
    def ids_path(self) -> Path:
        return self.path.with_suffix(".ids")

    def custom_ids(self) -> list[str]:
        """The custom_id of every request, in order: from the small list beside the input file (a
        190 MB input file would take seconds to parse at every plan), else from the input file."""
        if self.ids_path.exists():
            return self.ids_path.read_text(encoding="utf-8").splitlines()
        with self.path.open(encoding="utf-8") as handle:
            return [json.loads(line)["custom_id"] for line in handle]

    def keys(self) -> set[tuple]:
        """The cache keys of the batch's requests."""
        return {_key(self.judge, _item_of(line_id)) for line_id in self.custom_ids()}


def _key(judge: JudgeConfig, item: WorkItem) -> tuple:
    return cache_key(item.pair_id, item.construct, judge.name, judge.model, item.prompt_version,
                     item.sample_index, judge.temperature)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class BatchLedger:
    """judge_batches.jsonl beside the judgment log, and the input files in DIR/batches/."""

    def __init__(self, log_path: Path):
        self.path = log_path.with_name(BATCHES_FILE)
        self.folder = log_path.with_name(BATCH_DIR)

    def append(self, event: dict) -> None:
        line = json.dumps({**event, "at": _now()}, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line.encode("utf-8"))
        finally:
            os.close(descriptor)

    def batches(self) -> list[Batch]:
        """Every batch in the order it was prepared, with the steps it reached."""
        found: dict[str, Batch] = {}
        if not self.path.exists():
            return []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a run killed mid-write: that step is taken again
            key = event.get("batch")
            if event.get("event") == "prepared":
                found[key] = Batch(key, JudgeConfig.model_validate(event["judge"]), event.get("run_id"),
                                   self.folder / event["input"], int(event["requests"]), event["at"])
            elif key in found and event.get("event") == "uploaded":
                found[key].file_id = event["file_id"]
            elif key in found and event.get("event") == "submitted":
                found[key].batch_id = event["batch_id"]
            elif key in found and event.get("event") == "collected":
                found[key].collected = event
        return list(found.values())

    def outstanding(self) -> list[Batch]:
        return [b for b in self.batches() if b.collected is None]

    def in_flight(self) -> set[tuple]:
        """Cache keys sent (or about to be sent) in batches not yet collected: never planned again meanwhile."""
        return set().union(*(b.keys() for b in self.outstanding()))

    def prepare(self, judge: JudgeConfig, target: BatchTarget, items: list[WorkItem], run_id: str | None) -> list[Batch]:
        """Write the input files and record them, before anything is sent."""
        lines = [json.dumps(request_line(judge, target, item), separators=(",", ":")) for item in items]
        made = []
        for part in chunks(lines):
            key = uuid.uuid4().hex[:16]
            path = self.folder / f"{key}.jsonl"
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(path.with_suffix(".ids")) as staged:
                staged.write_text("".join(json.loads(line)["custom_id"] + "\n" for line in part), encoding="utf-8")
            with atomic_path(path) as staged:
                staged.write_text("".join(line + "\n" for line in part), encoding="utf-8")
            self.append({"event": "prepared", "batch": key, "judge": judge.model_dump(), "run_id": run_id,
                         "provider": target.provider, "input": path.name, "requests": len(part)})
            made.append(Batch(key, judge, run_id, path, len(part), _now()))
        return made


@dataclass
class BatchReport:
    """What a run did with the batches: submitted, found again after a kill, polled, collected."""

    submitted: list[Batch] = field(default_factory=list)
    recovered: list[Batch] = field(default_factory=list)  # found at the provider after a run died before recording
    pending: list[Batch] = field(default_factory=list)  # submitted earlier, not finished yet
    collected: list[Batch] = field(default_factory=list)
    records: int = 0  # judgments appended from collected batches
    failed: int = 0
    held_by_budget: int = 0  # items not submitted: their batches would pass --max-cost


def _created(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


async def _find_submitted(batch: Batch, target: BatchTarget):
    """The provider's batch carrying this ledger key (or this input file), if it was created."""
    _, litellm = _libraries()
    after = None
    while True:
        page = await litellm.alist_batches(after=after, limit=100, **target.kwargs())
        data = list(getattr(page, "data", None) or [])
        for found in data:
            metadata = _get(found, "metadata") or {}
            if metadata.get("empathy_batch") == batch.key or (batch.file_id and _get(found, "input_file_id") == batch.file_id):
                return found
        # newest first: once the page reaches batches made before this one was prepared, it is not there
        oldest = min((_get(b, "created_at") or 0 for b in data), default=0)
        if not data or not getattr(page, "has_more", False) or oldest < _created(batch.prepared_at) - 3600:
            return None
        after = _get(data[-1], "id")


def _get(obj, name):
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


async def submit(ledger: BatchLedger, batch: Batch, target: BatchTarget, *, fresh: bool) -> bool:
    """Submit a prepared batch once. `fresh`: prepared by this run, so no earlier attempt can exist.
    Returns False when the batch had already been created by a run that died before recording it."""
    _, litellm = _libraries()
    if not fresh:
        found = await _find_submitted(batch, target)
        if found is not None:
            ledger.append({"event": "submitted", "batch": batch.key, "batch_id": _get(found, "id"), "recovered": True})
            batch.batch_id = _get(found, "id")
            return False
    if batch.file_id is None:
        uploaded = await litellm.acreate_file(file=(batch.path.name, batch.path.read_bytes(), "application/jsonl"),
                                              purpose="batch", **target.kwargs())
        batch.file_id = _get(uploaded, "id")
        ledger.append({"event": "uploaded", "batch": batch.key, "file_id": batch.file_id})
    created = await litellm.acreate_batch(completion_window=COMPLETION_WINDOW, endpoint=ENDPOINT,
                                          input_file_id=batch.file_id,
                                          metadata={"empathy_batch": batch.key, "judge": batch.judge.name},
                                          **target.kwargs())
    batch.batch_id = _get(created, "id")
    ledger.append({"event": "submitted", "batch": batch.key, "batch_id": batch.batch_id})
    return True


async def _content(file_id: str | None, target: BatchTarget) -> list[dict]:
    if not file_id:
        return []
    _, litellm = _libraries()
    answer = await litellm.afile_content(file_id=file_id, **target.kwargs())
    text = answer.content.decode("utf-8") if hasattr(answer, "content") else str(answer)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def parse_line(judge: JudgeConfig, target: BatchTarget, line: dict, created_at: str) -> JudgmentRecord:
    """One output (or error) line → the same record a live call makes: validated, or failed with its reason."""
    from instructor import Mode
    from instructor.core.exceptions import IncompleteOutputException
    from openai.types.chat import ChatCompletion

    item = _item_of(line["custom_id"])
    endpoint = Endpoint(target.model, None, None, False, target.price_in, target.price_out)
    response = line.get("response") or {}
    status = response.get("status_code")
    body = response.get("body") or {}
    if line.get("error") or status != 200:
        error = line.get("error") or body.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
        record = _record(judge, None, item, 0.0, error=f"batch request failed (HTTP {status}): {message}"[:500])
    else:
        raw = ChatCompletion.model_validate(body)
        try:
            parsed = _response_model(item.levels).from_response(raw, mode=Mode.MD_JSON)
        except IncompleteOutputException:
            record = _record(judge, endpoint, item, 0.0, raw=raw, error=f"answer cut off at max_tokens={judge.max_tokens}")
        except Exception as exc:  # the schema was broken: recorded as a live call's invalid output is
            record = _record(judge, endpoint, item, 0.0, raw=raw, error="invalid output: " + _reason(exc, None))
        else:
            record = _record(judge, endpoint, item, 0.0, parsed=parsed, raw=raw)
    return record.model_copy(update={"latency_ms": None, "created_at": created_at})


async def collect(ledger: BatchLedger, log: JudgmentLog, batch: Batch, target: BatchTarget) -> tuple[int, int] | None:
    """Poll one submitted batch; when it has ended, append every request's record to the log
    (requests it never ran are failures saying why) and record it collected. None while it runs."""
    _, litellm = _libraries()
    try:
        state = await litellm.aretrieve_batch(batch_id=batch.batch_id, **target.kwargs())
    except Exception as error:
        if getattr(error, "status_code", None) != 404:
            raise
        state = None  # the provider no longer knows it (deleted, or a vLLM server restarted): its requests failed
    batch.status = MISSING if state is None else _get(state, "status")
    counts = _get(state, "request_counts") if state is not None else None
    batch.counts = (counts.model_dump() if hasattr(counts, "model_dump") else dict(counts or {}))
    if batch.status not in TERMINAL + (MISSING,):
        return None
    ended = None if state is None else (_get(state, "completed_at") or _get(state, "expired_at")
                                        or _get(state, "failed_at") or _get(state, "cancelled_at"))
    created_at = (datetime.fromtimestamp(ended, timezone.utc).isoformat(timespec="milliseconds") if ended else _now())
    lines = [] if state is None else (await _content(_get(state, "output_file_id"), target)
                                      + await _content(_get(state, "error_file_id"), target))
    records = {}
    for line in lines:
        record = parse_line(batch.judge, target, line, created_at)
        records[line["custom_id"]] = record
    why = {"expired": f"batch {batch.batch_id} expired before this request ran",
           "cancelled": f"batch {batch.batch_id} was cancelled before this request ran",
           "failed": f"batch {batch.batch_id} failed: {_errors(state)}",
           "completed": f"batch {batch.batch_id} completed without an answer for this request",
           MISSING: f"batch {batch.batch_id} is unknown to the provider (HTTP 404: deleted, or the server holding "
                    "it restarted)"}[batch.status]
    for line_id in batch.custom_ids():
        if line_id not in records:
            records[line_id] = _record(batch.judge, None, _item_of(line_id), 0.0, error=why).model_copy(
                update={"latency_ms": None, "created_at": created_at})
    already = {r.cache_key() for r in log.read().records if r.run_id == batch.run_id}
    fresh = []
    for record in records.values():
        record.run_id = batch.run_id
        if record.cache_key() not in already:  # a run that died after appending them, before recording it
            fresh.append(record)
    log.append(fresh)
    ok = sum(r.score is not None for r in records.values())
    batch.collected = {"event": "collected", "batch": batch.key, "batch_id": batch.batch_id, "status": batch.status,
                       "ok": ok, "failed": len(records) - ok, "appended": len(fresh)}
    ledger.append(batch.collected)
    return ok, len(records) - ok


def _errors(state) -> str:
    errors = _get(state, "errors")
    data = _get(errors, "data") if errors is not None else None
    if not data:
        return "no reason given"
    return "; ".join(str(_get(e, "message") or e) for e in data)[:300]


Tick = Callable[[str, int, int], None]


async def poll_batches(ledger: BatchLedger, log: JudgmentLog, report: BatchReport, tick: Tick | None = None) -> None:
    """Submit what a dead run prepared but never recorded as submitted; collect what has finished."""
    batches = ledger.outstanding()
    for number, batch in enumerate(batches, 1):
        if tick:
            tick("polling batches", number - 1, len(batches))
        target = batch_target(batch.judge)
        if batch.batch_id is None:
            if await submit(ledger, batch, target, fresh=False):
                report.submitted.append(batch)
            else:
                report.recovered.append(batch)
            report.pending.append(batch)
            continue
        outcome = await collect(ledger, log, batch, target)
        if outcome is None:
            report.pending.append(batch)
        else:
            report.collected.append(batch)
            report.records += sum(outcome)
            report.failed += outcome[1]
    if tick and batches:
        tick("polling batches", len(batches), len(batches))


async def submit_items(ledger: BatchLedger, judge: JudgeConfig, items: list[WorkItem], run_id: str | None,
                       report: BatchReport, tick: Tick | None = None) -> None:
    """Prepare and submit a judge's pending items as batches."""
    target = batch_target(judge)
    batches = ledger.prepare(judge, target, items, run_id)
    for number, batch in enumerate(batches):
        if tick:
            tick(f"submitting batches of {judge.name}", number, len(batches))
        await submit(ledger, batch, target, fresh=True)
        batch.status = "submitted"
        report.submitted.append(batch)
    if tick and batches:
        tick(f"submitting batches of {judge.name}", len(batches), len(batches))


def batch_count(judge: JudgeConfig, items: list[WorkItem]) -> int:
    """Batches a judge's items would make under both limits. One line is rendered as sent; the others'
    sizes are that line's fixed part (instructor's schema and instruction, the request fields) plus
    their own messages — rendering 10⁵ lines only to count them would cost more than the dry run."""
    if not items:
        return 0
    target = BatchTarget("openai", judge.model, None, None, math.nan, math.nan)
    first = len(json.dumps(request_line(judge, target, items[0]), separators=(",", ":")).encode("utf-8")) + 1
    fixed = first - _message_bytes(items[0])
    total = sum(fixed + _message_bytes(item) for item in items)
    return max(math.ceil(len(items) / MAX_REQUESTS), math.ceil(total / MAX_BYTES))


def _message_bytes(item: WorkItem) -> int:
    return len(json.dumps(item.messages, separators=(",", ":")).encode("utf-8"))


def poll(ledger: BatchLedger, log: JudgmentLog, tick: Tick | None = None) -> BatchReport:
    """Poll every outstanding batch (synchronous entry for the study library)."""
    report = BatchReport()
    if ledger.path.exists():
        _run(poll_batches(ledger, log, report, tick))
    return report


def submit_all(ledger: BatchLedger, work: list[tuple[JudgeConfig, list[WorkItem]]], run_id: str | None,
               report: BatchReport, tick: Tick | None = None) -> None:
    """Submit each batch judge's pending items (synchronous entry for the study library)."""

    async def all_of() -> None:
        for judge, items in work:
            if items:
                await submit_items(ledger, judge, items, run_id, report, tick)

    _run(all_of())


def _run(work) -> None:
    """Run in a fresh event loop, closing LiteLLM's cached HTTP clients before the loop ends (they are
    bound to it: left open, each would fail to close later against a closed loop)."""

    async def closing() -> None:
        try:
            await work
        except JudgeError:
            raise
        except Exception as exc:  # the provider refused or could not be reached: one line, the ledger stands
            keys = [v for k, v in os.environ.items() if k.endswith("KEY") and len(v) > 8]
            reason = _reason(exc, None)
            for key in keys:
                reason = reason.replace(key, "***")
            raise JudgeError(f"batch API: {reason} (every step done so far is in {BATCHES_FILE}; "
                             "a later run picks up from there)") from None
        finally:
            _, litellm = _libraries()
            from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

            await close_litellm_async_clients()
            litellm.in_memory_llm_clients_cache.flush_cache()

    asyncio.run(closing())


def within_budget(work: list[tuple[JudgeConfig, list[WorkItem]]], cap: float
                  ) -> tuple[list[tuple[JudgeConfig, list[WorkItem]]], float, int]:
    """The items that fit under `cap` USD at their most (input estimate + max_tokens out, batch prices),
    in order; (the work kept, its most cost, items held back for a later run)."""
    kept, spent, held = [], 0.0, 0
    for judge, items in work:
        target = batch_target(judge, need_key=False)
        if math.isnan(target.price_in):
            raise JudgeError(f"--max-cost needs batch prices for judge {judge.name}: LiteLLM does not list them for "
                             "its model; set input_cost_per_million and output_cost_per_million in its [[judges]] table")
        fits = []
        for item in items:
            most = item.estimated_tokens_in() * target.price_in + judge.max_tokens * target.price_out
            if spent + most > cap:
                break
            spent += most
            fits.append(item)
        held += len(items) - len(fits)
        kept.append((judge, fits))
    return kept, spent, held


def split_budget(plans: list, max_cost: float | None) -> tuple[list[tuple[JudgeConfig, list[WorkItem]]], float | None, int]:
    """A run's `--max-cost` across batch and live judges: a batch cannot be stopped once submitted, so
    its items are reserved first at their most cost (`within_budget`) and the live calls get what is
    left. (the batch work that fits, the cap left for the live calls, batch items held back)"""
    work = [(p.judge, p.items) for p in plans if p.judge.batch and p.items]
    if not work or max_cost is None:
        return work, max_cost, 0
    kept, reserved, held = within_budget(work, max_cost)
    return kept, max(0.0, max_cost - reserved), held


def hold_in_flight(plans: list, in_flight: set[tuple]) -> None:
    """Take out of each judge's plan what is already in an uncollected batch (counted as in_batch)."""
    if not in_flight:
        return
    for plan in plans:
        keep = [item for item in plan.items if _key(plan.judge, item) not in in_flight]
        plan.in_batch += len(plan.items) - len(keep)
        plan.items = keep
