"""An annotator in a real browser — Debian's headless Chromium, driven by Playwright — on their own
Label Studio server: what the labelling page shows (the dialogue as written, no timestamps, nothing
to select, the rubric's examples a click away; a screenshot of each construct's view is kept in
build/test-artifacts/), that no page they open fetches anything from outside the machine, and that a
fresh login submits on the first try while the same browser is logged in to another of the study's
servers on this host. Without Chromium these tests fail: `make test` installs it."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from empathy_study import annotation, judge
from empathy_study.annotation import labelstudio
from tests.support.labelstudio import REPO

CHROMIUM = Path(os.environ.get("EMPATHY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(os.environ.get("EMPATHY_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))
LOAD_MS = 90_000  # the labelling app is a few MB of JavaScript: slow on two busy cores

CODE = "for i in range(3):\n    print(i)"
ROW = {"pair_id": "p-view",
       "prompt": f"My script prints nothing:\n\n```python\n{CODE}\n```\n\nWhat I tried:\n- restarting\n- a new venv",
       "response": "That sounds frustrating, especially after trying so much.\n\nTwo things to check:\n1. the file you run\n"
                   "2. the indentation",
       "reply": "Thank you, you always know what to do. I don't know what I would do without you."}


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for this module; each test opens a fresh context (no cookies, no storage)."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"no Chromium at {CHROMIUM}: `make test` installs Debian's (apt-get install chromium); "
                           "these tests do not skip")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def blind_task(url: str, token: str, construct: str) -> tuple[int, int]:
    """A blind project of its own with the pair ROW, made as `empathy annotate push` makes it."""
    rubric = judge.load_rubric(construct)
    projects = labelstudio.LabelStudioProjects(annotation.connect(url, token), url, f"view-{uuid.uuid4().hex[:8]}")
    result = projects.push(rubric, "blind", [ROW], {ROW["pair_id"]: "audit"})
    task = projects.tasks(result.project_id)[0]
    return result.project_id, task.id


def log_in(page, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/user/login/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u, timeout=LOAD_MS)


def open_labelling(page, url: str, project: int) -> None:
    page.goto(f"{url}/projects/{project}/data?labeling=1")
    page.wait_for_selector(".lsf-choices", timeout=LOAD_MS)


@pytest.mark.parametrize("construct", ["empathy", "attachment"])
def test_the_annotators_view_reads_as_the_dialogue_was_written(chromium, people, label_studio, construct):
    person = people[0]
    project, _ = blind_task(person.url, label_studio.token, construct)
    rubric = judge.load_rubric(construct)
    context = chromium.new_context(viewport={"width": 1280, "height": 2600})
    requests = []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    try:
        log_in(page, person.url, person.email, person.password)
        open_labelling(page, person.url, project)
        page.get_by_text("Examples of each level").click()
        last = max(rubric.examples, key=lambda e: e.level)
        page.get_by_text(f"Level {last.level}: {rubric.levels[last.level]}").wait_for(timeout=LOAD_MS)
        page.wait_for_timeout(1_000)  # the panel fades in
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / f"annotator-view-{construct}.png"
        page.screenshot(path=str(shot))
        print(f"\nscreenshot of the {construct} view: {shot}")
        view = page.locator(".lsf-main-view__annotation")
        shown = view.inner_text()  # the text as rendered: collapsed white space would show here
        buttons = view.locator("button").count()
    finally:
        context.close()

    assert CODE in shown and "What I tried:\n- restarting\n- a new venv" in shown  # breaks and indentation kept
    assert "My script prints nothing:\n\n```python" in shown
    assert not re.search(r"\d\d:\d\d:\d\d", shown)  # no timestamps
    assert buttons == 0  # no per-message region tools (nor any other button in the task's own area)
    assert rubric.instruction.split()[0] in shown and all(text in shown for text in rubric.levels.values())
    example = sorted(rubric.examples, key=lambda e: e.level)[0]
    assert f"Level {example.level}: {rubric.levels[example.level]}" in shown and example.prompt in shown
    if construct == "attachment":
        assert ROW["reply"] in shown and "That sounds frustrating" not in shown and "hidden on purpose" in shown
    else:
        assert "Two things to check:\n1. the file you run\n2. the indentation" in shown
    own = urlsplit(person.url).netloc
    assert requests and not [u for u in requests if urlsplit(u).netloc != own]  # nothing fetched from outside


def test_a_fresh_login_submits_on_the_first_try_beside_another_servers_login(chromium, people, label_studio):
    """Cookies belong to a host, not a port: logging in to the study's main server in a second tab
    of the same browser used to replace the annotator's login cookie, and their Submit then failed
    with 401 "Authentication credentials were not provided"."""
    person = people[0]
    project, task_id = blind_task(person.url, label_studio.token, "empathy")
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    refused = []
    context.on("response", lambda r: r.status in (401, 403) and refused.append(f"{r.status} {r.url}"))
    try:
        labelling = context.new_page()
        log_in(labelling, person.url, person.email, person.password)
        open_labelling(labelling, person.url, project)
        other = context.new_page()  # the researcher's tab: the main server, same host, another port
        log_in(other, label_studio.url, label_studio.email, label_studio.password)
        other.goto(f"{label_studio.url}/projects/")
        labelling.bring_to_front()
        labelling.locator(".lsf-choice__item", has_text="5 — ").click()
        with labelling.expect_response(lambda r: r.request.method == "POST"
                                       and f"/api/tasks/{task_id}/annotations" in r.url, timeout=LOAD_MS) as sent:
            labelling.click("[data-testid=bottombar-submit-button]")
        status, body = sent.value.status, sent.value.text()
    finally:
        context.close()
    assert status == 201, body
    assert refused == []
    saved = annotation.connect(person.url, label_studio.token).tasks.get(id=task_id).annotations
    me = person.browser.get("/api/current-user/whoami").json()["id"]
    by = [a["completed_by"]["id"] if isinstance(a["completed_by"], dict) else a["completed_by"] for a in saved]
    assert by == [me] and saved[0]["result"][0]["value"]["choices"] == ["5"]
