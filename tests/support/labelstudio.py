"""A real Label Studio server for the tests — its own virtualenv, a fresh data dir, a free port, the
settings every server the toolkit starts runs with — and a person in a web browser talking to one."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "tools" / "labelstudio"  # empathy_settings.py: what every server the toolkit starts runs with
BOOT_SECONDS = 300  # the first boot runs migrations: about a minute here
DATABASE = "label_studio.sqlite3"


@dataclass
class LabelStudioServer:
    url: str
    token: str
    email: str
    password: str
    process: subprocess.Popen
    log: Path
    template: Path | None = None  # the database as first booted (migrated, the admin only): `start(template=…)` boots from it in seconds

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def executable() -> Path:
    found = os.environ.get("LABEL_STUDIO_BIN") or str(REPO / ".venv-labelstudio" / "bin" / "label-studio")
    path = Path(found)
    if not path.exists():
        raise RuntimeError(f"Label Studio is not installed at {path}: run `make labelstudio-setup`")
    return path


def server_env(data_dir: Path) -> dict[str, str]:
    """The environment `tools/labelstudio.sh` starts a server in: its data dir and the toolkit's settings."""
    return {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "empathy_settings",
            "PYTHONPATH": str(SETTINGS)}


_SETTINGS_PROBE = """
import json, os, sys
import label_studio
sys.path.insert(0, os.path.dirname(label_studio.__file__))  # as `label-studio start` does
from django.conf import settings
import sentry_sdk
values = {name: getattr(settings, name) for name in sys.argv[1:]}
print(json.dumps({**values, "sentry_initialized": sentry_sdk.is_initialized()}))
"""


def effective_settings(data_dir: Path, names: list[str]) -> dict:
    """Label Studio's settings as a server started in `server_env` reads them (and whether its Sentry
    client came up), from a Python of Label Studio's own virtualenv."""
    answer = subprocess.run([str(executable().parent / "python"), "-c", _SETTINGS_PROBE, *names],
                            env=server_env(data_dir), capture_output=True, text=True, timeout=120)
    if answer.returncode != 0:
        raise RuntimeError(f"reading Label Studio's settings failed: {answer.stderr[-2000:]}")
    return json.loads(answer.stdout.strip().splitlines()[-1])


def start(data_dir: Path, template: Path | None = None, extra_env: dict[str, str] | None = None,
          token: str | None = None, password: str | None = None) -> LabelStudioServer:
    """A server on a free port. With `template` (another server's first-boot database) it skips the
    minute of migrations; its admin and token are then the template's (pass them as token/password)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token, password = token or secrets.token_hex(20), password or secrets.token_urlsafe(12)
    email = "admin@tests.local"
    env = {**server_env(data_dir), "LABEL_STUDIO_USERNAME": email, "LABEL_STUDIO_PASSWORD": password,
           "LABEL_STUDIO_USER_TOKEN": token, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", **(extra_env or {})}
    log = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    if template is not None:
        _copy_database(template, data_dir / DATABASE)
    with log.open("w") as handle:
        process = subprocess.Popen([str(executable()), "start", "--internal-host", "127.0.0.1", "--port", str(port),
                                    "--no-browser", "--data-dir", str(data_dir)], env=env, stdout=handle,
                                   stderr=subprocess.STDOUT)
    server = LabelStudioServer(f"http://127.0.0.1:{port}", token, email, password, process, log)
    deadline = time.monotonic() + BOOT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Label Studio exited at start: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as answer:
                if answer.status == 200:
                    if template is None:  # nothing has touched the database yet but the first boot
                        server.template = data_dir / f"template-{DATABASE}"
                        _copy_database(data_dir / DATABASE, server.template)
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    server.stop()
    raise RuntimeError(f"Label Studio did not answer within {BOOT_SECONDS} s: {log.read_text()[-2000:]}")


def _copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while the source server runs."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


class Browser:
    """One person in a web browser without JavaScript: their own login session (cookies and CSRF
    token), no API token. Like a browser, it keeps one cookie jar per host, whatever the port."""

    def __init__(self, url: str, cookies: httpx.Cookies | None = None):
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, follow_redirects=False, timeout=60,
                                 cookies=cookies if cookies is not None else httpx.Cookies())
        self.csrf_cookie = "csrftoken"  # Django's default; each toolkit server names its own

    def _form(self, path: str, fields: dict) -> httpx.Response:
        page = self.http.get(path)  # sets this server's CSRF cookie
        self.csrf_cookie = next((name for name in page.cookies if "csrftoken" in name), self.csrf_cookie)
        fields = {**fields, "csrfmiddlewaretoken": self.http.cookies.get(self.csrf_cookie) or ""}
        return self.http.post(path, data=fields, headers={"Referer": self.url + path})

    def sign_up(self, invite: str, email: str, password: str) -> httpx.Response:
        return self._form(invite[len(self.url):] if invite.startswith(self.url) else invite,
                          {"email": email, "password": password})

    def log_in(self, email: str, password: str) -> bool:
        answer = self._form("/user/login/", {"email": email, "password": password})
        return answer.status_code == 302 and self.get("/api/current-user/whoami").status_code == 200

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path, headers={"Accept": "application/json"})

    def send(self, method: str, path: str, body: dict) -> httpx.Response:
        return self.http.request(method, path, json=body, headers={
            "X-CSRFToken": self.http.cookies.get(self.csrf_cookie) or "", "Referer": self.url + "/"})

    def annotate(self, task_id: int, construct: str, score: int, cancelled: bool = False) -> int:
        result = [] if cancelled else [{"from_name": construct, "to_name": "dialogue", "type": "choices",
                                        "value": {"choices": [str(score)]}}]
        answer = self.send("POST", f"/api/tasks/{task_id}/annotations/", {"result": result, "was_cancelled": cancelled})
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    def readable_annotations(self) -> list[dict]:
        """Every annotation this login can read on this server: each project, each task."""
        found = []
        projects = self.get("/api/projects/?page_size=1000")
        if projects.status_code != 200:
            return found
        emails = {u["id"]: u["email"] for u in self.get("/api/users/").json()}
        for project in projects.json()["results"]:
            tasks = self.get(f"/api/tasks/?project={project['id']}&fields=all&page_size=1000").json()["tasks"]
            for task in tasks:
                for item in task.get("annotations") or []:
                    found.append({"project": project["title"], "by": emails.get(item["completed_by"]),
                                  "result": item["result"]})
        return found


@dataclass
class Person:
    email: str
    password: str
    url: str  # their own server
    browser: Browser  # logged in there
