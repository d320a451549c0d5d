"""The Label Studio servers the toolkit starts (`tools/labelstudio.sh`, and the tests' own through
tests/support/labelstudio.py, both with tools/labelstudio/empathy_settings.py): nothing they serve
or do reports to anyone outside the machine, they listen on the address they are given only, and
the script says the one way to start them (`make labelstudio-annotator NAME=…`)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support import labelstudio as support

# What would reach an outside error tracker or analytics service, in a page or in a server's log.
OUTSIDE_MARKERS = ("sentry.io", "sentry-cdn", "googletagmanager", "google-analytics", "tele.labelstud.io", "pypi.org")


class _Fetches(HTMLParser):
    """Every URL a page makes the browser fetch by itself: scripts, style sheets, images, frames."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe") and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])


def outside_fetches(html: str, server: str) -> list[str]:
    parser = _Fetches()
    parser.feed(html)
    own = urlsplit(server).netloc
    return [u for u in parser.urls if urlsplit(u).netloc not in ("", own)]


def test_no_page_or_setting_of_an_annotators_server_reports_anywhere(people, seats, tmp_path):
    first, seat = people[0], seats[0]
    pages = {"login": httpx.get(f"{first.url}/user/login/").text, "sign-up": httpx.get(f"{first.url}/user/signup/").text,
             "projects (the app)": first.browser.http.get("/projects/").text}
    assert "window.APP_SETTINGS = Object.assign" in pages["projects (the app)"]  # the logged-in app, not a redirect
    for name, html in pages.items():
        assert outside_fetches(html, first.url) == [], name
        assert not [m for m in OUTSIDE_MARKERS if m in html], name
    app = pages["projects (the app)"]
    assert re.search(r"sentry_dsn:\s*null", app) and re.search(r"collect_analytics:\s*false", app)
    assert re.search(r"collect_analytics\s*=\s*false", pages["login"])

    settings = support.effective_settings(tmp_path / "probe", ["SENTRY_DSN", "FRONTEND_SENTRY_DSN",
                                                               "COLLECT_ANALYTICS", "LATEST_VERSION_CHECK"])
    assert settings == {"SENTRY_DSN": None, "FRONTEND_SENTRY_DSN": None, "COLLECT_ANALYTICS": False,
                        "LATEST_VERSION_CHECK": False, "sentry_initialized": False}

    first.browser.get("/api/projects/")  # a few more requests, each of which Label Studio would report
    log = seat.log.read_text()
    assert not [m for m in OUTSIDE_MARKERS if m in log] and "Starting new HTTP" not in log, log[-3000:]


def test_a_server_listens_on_the_address_it_was_given_only(label_studio):
    """127.0.0.2 is this machine as well: a server listening on every interface answers there."""
    port = int(urlsplit(label_studio.url).port)
    with socket.socket() as probe:  # the route to 127.0.0.2 works on this machine
        probe.bind(("0.0.0.0", 0))
        probe.listen()
        socket.create_connection(("127.0.0.2", probe.getsockname()[1]), timeout=5).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", port), timeout=5).close()


def test_the_script_starts_an_annotators_server_as_the_toolkit_needs_and_says_make(label_studio, tmp_path):
    """`tools/labelstudio.sh annotator NAME` (what `make labelstudio-annotator NAME=…` runs), booted
    from a first-boot database so that it takes seconds: its settings, its address, what it prints."""
    data = tmp_path / "ls"
    seat = data / "annotators" / "probe"
    seat.mkdir(parents=True)
    support._copy_database(label_studio.template, seat / support.DATABASE)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "LS_DATA": str(data), "LS_PORT": str(port), "LS_VENV": str(support.executable().parents[1]),
           "LABEL_STUDIO_USERNAME": label_studio.email, "LABEL_STUDIO_PASSWORD": label_studio.password,
           "LABEL_STUDIO_USER_TOKEN": label_studio.token}
    script = str(support.REPO / "tools" / "labelstudio.sh")
    try:
        started = subprocess.run([script, "annotator", "probe"], env=env, capture_output=True, text=True, timeout=400)
        assert started.returncode == 0, started.stdout + started.stderr
        url = f"http://127.0.0.1:{port}"
        assert url in started.stdout and f"empathy annotate add-annotator DIR THEIR-EMAIL --url {url}" in started.stdout
        again = subprocess.run([script, "start"], env={**env, "LS_DATA": str(seat)}, capture_output=True, text=True,
                               timeout=60)  # the main-server command on a data dir whose server runs: its next steps
        assert "already running" in again.stdout and "make labelstudio-annotator NAME=" in again.stdout, again.stdout
        for output in (started.stdout, again.stdout):
            assert "tools/labelstudio.sh" not in output  # one way to start a server, said as the README says it

        login = httpx.get(f"{url}/user/login/").text
        assert outside_fetches(login, url) == [] and not [m for m in OUTSIDE_MARKERS if m in login]
        cookies = httpx.get(f"{url}/user/login/").cookies
        assert cookies and all(name.startswith("ls_") for name in cookies)  # this server's own cookie names
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=5).close()
        log = (seat / "server.log").read_text()
        assert "empathy_settings" in log and "pypi.org" not in log
    finally:
        stopped = subprocess.run([script, "stop"], env=env, capture_output=True, text=True, timeout=60)
    assert "stopped 1 Label Studio server(s)" in stopped.stdout, stopped.stdout + stopped.stderr


def test_each_server_names_its_cookies_for_itself(seats, label_studio):
    names = [set(httpx.get(f"{s.url}/user/login/").cookies) for s in (*seats, label_studio)]
    assert all(n and all(name.startswith("ls_") for name in n) for n in names)
    assert not set.intersection(*names)  # a browser holding all three keeps all three logins

