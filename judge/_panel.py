"""Running the panel: plan what is not yet judged, call concurrently under rate limits and a budget, log.

A finished item (a record with a score) is never requested again. A failed one is retried by a
later run until it has failed `max_attempts` times. After a crash the next run redoes only what
was in flight: everything finished was already appended to the log.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ._batch import COMPLETION_WINDOW, batch_count, batch_price_per_token
from ._call import Endpoint, RunCannotContinue, WorkItem, _libraries, judge_once
from ._config import JudgeConfig, JudgeSettings
from ._errors import JudgeError
from ._local import LocalServer, is_local, local_alias, local_tokenizer, start_local_server
from ._log import JudgmentLog, LogState
from ._rubric import Rubric, render_messages, swap_check_rubrics
from ._schema import JudgmentRecord, cache_key


@dataclass
class JudgePlan:
    judge: JudgeConfig
    items: list[WorkItem] = field(default_factory=list)
    cached: int = 0  # already finished in the log
    gave_up: int = 0  # failed max_attempts times already
    in_batch: int = 0  # sent in a batch that is not collected yet (batch judges)


@dataclass(frozen=True)
class Task:
    """One construct to judge over a set of pairs, with the rubric (and its version) to use."""

    construct: str
    rubric: Rubric
    rows: list[dict]  # pair_id, prompt, response, reply


TEXT_COLUMNS = ("pair_id", "prev_prompt", "prev_response", "prompt", "response", "reply")


def main_tasks(sample: pd.DataFrame, rubrics: dict[str, Rubric]) -> list[Task]:
    """Each rubric over every pair of `sample`, with the texts the table has (a terminal pair has no reply)."""
    rows = sample[[c for c in TEXT_COLUMNS if c in sample.columns]].fillna("").to_dict("records")
    return [Task(construct, rubric, rows) for construct, rubric in rubrics.items()]


def swap_tasks(sample: pd.DataFrame, n: int, seed: int = 0, rubrics_dir: Path | None = None) -> list[Task]:
    """The response-swap check: n pairs' attachment judged again with the response shown, and with
    another pair's response shown instead. The rubric versions differ, so these never mix with
    the study's attachment scores."""
    if n <= 0 or len(sample) < 2:
        return []
    chosen = sample.sort_values("pair_id").sample(n=min(n, len(sample)), random_state=seed).sort_values("pair_id")
    rows = chosen[["pair_id", "prompt", "response", "reply"]].fillna("").to_dict("records")
    shown, swapped_rubric = swap_check_rubrics(rubrics_dir)
    swapped = [{**row, "response": rows[(i + 1) % len(rows)]["response"]} for i, row in enumerate(rows)]
    return [Task("attachment", shown, rows), Task("attachment", swapped_rubric, swapped)]


def plan_panel(tasks: list[Task], judges: list[JudgeConfig], state: LogState, settings: JudgeSettings) -> list[JudgePlan]:
    """What each judge still has to do for every task's pair × sample index."""
    finished, failures = state.finished(), state.failures()
    plans = []
    for judge in judges:
        plan = JudgePlan(judge)
        for task in tasks:
            for row in task.rows:
                messages = None
                for index in range(judge.samples):
                    key = cache_key(row["pair_id"], task.construct, judge.name, judge.model, task.rubric.version,
                                    index, judge.temperature)
                    if key in finished:
                        plan.cached += 1
                    elif failures[key] >= settings.max_attempts:
                        plan.gave_up += 1
                    else:
                        messages = messages or render_messages(task.rubric, row)
                        plan.items.append(WorkItem(row["pair_id"], task.construct, index, task.rubric.version,
                                                   messages, task.rubric.level_set))
        plans.append(plan)
    return plans


def price_per_token(judge: JudgeConfig, model: str) -> tuple[float, float] | None:
    """(input, output) USD per token: the judge's own prices, 0 for local models, else LiteLLM's list."""
    if judge.input_cost_per_million is not None and judge.output_cost_per_million is not None:
        return judge.input_cost_per_million / 1e6, judge.output_cost_per_million / 1e6
    if is_local(judge.model):
        return 0.0, 0.0
    _, litellm = _libraries()

    try:
        prompt_cost, completion_cost = litellm.cost_per_token(model=model, prompt_tokens=1_000_000,
                                                              completion_tokens=1_000_000)
    except Exception:  # LiteLLM raises a bare Exception for unmapped models
        return None
    return prompt_cost / 1e6, completion_cost / 1e6


def check_model(judge: JudgeConfig) -> None:
    """Unknown model strings and missing keys fail before any call, naming what to fix."""
    if is_local(judge.model):
        local_alias(judge.model)
        return
    _, litellm = _libraries()

    try:
        litellm.get_llm_provider(judge.model, api_base=judge.api_base)
    except Exception as exc:
        raise JudgeError(f"judge {judge.name}: LiteLLM does not know the model {judge.model!r} "
                         "(use provider/model, e.g. openai/gpt-4o-mini)") from exc
    if judge.api_key_env and not os.environ.get(judge.api_key_env):
        raise JudgeError(f"judge {judge.name}: the environment variable {judge.api_key_env} (its API key) is not set")
    if not judge.api_key_env and not judge.api_base:
        missing = litellm.validate_environment(model=judge.model).get("missing_keys") or []
        if missing:
            raise JudgeError(f"judge {judge.name}: {judge.model} needs the environment variable {missing[0]} "
                             f"(or set api_key_env in its [[judges]] table)")


@contextmanager
def open_endpoints(judges: list[JudgeConfig]) -> Iterator[dict[str, list[Endpoint]]]:
    """Resolve each judge to its endpoints (model, then fallbacks); start local servers; stop them after."""
    for judge in judges:
        check_model(judge)
    servers: dict[str, LocalServer] = {}
    try:
        resolved = {}
        for judge in judges:
            endpoints = []
            for model in [judge.model, *judge.fallbacks]:
                if is_local(model):
                    alias = local_alias(model)
                    if alias not in servers:
                        servers[alias] = start_local_server(model)
                    call_model, api_base, api_key = f"openai/{alias}", servers[alias].api_base, "local-no-key"
                else:
                    call_model, api_base = model, judge.api_base
                    api_key = os.environ.get(judge.api_key_env) if judge.api_key_env else None
                    if api_key is None and api_base:
                        api_key = "no-key"  # OpenAI-compatible servers without auth still expect a key field
                price = price_per_token(judge, call_model)
                schema = judge.schema_in_response_format
                endpoints.append(Endpoint(call_model, api_base, api_key,
                                          is_local(model) if schema is None else schema,
                                          *(price or (float("nan"), float("nan"))),
                                          local=local_alias(model) if is_local(model) else None))
            resolved[judge.name] = endpoints
        yield resolved
    finally:
        for server in servers.values():
            server.stop()


class RateLimiter:
    """At most `rpm` call starts per minute, evenly spaced."""

    def __init__(self, rpm: float | None):
        self.interval = 60.0 / rpm if rpm else 0.0
        self.next_start = 0.0
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        await asyncio.sleep(start - now)


@dataclass
class Budget:
    """Stops new calls before the spend (settled + reserved for calls in flight) would pass the cap."""

    cap: float | None
    spent: float = 0.0
    reserved: float = 0.0
    exhausted: bool = False

    def reserve(self, estimate: float) -> bool:
        if self.cap is not None and self.spent + self.reserved + estimate > self.cap:
            self.exhausted = True
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: float, actual: float | None) -> None:
        self.reserved -= estimate
        self.spent += actual if actual is not None else estimate


@dataclass
class JudgeTally:
    called: int = 0
    ok: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    errors: Counter = field(default_factory=Counter)  # failure reason (as logged) → calls

    def add(self, record: JudgmentRecord) -> None:
        self.called += 1
        self.ok += record.score is not None
        self.failed += record.score is None
        if record.score is None:
            self.errors[record.error or "no reason recorded"] += 1
        self.tokens_in += record.tokens_in or 0
        self.tokens_out += record.tokens_out or 0
        self.cost_usd += record.cost_usd or 0.0


@dataclass
class RunSummary:
    tallies: dict[str, JudgeTally]
    stopped_by_budget: bool
    seconds: float
    cancelled: bool = False

    @property
    def called(self) -> int:
        return sum(t.called for t in self.tallies.values())

    @property
    def ok(self) -> int:
        return sum(t.ok for t in self.tallies.values())

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.tallies.values())

    @property
    def cost_usd(self) -> float:
        return sum(t.cost_usd for t in self.tallies.values())

    @property
    def every_call_failed(self) -> bool:
        """Calls were made and not one returned a score: the run measured nothing."""
        return self.called > 0 and not any(t.ok for t in self.tallies.values())

    def commonest_error(self) -> str | None:
        errors = sum((t.errors for t in self.tallies.values()), Counter())
        return errors.most_common(1)[0][0] if errors else None


def call_estimate(item: WorkItem, judge: JudgeConfig, endpoint: Endpoint) -> float:
    return item.estimated_tokens_in() * endpoint.price_in + judge.max_tokens * endpoint.price_out


async def run_panel(plans: list[JudgePlan], endpoints: dict[str, list[Endpoint]], log: JudgmentLog,
                    settings: JudgeSettings, max_cost: float | None = None,
                    on_record: Callable[[JudgmentRecord], None] | None = None, *, run_id: str | None = None,
                    stop: Callable[[], bool] | None = None) -> RunSummary:
    """Judge every planned item; each record is appended to the log as it arrives.

    `stop` is asked before each new call: once it answers true no new call starts (calls in flight
    finish and are logged), so a cancelled run loses nothing it already paid for.
    """
    if max_cost is not None:
        unpriced = [p.judge.name for p in plans if p.items and not endpoints[p.judge.name][0].priced]
        if unpriced:
            raise JudgeError(f"--max-cost needs prices for judge {unpriced[0]}: LiteLLM does not list its model; "
                             "set input_cost_per_million and output_cost_per_million in its [[judges]] table")
    budget = Budget(max_cost)
    tallies = {p.judge.name: JudgeTally() for p in plans}
    started = time.perf_counter()

    async def work(plan: JudgePlan, queue: asyncio.Queue, limiter: RateLimiter) -> None:
        judge, chain = plan.judge, endpoints[plan.judge.name]
        tally = tallies[judge.name]
        while not queue.empty() and not budget.exhausted and not (stop and stop()):
            item = queue.get_nowait()
            estimate = call_estimate(item, judge, chain[0]) if max_cost is not None else 0.0
            if not budget.reserve(estimate):
                return
            record = await judge_once(judge, chain, item, settings.validation_retries, limiter)
            record.run_id = run_id
            budget.settle(estimate, record.cost_usd)
            log.append([record])
            tally.add(record)
            if on_record:
                on_record(record)

    async def in_turn(jobs: list[tuple[JudgePlan, asyncio.Queue, RateLimiter]]) -> None:
        for job in jobs:
            await work(*job)

    tasks: list = []
    local: dict[str, list] = {}
    for plan in plans:
        queue: asyncio.Queue = asyncio.Queue()
        primary = endpoints[plan.judge.name][0]
        # llama.cpp answers one request at a time and reuses the evaluated prompt only while consecutive
        # requests share it: a local server's calls go one after another, grouped by rubric.
        items = sorted(plan.items, key=lambda item: item.prompt_version) if primary.local else plan.items
        for item in items:
            queue.put_nowait(item)
        limiter = RateLimiter(plan.judge.rpm)
        if primary.local:
            local.setdefault(primary.api_base, []).append((plan, queue, limiter))
        else:
            tasks += [work(plan, queue, limiter) for _ in range(min(plan.judge.concurrency, len(plan.items)))]
    tasks += [in_turn(jobs) for jobs in local.values()]
    running = [asyncio.ensure_future(task) for task in tasks]
    try:
        await asyncio.gather(*running)
    except RunCannotContinue as exc:
        for task in running:  # every other call would fail the same way: end them now, not at loop shutdown
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise JudgeError(str(exc)) from None
    return RunSummary(tallies, budget.exhausted, time.perf_counter() - started, bool(stop and stop()))


@dataclass
class DryRunLine:
    judge: str
    model: str
    calls: int
    cached: int
    gave_up: int
    tokens_in: int  # counted on the messages as sent (instructor's additions included) with the model's tokenizer
    tokens_out: int  # expected: this judge's mean from the log, else EXPECTED_TOKENS_OUT a call
    tokens_out_max: int
    cost_usd: float | None  # expected; None: nobody knows the price
    cost_usd_max: float | None
    seconds: float | None  # wall time: calls × latency / concurrency (local servers: one call at a time), rpm-bound
    latency_from: str  # where the latency came from: "log (median of N calls)", "configured", or "unknown"
    server: str | None = None  # judges on one local server take turns: their times add up
    batch: bool = False  # a batch judge: priced at batch prices, done within the provider's window
    batches: int = 0  # batches its calls would make
    in_batch: int = 0  # calls already sent in batches not yet collected


EXPECTED_TOKENS_OUT = 40  # a one-sentence rationale and the score, until the log has measured the judge
MEASURED_MIN = 3  # calls of a judge in the log before its own figures replace the defaults
EXACT_ITEMS = 400  # items tokenized one by one; beyond that, a seeded sample gives tokens per character


def dry_run(plans: list[JudgePlan], history: pd.DataFrame | None = None) -> list[DryRunLine]:
    """What a run would do, without starting a server or calling anything: calls, tokens (counted with
    the model's own tokenizer where it is local), cost, and wall time from the latency the log measured
    for the judge (else its configured `latency`)."""
    lines = []
    for plan in plans:
        judge = plan.judge
        model = f"openai/{local_alias(judge.model)}" if is_local(judge.model) else judge.model
        price = batch_price_per_token(judge) if judge.batch else price_per_token(judge, model)
        tokens_in = count_tokens(judge, plan.items)
        past = _history_of(judge, history)
        ok = past[past["score"].notna()] if past is not None else None
        per_call_out = (float(ok["tokens_out"].dropna().mean()) if ok is not None and ok["tokens_out"].notna().sum()
                        >= MEASURED_MIN else EXPECTED_TOKENS_OUT)
        tokens_out = round(per_call_out * len(plan.items))
        tokens_out_max = judge.max_tokens * len(plan.items)
        cost = None if price is None else tokens_in * price[0] + tokens_out * price[1]
        cost_max = None if price is None else tokens_in * price[0] + tokens_out_max * price[1]
        latency, source = None, "unknown"
        if past is not None and past["latency_ms"].notna().sum() >= MEASURED_MIN:
            latency = float(past["latency_ms"].median()) / 1000
            source = f"log (median of {int(past['latency_ms'].notna().sum())} calls)"
        elif judge.latency is not None:
            latency, source = judge.latency, "study.toml (its latency key)"
        seconds = None
        if judge.batch:
            latency, source = None, f"provider's batch window ({COMPLETION_WINDOW} at most)"
        if latency is not None:
            parallel = 1 if is_local(judge.model) else judge.concurrency
            seconds = len(plan.items) * latency / parallel
            if judge.rpm:
                seconds = max(seconds, len(plan.items) * 60.0 / judge.rpm)
        lines.append(DryRunLine(judge.name, judge.model, len(plan.items), plan.cached, plan.gave_up, tokens_in,
                                tokens_out, tokens_out_max, cost, cost_max, seconds, source,
                                local_alias(judge.model) if is_local(judge.model) else None,
                                judge.batch, batch_count(judge, plan.items) if judge.batch else 0, plan.in_batch))
    return lines


def panel_seconds(lines: list[DryRunLine]) -> float | None:
    """Wall time of the whole run: judges run side by side, except those sharing a local server.
    Batch judges are left out: a run only submits their batches."""
    lines = [line for line in lines if not line.batch]
    if any(line.seconds is None for line in lines if line.calls):
        return None
    shared: dict[str, float] = {}
    alone = []
    for line in lines:
        if line.server:
            shared[line.server] = shared.get(line.server, 0.0) + (line.seconds or 0.0)
        else:
            alone.append(line.seconds or 0.0)
    return max([*shared.values(), *alone], default=0.0)


def _history_of(judge: JudgeConfig, history: pd.DataFrame | None) -> pd.DataFrame | None:
    if history is None or history.empty:
        return None
    return history[(history["judge"] == judge.name) & (history["model"] == judge.model)]


def count_tokens(judge: JudgeConfig, items: list[WorkItem]) -> int:
    """Input tokens of the planned calls as they will be sent: instructor's schema and instruction
    added, the local model's chat template and vocabulary (else LiteLLM's tokenizer for the model)."""
    if not items:
        return 0
    from ._call import sent_messages

    if is_local(judge.model):
        tokenizer = local_tokenizer(local_alias(judge.model))
        count = tokenizer.count
    else:
        _, litellm = _libraries()

        def count(messages: list[dict]) -> int:
            return int(litellm.token_counter(model=judge.model, messages=messages))

    chosen = items if len(items) <= EXACT_ITEMS else random.Random(0).sample(items, EXACT_ITEMS)
    counted = [count(sent_messages(item.messages)) for item in chosen]
    if len(chosen) == len(items):
        return sum(counted)
    per_char = sum(counted) / sum(_chars(item) for item in chosen)
    return round(per_char * sum(_chars(item) for item in items))


def _chars(item: WorkItem) -> int:
    return sum(len(m["content"]) for m in item.messages)
