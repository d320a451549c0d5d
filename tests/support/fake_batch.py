"""A small OpenAI-compatible files + batches endpoint, for testing batch judging without a provider.

POST /v1/files (multipart upload), GET /v1/files/{id}, GET /v1/files/{id}/content,
POST /v1/batches, GET /v1/batches (newest first, `limit`/`after`), GET /v1/batches/{id}.
A batch is `validating` when created, `in_progress` on the first retrieves, and ends on retrieve
number `--polls` + 1: then its output and error files exist. Requests are answered as the live
fake does (a score derived from the request text; binary rubrics get 0/1); markers in the request
text inject faults: `FAULT:400` puts the request in the error file with HTTP 400, `FAULT:broken`
answers text that is not JSON, `FAULT:score9` answers a score off the scale, and `FAULT:expire`
makes the whole batch end `expired`, the requests carrying the marker left unanswered.
GET /stats returns what was uploaded and created.

Run: python -m tests.support.fake_batch --port 0 [--polls 1]   (prints "PORT <n>" when ready)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time

from aiohttp import web


class FakeBatches:
    def __init__(self, polls: int = 1):
        self.polls = polls
        self.files: dict[str, dict] = {}  # id → file object, with its bytes under "_content"
        self.batches: dict[str, dict] = {}  # id → batch object, with retrieves under "_retrieved"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 ** 2)
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{id}", self.file)
        app.router.add_get("/v1/files/{id}/content", self.content)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches", self.list)
        app.router.add_get("/v1/batches/{id}", self.retrieve)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/forget/{id}", self.forget)
        return app

    def _file(self, content: bytes, purpose: str, name: str) -> dict:
        file_id = f"file-{len(self.files) + 1:04d}"
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                               "filename": name, "purpose": purpose, "status": "processed", "_content": content}
        return self.files[file_id]

    @staticmethod
    def _public(obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form["file"]
        return web.json_response(self._public(self._file(upload.file.read(), str(form.get("purpose")), upload.filename)))

    async def file(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["id"])
        if found is None:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.json_response(self._public(found))

    async def content(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["id"])
        if found is None:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.Response(body=found["_content"], content_type="application/octet-stream")

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("input_file_id") not in self.files:
            return web.json_response({"error": {"message": "no such input file"}}, status=400)
        batch_id = f"batch_{len(self.batches) + 1:04d}"
        lines = [json.loads(line) for line in self.files[body["input_file_id"]]["_content"].decode().splitlines() if line]
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": int(time.time()), "in_progress_at": None, "expires_at": int(time.time()) + 86400,
            "completed_at": None, "expired_at": None, "failed_at": None, "cancelled_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"), "_retrieved": 0, "_lines": lines,
        }
        return web.json_response(self._public(self.batches[batch_id]))

    async def list(self, request: web.Request) -> web.Response:
        newest = sorted(self.batches.values(), key=lambda b: b["id"], reverse=True)
        after = request.query.get("after")
        if after:
            newest = [b for b in newest if b["id"] < after]
        limit = int(request.query.get("limit", 20))
        page = newest[:limit]
        return web.json_response({"object": "list", "data": [self._public(b) for b in page],
                                  "first_id": page[0]["id"] if page else None,
                                  "last_id": page[-1]["id"] if page else None, "has_more": len(newest) > limit})

    async def retrieve(self, request: web.Request) -> web.Response:
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        if batch["status"] in ("validating", "in_progress"):
            batch["_retrieved"] += 1
            if batch["_retrieved"] <= self.polls:
                batch["status"] = "in_progress"
                batch["in_progress_at"] = batch["in_progress_at"] or int(time.time())
            else:
                self._finish(batch)
        return web.json_response(self._public(batch))

    def _finish(self, batch: dict) -> None:
        expire = any("FAULT:expire" in json.dumps(line) for line in batch["_lines"])
        outputs, errors = [], []
        for line in batch["_lines"]:
            text = json.dumps(line["body"]["messages"])
            if "FAULT:expire" in text:
                continue
            if "FAULT:400" in text:
                errors.append({"id": f"req-{len(errors)}", "custom_id": line["custom_id"], "error": None,
                               "response": {"status_code": 400, "request_id": "r",
                                            "body": {"error": {"message": "bad request (injected)",
                                                               "type": "invalid_request_error"}}}})
                continue
            outputs.append({"id": f"req-{len(outputs)}", "custom_id": line["custom_id"], "error": None,
                            "response": {"status_code": 200, "request_id": "r", "body": self._answer(line["body"])}})
        now = int(time.time())
        if outputs:
            batch["output_file_id"] = self._file("".join(json.dumps(o) + "\n" for o in outputs).encode(),
                                                 "batch_output", "output.jsonl")["id"]
        if errors:
            batch["error_file_id"] = self._file("".join(json.dumps(e) + "\n" for e in errors).encode(),
                                                "batch_output", "errors.jsonl")["id"]
        batch["request_counts"] = {"total": len(batch["_lines"]), "completed": len(outputs), "failed": len(errors)}
        batch["status"] = "expired" if expire else "completed"
        batch["expired_at" if expire else "completed_at"] = now

    @staticmethod
    def _answer(body: dict) -> dict:
        user = body["messages"][-1]["content"]
        system = " ".join(m["content"] for m in body["messages"] if m["role"] == "system")
        score = 1 + int(hashlib.sha1(user.encode()).hexdigest(), 16) % 7
        if '"score" (0-1)' in system:  # a binary rubric, as the live fake tells it
            score = score % 2
        content = json.dumps({"rationale": "fake batch judgment.", "score": score})
        if "FAULT:broken" in user:
            content = "I think it is a four, more or less"
        if "FAULT:score9" in user:
            content = json.dumps({"rationale": "off the scale.", "score": 9})
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": "fake-batch-model-v1",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}

    async def forget(self, request: web.Request) -> web.Response:
        """Drop a batch, as a provider that deleted it or a restarted server would: retrieving it is a 404."""
        self.batches.pop(request.match_info["id"])
        return web.json_response({"forgotten": request.match_info["id"]})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({
            "files": [{"id": f["id"], "purpose": f["purpose"]} for f in self.files.values()],
            "batches": [{"id": b["id"], "status": b["status"], "input_file_id": b["input_file_id"],
                         "metadata": b["metadata"], "custom_ids": [line["custom_id"] for line in b["_lines"]]}
                        for b in self.batches.values()],
        })


async def serve(port: int, polls: int) -> None:
    runner = web.AppRunner(FakeBatches(polls).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"PORT {site._server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--polls", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.polls))
