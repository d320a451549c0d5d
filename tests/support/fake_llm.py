"""A small OpenAI-compatible endpoint that injects faults and fixes latency.

It stands in for a provider only where a test needs a fault (429 bursts, 500s, timeouts, broken
JSON, out-of-range scores) or a fixed latency (the throughput benchmark) — never for the judge a
test claims to check. Faults are driven by markers in the request text, so they are deterministic
under any concurrency: `FAULT:429x2` answers 429 to the first two calls carrying that text, then
succeeds; likewise `500xN`, `timeoutxN` (sleeps past the client's timeout), `brokenxN` (not
JSON); `FAULT:score9` always answers a score of 9; under a binary rubric (levels 0/1) the answer
is 0 or 1, `FAULT:yes` / `FAULT:no` choose which; the model name `always500` always fails, the
model `nosuchmodel` answers 404, and an API key ending in `REJECTED` answers 401.
GET /stats returns call counts per request text.

Run: python -m tests.support.fake_llm --port 0 [--latency 0.1]   (prints "PORT <n>" when ready)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import time
from collections import Counter

from aiohttp import web

_FAULT = re.compile(r"FAULT:(?P<kind>429|500|timeout|broken|score9)(?:x(?P<times>\d+))?")


class FakeLLM:
    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.calls: Counter = Counter()  # request text digest → calls received
        self.answered: Counter = Counter()
        self.started = 0
        self.completed = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.complete)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stats", self.stats)
        return app

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"calls": dict(self.calls), "answered": dict(self.answered),
                                  "started": self.started, "completed": self.completed})

    async def complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"
                     and "Rate it." in m["content"]), body["messages"][-1]["content"])
        key = hashlib.sha1(user.encode()).hexdigest()[:12]
        self.calls[key] += 1
        self.started += 1
        call = self.calls[key]
        fault = _FAULT.search(user)
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            if body.get("model") == "always500":  # a model that never works: exercises fallbacks
                return web.json_response({"error": {"message": "model down", "type": "server_error"}}, status=500)
            if body.get("model") == "nosuchmodel":
                return web.json_response({"error": {"message": "model not found", "type": "invalid_request_error"}},
                                         status=404)
            if request.headers.get("Authorization", "").endswith("REJECTED"):
                return web.json_response({"error": {"message": "invalid api key", "type": "invalid_request_error"}},
                                         status=401)
            if fault:
                kind, times = fault["kind"], int(fault["times"] or 10**9)
                if kind == "score9":
                    return self._answer(body, '{"rationale": "off the scale", "score": 9}', key)
                if call <= times:
                    if kind == "429":
                        return web.json_response({"error": {"message": "rate limited", "type": "rate_limit"}},
                                                 status=429, headers={"retry-after": "0"})
                    if kind == "500":
                        return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
                    if kind == "timeout":
                        await asyncio.sleep(30)
                    if kind == "broken":
                        return self._answer(body, "I think it is a four, more or less", key)
            score = 1 + int(hashlib.sha1(user.encode()).hexdigest(), 16) % 7
            system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
            if '"score" (0-1)' in system:  # a binary rubric: answer one of its two levels
                score = 1 if "FAULT:yes" in user else 0 if "FAULT:no" in user else score % 2
            return self._answer(body, json.dumps({"rationale": "fake judgment", "score": score}), key)
        finally:
            self.completed += 1

    def _answer(self, body: dict, content: str, key: str) -> web.Response:
        self.answered[key] += 1
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        if body.get("logprobs"):
            tokens = [{"token": t, "logprob": -0.1, "top_logprobs": []} for t in ('{"', 'score', '":', ' ')]
            digit = {"token": "4", "logprob": -0.5, "top_logprobs": [
                {"token": "4", "logprob": -0.5}, {"token": "5", "logprob": -1.2}, {"token": "x", "logprob": -3.0}]}
            choice["logprobs"] = {"content": tokens + [digit]}
        return web.json_response({
            "id": "fake-1", "object": "chat.completion", "created": int(time.time()), "model": "fake-model-v1",
            "choices": [choice], "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        })


async def serve(port: int, latency: float) -> None:
    runner = web.AppRunner(FakeLLM(latency).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"PORT {site._server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency))
