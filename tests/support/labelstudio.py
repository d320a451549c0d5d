"""A real Label Studio server for the tests: its own virtualenv, a fresh data dir, a free port."""

from __future__ import annotations

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

REPO = Path(__file__).resolve().parents[2]
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


def start(data_dir: Path, template: Path | None = None, extra_env: dict[str, str] | None = None,
          token: str | None = None, password: str | None = None) -> LabelStudioServer:
    """A server on a free port. With `template` (another server's first-boot database) it skips the
    minute of migrations; its admin and token are then the template's (pass them as token/password)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token, password = token or secrets.token_hex(20), password or secrets.token_urlsafe(12)
    email = "admin@tests.local"
    env = {**os.environ, "LABEL_STUDIO_USERNAME": email, "LABEL_STUDIO_PASSWORD": password,
           "LABEL_STUDIO_USER_TOKEN": token, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
           "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir), **(extra_env or {})}
    log = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    if template is not None:
        _copy_database(template, data_dir / DATABASE)
    with log.open("w") as handle:
        process = subprocess.Popen([str(executable()), "start", "--host", "127.0.0.1", "--port", str(port),
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
