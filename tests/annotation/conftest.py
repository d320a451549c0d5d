"""Two annotators' own Label Studio servers for the whole session, each annotator signed up through
the link `empathy annotate add-annotator` printed (the module tests and the browser tests share them)."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from typer.testing import CliRunner

from empathy_study.study.cli import app
from tests.support import labelstudio as support


@pytest.fixture(scope="session")
def seats(label_studio, tmp_path_factory):
    """Two annotators' own servers, booted from the main server's first-boot database (same admin
    token; a few seconds instead of a minute of migrations), sign-up only through the link."""
    def boot(i: int):
        return support.start(tmp_path_factory.mktemp(f"seat{i}"), template=label_studio.template,
                             token=label_studio.token, password=label_studio.password,
                             extra_env={"LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true"})

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        servers = list(pool.map(boot, (1, 2)))
    print(f"\ntwo annotator servers up in {time.perf_counter() - started:.0f} s")
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def people(seats, label_studio, tmp_path_factory):
    """Each annotator added with the CLI and signed up with exactly the link it printed."""
    tag = uuid.uuid4().hex[:6]
    root = tmp_path_factory.mktemp("onboarding") / "study"
    (root).mkdir()
    (root / "study.toml").write_text(f'[study]\nname = "onboard-{tag}"\n[annotation]\nurl = "{label_studio.url}"\n')
    found = []
    for i, seat in enumerate(seats, 1):
        email, password = f"rater{i}-{tag}@tests.local", secrets.token_urlsafe(12)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LABEL_STUDIO_URL", label_studio.url)
            env.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
            added = CliRunner().invoke(app, ["annotate", "add-annotator", str(root), email, "--url", seat.url])
        assert added.exit_code == 0, added.output
        invite = re.search(r"(http://\S+/user/signup/\?token=\S+)", added.output)[1]
        browser = support.Browser(seat.url)
        signed = browser.sign_up(invite, email, password)
        assert signed.status_code == 302, signed.text[:500]
        fresh = support.Browser(seat.url)
        assert fresh.log_in(email, password)  # their own login works at once
        found.append(support.Person(email, password, seat.url, fresh))
    return found
