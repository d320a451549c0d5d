"""Against real Label Studio servers: the study's main server (one per test session, shared) and
two annotators' own servers (conftest.py) — each annotator signed up through the link
`empathy annotate add-annotator` prints, and working through their own login session as a browser
does. Push, label, pull, agree, export, edits and deletions, review kept apart from gold, skips,
accounts that are not the annotator, a changed rubric, servers that cannot be reached — and the
reason for the layout: the second annotator cannot open the first annotator's labels, while on one
shared server they can. Each test makes its own study (its own projects): any order passes."""

from __future__ import annotations

import itertools
import json
import re
import secrets
import uuid
from xml.etree import ElementTree

import pandas as pd
import pytest
from typer.testing import CliRunner

from empathy_study import annotation, judge
from empathy_study.annotation import labelstudio
from empathy_study.study.cli import app
from empathy_study.study.provenance import read_scored_pairs
from tests.judge.conftest import sample_frame
from tests.judge.test_log import record
from tests.support.labelstudio import Browser, Person

runner = CliRunner()
N_PAIRS = 8
_names = itertools.count()


# ---------------------------------------------------------------------------- pure parts


def test_assignment_is_even_overlapping_where_asked_and_stable_as_pairs_are_added():
    pairs = [f"p{i:04d}" for i in range(4000)]
    people = ["a", "b", "c", "d"]
    who = annotation.assign_annotators(pairs, people, overlap=2, overlap_share=25, seed=7)
    sizes = pd.Series([len(v) for v in who.values()])
    assert set(sizes) == {1, 2} and abs((sizes == 2).mean() - 0.25) < 0.03  # a quarter of the pairs get two
    assert all(len(set(v)) == len(v) for v in who.values())  # never the same person twice on a pair
    load = pd.Series([p for v in who.values() for p in v]).value_counts()
    assert load.max() / load.min() < 1.1  # an even load
    later = annotation.assign_annotators(pairs + [f"q{i}" for i in range(100)], people, 2, 25, 7)
    assert all(later[p] == who[p] for p in pairs)  # pairs added later change nothing already decided
    assert annotation.assign_annotators(pairs[:5], ["a"], 3, 100, 7) == {p: ["a"] for p in pairs[:5]}
    assert annotation.assign_annotators(pairs, people, 2, 25, 8) != who  # the seed matters


def test_the_view_is_made_from_the_rubric_each_text_as_written():
    for construct, context in (("empathy", ["prompt", "response"]), ("attachment", ["prompt", "reply"]),
                               ("attachment", ["prompt", "response", "reply"])):
        rubric = judge.load_rubric(construct, context=context)
        view = ElementTree.fromstring(annotation.label_config(rubric))
        texts = [t.get("value") for t in view.iter("Text") if t.get("value", "").startswith("$")]
        assert texts == [f"$dialogue.{name}" for name in context]  # the texts shown, in the rubric's order
        assert not list(view.iter("Paragraphs"))  # its timestamps and region buttons are gone
        assert all(t.get("selectionEnabled") == "false" for t in view.iter("Text"))
        assert {c.get("toName") for c in view.iter("Choices")} == {"dialogue"}
        assert [c.get("alias") for c in view.iter("Choice")] == [str(level) for level in sorted(rubric.levels)]
        examples = "\n".join(t.get("value") for panel in view.iter("Panel") for t in panel.iter("Text"))
        complete = [e for e in rubric.examples if all(getattr(e, t) is not None for t in context)]
        assert all(e.prompt in examples for e in complete)  # the rubric's examples (as the judge reads them)
        hidden = "hidden on purpose" in annotation.label_config(rubric)
        assert hidden == ("response" not in context)
        row = {"pair_id": "p1", "prompt": "a\n  b", "response": "c", "reply": "d", "rating": 7}
        assert annotation.task_payload(rubric, row, "audit")["dialogue"] == {name: row[name] for name in context}


def test_titles_fit_label_studios_limit_and_keep_the_rubric_version():
    for name in ("s", "a-study-name-of-28-characters"[:28]):
        for construct in ("empathy", "attachment"):
            for mode in ("blind", "review"):
                title = labelstudio.project_title(name, construct, mode, "93b4be30143932dd+prompt-response-reply")
                assert len(title) <= labelstudio.TITLE_MAX and title.endswith(f"{construct} · {mode} · v93b4")
    assert labelstudio.project_title("s", "empathy", "blind", "abcdef").startswith("s · ")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def study(tmp_path, label_studio_env, people, label_studio):
    """A study of N_PAIRS pairs, all in the audit sample, judged by two judges, both annotators added."""
    root = tmp_path / "study"
    root.mkdir()
    prompts = [f"I feel lonely tonight, day {i}" for i in range(N_PAIRS)]
    sample_frame(prompts).to_parquet(root / "sample.parquet")
    (root / "study.toml").write_text(
        f'[study]\nname = "ls-{next(_names)}-{uuid.uuid4().hex[:8]}"\n[annotation]\naudit_rate = 1.0\noverlap = 2\n'
        '[causal]\nmin_arm = 2\n'  # N_PAIRS pairs: the judges put 2 in the treated arm and 3 in the control arm
        '[[judges]]\nname = "judgeA"\nmodel = "openai/a"\n[[judges]]\nname = "judgeB"\nmodel = "openai/b"\n')
    versions = {c: r.version for c, r in judge.study_rubrics(["prompt", "reply"]).items()}
    records = [record(f"p{i:03d}").model_copy(update={
        "construct": construct, "judge": name, "model": f"openai/{name[-1].lower()}", "prompt_version": versions[construct],
        "score": 1 + (i + offset) % 7, "rationale": f"SECRET-RATIONALE-{name}"})
        for i in range(N_PAIRS) for construct in versions for name, offset in (("judgeA", 0), ("judgeB", 1))]
    judge.JudgmentLog(root / "judgments.jsonl").append(records)
    for person in people:
        assert invoke("annotate", "add-annotator", root, person.email, "--url", person.url).exit_code == 0
    return root


def projects_on(url: str, study_dir, token: str) -> list[labelstudio.ProjectRef]:
    name = re.search(r'name = "([^"]+)"', (study_dir / "study.toml").read_text())[1]
    return labelstudio.LabelStudioProjects(annotation.connect(url, token), url, name).projects()


def tasks_of(url: str, token: str, project_id: int) -> list:
    client = annotation.connect(url, token)
    return sorted(client.tasks.list(project=project_id, fields="all"), key=lambda t: t.data["pair_id"])


def score_for(person_index: int, pair_id: str) -> int:
    """The first annotator rates 1 + i % 7; the second the same, one higher on every third pair."""
    i = int(pair_id[1:])
    return 1 + (i + (person_index == 1 and i % 3 == 0)) % 7


def label_all(study_dir, people, token) -> None:
    """Each annotator, in their own browser session, labels every blind task on their own server."""
    assert invoke("annotate", "push", study_dir).exit_code == 0
    for index, person in enumerate(people):
        for project in projects_on(person.url, study_dir, token):
            for task in tasks_of(person.url, token, project.id):
                person.browser.annotate(task.id, project.construct, score_for(index, task.data["pair_id"]))


# ---------------------------------------------------------------------------- tests


def test_the_link_add_annotator_prints_works_on_the_first_try(people):
    """The fixture signed each annotator up with exactly the printed link and logged in with it."""
    for person in people:
        me = person.browser.get("/api/current-user/whoami").json()
        assert me["email"] == person.email and me["active_organization"] is not None
        assert person.browser.get("/api/projects/").status_code == 200


def test_push_gives_each_annotator_blind_tasks_on_their_own_server(study, people, label_studio):
    token = label_studio.token
    result = invoke("annotate", "push", study)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert (f"audit: the blind audit drew {N_PAIRS} of the {N_PAIRS} sampled pairs (audit_rate 1): 2 treated and 3 "
            "control by the judges' current empathy") in said and "needs 2 in each arm ([causal] min_arm)" in said
    assert not projects_on(label_studio.url, study, token)  # nothing blind on the main server
    for person in people:
        found = projects_on(person.url, study, token)
        assert sorted((p.construct, p.mode) for p in found) == [("attachment", "blind"), ("empathy", "blind")]
        for project in found:
            tasks = tasks_of(person.url, token, project.id)
            assert len(tasks) == N_PAIRS  # overlap 2 of 2 annotators: every pair on both servers
            for task in tasks:
                assert set(task.data) == annotation.BLIND_TASK_KEYS and not task.predictions
                text = json.dumps(task.data)
                assert "judge" not in text and "SECRET-RATIONALE" not in text and "score" not in text
            config = annotation.connect(person.url, token).projects.get(id=project.id).label_config
            assert f'name="{project.construct}"' in config  # the control is named after its construct
            shown = ["prompt", "reply"] if project.construct == "attachment" else ["prompt", "response"]
            assert list(tasks[0].data["dialogue"]) == shown  # attachment raters never see the response
    again = invoke("annotate", "push", study)
    assert again.exit_code == 0 and "(created)" not in again.output
    for person in people:
        for project in projects_on(person.url, study, token):
            assert len(tasks_of(person.url, token, project.id)) == N_PAIRS


def test_overlap_share_splits_the_pairs_between_the_servers(study, people, label_studio):
    text = (study / "study.toml").read_text().replace("overlap = 2", "overlap = 2\noverlap_share = 40")
    (study / "study.toml").write_text(text)
    assert invoke("annotate", "push", study).exit_code == 0
    state = json.loads((study / "annotation.json").read_text())
    names = [a["annotator"] for a in state["annotators"]]
    who = annotation.assign_annotators([f"p{i:03d}" for i in range(N_PAIRS)], names, 2, 40, 0)
    for person, name in zip(people, names):
        expected = sorted(p for p, raters in who.items() if name in raters)
        for project in projects_on(person.url, study, label_studio.token):
            assert [t.data["pair_id"] for t in tasks_of(person.url, label_studio.token, project.id)] == expected
    assert 0 < sum(len(r) == 2 for r in who.values()) < N_PAIRS


def test_two_annotators_pull_agree_export_then_edits_and_deletions(study, people, label_studio):
    token = label_studio.token
    label_all(study, people, token)
    result = invoke("annotate", "pull", study)
    assert result.exit_code == 0, result.output
    labels = pd.read_parquet(study / "labels.parquet")
    assert list(labels.columns) == list(annotation.LABEL_COLUMNS)
    assert len(labels) == 2 * 2 * N_PAIRS and set(labels["mode"]) == {"blind"}
    assert labels["annotator"].nunique() == 2 and not labels["annotator"].str.contains("@").any()
    versions = {c: r.version for c, r in judge.study_rubrics(["prompt", "reply"]).items()}
    assert (labels["prompt_version"] == labels["construct"].map(versions)).all()  # the rubric each annotator saw
    agreed = invoke("agree", study)
    assert agreed.exit_code == 0, agreed.output
    report = json.loads((study / "agreement.json").read_text())
    kinds = {p["kind"] for p in report["empathy"]["pairs"]}
    assert {"human-human", "judge-human", "panel-human", "judge-judge"} <= kinds
    human = [p for p in report["empathy"]["pairs"] if p["kind"] == "human-human"][0]
    assert human["n"] == N_PAIRS and human["mae"] == pytest.approx(
        sum(abs(score_for(0, f"p{i:03d}") - score_for(1, f"p{i:03d}")) for i in range(N_PAIRS)) / N_PAIRS)
    exported = invoke("export", study)
    assert exported.exit_code == 0, exported.output
    pairs = pd.read_parquet(study / "scored_pairs.parquet").set_index("pair_id")
    assert pairs["empathy_gold"].notna().all() and (pairs["gold_prob"] == 1.0).all()
    assert pairs.loc["p003", "empathy_gold"] == pytest.approx((score_for(0, "p003") + score_for(1, "p003")) / 2)

    first, second = people
    project = next(p for p in projects_on(first.url, study, token) if p.construct == "empathy")
    task = tasks_of(first.url, token, project.id)[0]
    mine = task.annotations[0]
    edited = first.browser.send("PATCH", f"/api/annotations/{mine['id']}/", {"result": [
        {"from_name": "empathy", "to_name": "dialogue", "type": "choices", "value": {"choices": ["7"]}}]})
    assert edited.status_code == 200, edited.text
    other = next(p for p in projects_on(second.url, study, token) if p.construct == "empathy")
    theirs = tasks_of(second.url, token, other.id)[0].annotations[0]
    assert second.browser.send("DELETE", f"/api/annotations/{theirs['id']}/", {}).status_code == 204
    assert invoke("annotate", "pull", study).exit_code == 0
    labels = pd.read_parquet(study / "labels.parquet")
    now = labels[(labels["pair_id"] == task.data["pair_id"]) & (labels["construct"] == "empathy")]
    assert now["score"].tolist() == [7] and now["annotation_id"].tolist() == [mine["id"]]


def test_the_second_annotator_cannot_open_the_first_annotators_labels(study, people, label_studio, seats):
    """As the second annotator — their own password, their own browser session — on every road a
    free-edition account has: their own server (all projects, all tasks, every organization id it
    may switch to), the first annotator's server (log-in, session cookie, sign-up), the main server."""
    label_all(study, people, label_studio.token)
    first, second = people
    own = second.browser.readable_annotations()
    assert own and {a["by"] for a in own} == {second.email}  # only their own labels, on their own server
    me = second.browser.get("/api/current-user/whoami").json()
    for organization in range(1, 6):  # the free edition lets any account switch to any organization id
        switched = second.browser.send("PATCH", f"/api/users/{me['id']}/", {"active_organization": organization})
        if switched.status_code == 200:
            assert first.email not in {a["by"] for a in second.browser.readable_annotations()}
    second.browser.send("PATCH", f"/api/users/{me['id']}/", {"active_organization": me["active_organization"]})

    there = Browser(first.url, cookies=second.browser.http.cookies)  # the same browser, the other port
    assert there.get("/api/projects/").status_code == 401  # their session does not carry over
    assert there.readable_annotations() == []
    assert not Browser(first.url).log_in(second.email, second.password)  # no account there
    invite_of_second = labelstudio.fresh_invite(annotation.connect(second.url, label_studio.token), second.url)
    attempts = [Browser(first.url).sign_up(f"{first.url}/user/signup/", second.email, second.password),
                Browser(first.url).sign_up(first.url + invite_of_second[len(second.url):], second.email,
                                           second.password)]
    assert all(a.status_code == 403 for a in attempts), [a.status_code for a in attempts]
    assert second.email not in labelstudio.accounts(annotation.connect(first.url, label_studio.token)).values()
    assert not Browser(label_studio.url).log_in(second.email, second.password)  # nor on the main server

    # The same probe on one shared server (the old layout) does find the other's labels: it can fail.
    main = annotation.connect(label_studio.url, label_studio.token)
    shared = main.projects.create(title=f"shared-{uuid.uuid4().hex[:6]}",
                                  label_config=annotation.label_config(judge.load_rubric("empathy")))
    main.projects.import_tasks(id=shared.id, request=[{"pair_id": "x", "construct": "empathy", "kind": "audit",
                                                       "dialogue": {"prompt": "hi", "response": "hello"}}])
    a, b = (Person(f"shared{i}-{uuid.uuid4().hex[:6]}@tests.local", "pw-" + secrets.token_hex(6), label_studio.url,
                   Browser(label_studio.url)) for i in (1, 2))
    for person in (a, b):
        link = labelstudio.fresh_invite(main, label_studio.url)
        assert person.browser.sign_up(link, person.email, person.password).status_code == 302
    task = next(iter(main.tasks.list(project=shared.id)))
    a.browser.annotate(task.id, "empathy", 6)
    assert a.email in {x["by"] for x in b.browser.readable_annotations()}


def test_a_sign_up_link_makes_one_account(study, people, label_studio):
    """A link makes one account on an annotator's server: the server spends it at the sign-up, and a
    link valid again afterwards (as on a server started some other way) is spent by the toolkit's
    next look at the server, once anyone has signed up there."""
    first = people[0]
    admin = annotation.connect(first.url, label_studio.token)
    before = labelstudio.accounts(admin)
    guests = [f"guest{i}-{uuid.uuid4().hex[:6]}@tests.local" for i in range(3)]
    try:
        link = labelstudio.fresh_invite(admin, first.url)
        assert Browser(first.url).sign_up(link, guests[0], "pw-" + secrets.token_hex(6)).status_code == 302
        assert Browser(first.url).sign_up(link, guests[1], "pw-" + secrets.token_hex(6)).status_code == 403, \
            "the link made a second account"
        _delete(admin, guests)
        link = labelstudio.fresh_invite(admin, first.url)
        assert invoke("annotate", "status", study).exit_code == 0
        again = Browser(first.url).sign_up(link, guests[2], "pw-" + secrets.token_hex(6))
        assert again.status_code == 403, "the link still worked after the annotator had signed up"
        assert labelstudio.accounts(admin) == before
    finally:
        _delete(admin, guests)


def _delete(admin, emails: list[str]) -> None:
    for uid, email in labelstudio.accounts(admin).items():
        if email in emails:
            admin.users.delete(id=uid)


def test_a_foreign_account_on_an_annotators_server_stops_pull_agree_and_export(study, people, label_studio):
    token = label_studio.token
    label_all(study, people, token)
    assert invoke("annotate", "pull", study).exit_code == 0 and invoke("export", study).exit_code == 0
    labels_before = (study / "labels.parquet").read_bytes()
    first = people[0]
    admin = annotation.connect(first.url, token)
    stranger = admin.users.create(email=f"stranger-{uuid.uuid4().hex[:6]}@tests.local", username="stranger")
    try:
        pulled = runner.invoke(app, ["annotate", "pull", str(study)])
        lines = [line for line in pulled.output.splitlines() if line.strip()]
        assert pulled.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), pulled.output
        flat = " ".join(pulled.output.split())
        assert first.url in flat and stranger.email in flat and f"/api/users/{stranger.id}/" in flat
        assert "allow_foreign_accounts = true" in flat
        assert (study / "labels.parquet").read_bytes() == labels_before  # nothing from that server was taken
        recorded = json.loads((study / "annotation.json").read_text())["foreign_accounts"]
        assert list(recorded) == [first.url] and recorded[first.url]["accounts"] == 1
        assert stranger.email not in (study / "annotation.json").read_text()  # a count, never the e-mail
        for command in (["agree"], ["export"]):
            refused = runner.invoke(app, [*command, str(study)])
            assert refused.exit_code == 1 and refused.output.startswith("error:"), refused.output
            assert first.url in refused.output and "allow_foreign_accounts" in " ".join(refused.output.split())
        status = runner.invoke(app, ["annotate", "status", str(study)], env={"COLUMNS": "250"})
        assert status.exit_code == 0 and stranger.email in status.output and "refuse" in status.output

        text = (study / "study.toml").read_text()
        (study / "study.toml").write_text(text.replace("[annotation]", "[annotation]\nallow_foreign_accounts = true"))
        for command in (["annotate", "pull"], ["agree"], ["export"]):
            assert invoke(*command, study).exit_code == 0
        (study / "study.toml").write_text(text)
    finally:
        admin.users.delete(id=stranger.id)
    assert invoke("annotate", "pull", study).exit_code == 0  # the account is gone: the server is clean again
    assert json.loads((study / "annotation.json").read_text())["foreign_accounts"] == {}
    assert invoke("agree", study).exit_code == 0 and invoke("export", study).exit_code == 0


def test_review_labels_never_reach_gold(study, people, label_studio):
    token = label_studio.token
    label_all(study, people, token)
    assert invoke("annotate", "pull", study).exit_code == 0 and invoke("export", study).exit_code == 0
    result = invoke("annotate", "push", study, "--review")
    assert result.exit_code == 0, result.output
    review = [p for p in projects_on(label_studio.url, study, token) if p.construct == "empathy"]
    assert [p.mode for p in review] == ["review"]
    tasks = tasks_of(label_studio.url, token, review[0].id)
    assert all(len(t.predictions) == 2 for t in tasks)  # one per judge, model_version = judge@prompt version
    assert {getattr(p, "model_version", None).split("@")[0] for p in tasks[0].predictions} == {"judgeA", "judgeB"}
    assert invoke("annotate", "push", study, "--review").exit_code == 0  # idempotent: no duplicate predictions
    assert all(len(t.predictions) == 2 for t in tasks_of(label_studio.url, token, review[0].id))
    target = tasks[5]
    main = annotation.connect(label_studio.url, token)
    main.annotations.create(id=target.id, result=[{"from_name": "empathy", "to_name": "dialogue", "type": "choices",
                                                   "value": {"choices": ["7"]}}])
    before = pd.read_parquet(study / "scored_pairs.parquet").set_index("pair_id").loc[target.data["pair_id"], "empathy_gold"]
    assert invoke("annotate", "pull", study).exit_code == 0
    labels = pd.read_parquet(study / "labels.parquet")
    assert (labels["mode"] == "review").sum() == 1
    assert invoke("export", study).exit_code == 0
    after = pd.read_parquet(study / "scored_pairs.parquet").set_index("pair_id").loc[target.data["pair_id"], "empathy_gold"]
    assert after == before  # the review label changed nothing in the gold column


def test_skips_other_accounts_foreign_fields_and_requeue(study, people, label_studio):
    token = label_studio.token
    label_all(study, people, token)
    first, _ = people
    project = next(p for p in projects_on(first.url, study, token) if p.construct == "attachment")
    tasks = tasks_of(first.url, token, project.id)
    assert first.browser.send("DELETE", f"/api/annotations/{tasks[1].annotations[0]['id']}/", {}).status_code == 204
    first.browser.annotate(tasks[1].id, "attachment", 0, cancelled=True)
    admin = annotation.connect(first.url, token)  # someone else on the annotator's server: never counted
    admin.annotations.create(id=tasks[4].id, result=[{"from_name": "attachment", "to_name": "dialogue",
                                                      "type": "choices", "value": {"choices": ["7"]}}])
    first.browser.send("PATCH", f"/api/annotations/{tasks[2].annotations[0]['id']}/", {"result": [
        {"from_name": "attachment", "to_name": "dialogue", "type": "choices", "value": {"choices": ["3"]}},
        {"from_name": "sentiment", "to_name": "dialogue", "type": "choices", "value": {"choices": ["pos"]}}]})
    pulled = invoke("annotate", "pull", study)
    assert "1 audit task(s) were skipped" in pulled.output and "ignored 1 result(s)" in pulled.output
    assert "not counted: 1 annotation(s) by admin@tests.local" in pulled.output
    labels = pd.read_parquet(study / "labels.parquet")
    assert len(labels[(labels["construct"] == "attachment") & (labels["pair_id"] == tasks[4].data["pair_id"])]) == 2
    status = runner.invoke(app, ["annotate", "status", str(study)], env={"COLUMNS": "250"})
    assert status.exit_code == 0 and "attachment · blind" in status.output and "signed up" in status.output
    assert "re-queued 1" in invoke("annotate", "requeue", study).output
    assert not any(a.get("was_cancelled") for a in admin.tasks.get(id=tasks[1].id).annotations)


def test_a_changed_rubric_makes_new_projects_and_old_labels_keep_their_version(study, people, label_studio):
    token = label_studio.token
    label_all(study, people, token)
    text = (study / "study.toml").read_text()
    (study / "study.toml").write_text(text.replace("[annotation]", '[judge]\nattachment_context = ["prompt", '
                                                   '"response", "reply"]\n[annotation]'))
    assert invoke("annotate", "push", study).exit_code == 0
    first = people[0]
    attachment = sorted(p.prompt_version for p in projects_on(first.url, study, token) if p.construct == "attachment")
    assert len(attachment) == 2 and any(v.endswith("+prompt-response-reply") for v in attachment)
    pulled = invoke("annotate", "pull", study)
    assert f"{2 * N_PAIRS} label(s) were made under an earlier rubric version" in pulled.output, pulled.output
    labels = pd.read_parquet(study / "labels.parquet")
    old = labels[labels["construct"] == "attachment"]
    assert len(old) == 2 * N_PAIRS and not old["prompt_version"].str.endswith("+prompt-response-reply").any()
    report = json.loads(invoke("agree", study).stdout and (study / "agreement.json").read_text())
    assert report["attachment"]["labels_under_other_rubric_versions"] == 2 * N_PAIRS
    assert not any(p["kind"] == "human-human" for p in report["attachment"].get("pairs", []))  # old labels not mixed in
    exported = invoke("export", study)
    assert exported.exit_code == 0 and "the rubric changed" in " ".join(exported.output.split()), exported.output
    # No blind label under the new attachment rubric yet: the construct stays on the version its audit
    # was labelled under — that version's gold and scores together, never an empty gold.
    pairs, recorded = read_scored_pairs(study / "scored_pairs.parquet")
    assert pairs["attachment_gold"].notna().sum() == pairs["empathy_gold"].notna().sum() > 0
    rubric = recorded["rubric"]["attachment"]
    assert rubric["scores"] == rubric["gold"] == old["prompt_version"].iloc[0] != rubric["current"]


def test_before_anything_status_and_push_say_what_to_run(tmp_path, label_studio_env, people):
    root = tmp_path / "fresh"
    root.mkdir()
    sample_frame(["I feel alone"] * 3).assign(pair_id=["p000", "p001", "p002"]).to_parquet(root / "sample.parquet")
    (root / "study.toml").write_text(f'[study]\nname = "fresh-{uuid.uuid4().hex[:8]}"\n[annotation]\naudit_rate = 0.0001\n')
    status = invoke("annotate", "status", root)
    assert status.exit_code == 0 and "add-annotator" in status.output and "annotate push" in status.output
    refused = runner.invoke(app, ["annotate", "push", str(root)])
    assert refused.exit_code == 1 and "no annotator yet" in refused.output and "add-annotator" in refused.output
    assert invoke("annotate", "add-annotator", root, people[0].email, "--url", people[0].url).exit_code == 0
    status = invoke("annotate", "status", root)
    assert "nothing pushed yet" in status.output and f"empathy annotate push {root}" in " ".join(status.output.split())
    refused = runner.invoke(app, ["annotate", "push", str(root)])  # 0 pairs drawn: no estimate can rest on them
    assert refused.exit_code == 1 and "the blind audit drew 0 of the 3 sampled pairs" in " ".join(refused.output.split())
    empty = invoke("annotate", "push", root, "--small-audit")
    assert empty.exit_code == 0 and "none of the 3 sampled pairs drew into the audit" in " ".join(empty.output.split())


def test_add_annotator_refuses_servers_that_would_break_blindness(study, people, label_studio):
    main = runner.invoke(app, ["annotate", "add-annotator", str(study), "new@tests.local", "--url", label_studio.url])
    assert main.exit_code == 1 and "main server" in main.output
    shared = runner.invoke(app, ["annotate", "add-annotator", str(study), "new@tests.local", "--url", people[0].url])
    assert shared.exit_code == 1 and "already another annotator's server" in shared.output
    fresh_study = study.parent / "other"
    fresh_study.mkdir()
    (fresh_study / "study.toml").write_text(f'[study]\nname = "o-{uuid.uuid4().hex[:6]}"\n')
    occupied = runner.invoke(app, ["annotate", "add-annotator", str(fresh_study), "new@tests.local",
                                   "--url", people[0].url])
    assert occupied.exit_code == 1 and people[0].email in occupied.output and "account other than" in occupied.output


def test_server_down_or_wrong_token_is_one_clear_line(study, people, label_studio, monkeypatch):
    assert invoke("annotate", "push", study).exit_code == 0 and invoke("annotate", "pull", study).exit_code == 0
    labels_before = (study / "labels.parquet").read_bytes()
    saved = (study / "annotation.json").read_text()
    state = json.loads(saved)
    state["annotators"][0]["url"] = "http://127.0.0.1:9"  # an annotator's server is down
    (study / "annotation.json").write_text(json.dumps(state))
    for command in ("pull", "status", "push"):
        down = runner.invoke(app, ["annotate", command, str(study)])
        assert down.exit_code == 1 and "cannot reach Label Studio at http://127.0.0.1:9" in down.output, down.output
    (study / "annotation.json").write_text(saved)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "0" * 40)
    refused = runner.invoke(app, ["annotate", "pull", str(study)])
    assert refused.exit_code == 1 and "refused the API key" in refused.output
    assert (study / "labels.parquet").read_bytes() == labels_before  # nothing pulled earlier was lost


def test_rejected_label_config_shows_labelstudios_message(label_studio, label_studio_client, monkeypatch):
    broken = "<View><Choices name='x' toName='missing'/></View>"
    monkeypatch.setattr(labelstudio, "label_config", lambda rubric, review=False: broken)
    projects = annotation.LabelStudioProjects(label_studio_client, label_studio.url, f"broken-{uuid.uuid4().hex[:6]}")
    with pytest.raises(annotation.AnnotationError, match="rejected the label config"):
        projects.ensure(judge.load_rubric("empathy"), "blind", 1)
