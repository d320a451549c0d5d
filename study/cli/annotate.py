"""`empathy annotate add-annotator | push | pull | status | requeue` and `empathy agree`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from empathy_study import study
from empathy_study.shared import CONSTRUCTS
from empathy_study.study.cli._common import AGREEMENT_CAPTION, StudyDir, console, user_errors, workspace

app = typer.Typer(help="Human ground truth in Label Studio: each annotator rates blind on a server of their own "
                       "(LABEL_STUDIO_URL: the study's main server; LABEL_STUDIO_API_KEY: the admin token of every "
                       "server).", no_args_is_help=True)


@app.command("add-annotator")
@user_errors
def add_annotator(
    study_dir: StudyDir,
    email: Annotated[str, typer.Argument(help="The annotator's e-mail: they sign up with it (it is never stored; "
                                              "labels carry a pseudonym).")],
    url: Annotated[str, typer.Option(help="Their own Label Studio server, started with "
                                          "`make labelstudio-annotator NAME=…` (it prints the URL).")],
) -> None:
    """Give an annotator their own Label Studio server and print the link they sign up with.

    Whoever has an account on a Label Studio server can open every annotation on it, so blind
    ratings stay independent only when each annotator works on a server that no other annotator
    can log in to. The server must hold no account but the admin's (and, on a second run, theirs).
    """
    ws = workspace(study_dir)
    added = study.add_annotator(ws, email, url)
    console.print(f"{email} → {added.url} (labels recorded as {added.annotator})")
    if added.signed_up:
        console.print(f"{email} has an account there already: they log in at {added.url}")
    else:
        console.print(f"send {email} this sign-up link (only they should have it; it replaces any earlier one):")
        console.print(f"  {added.invite}", soft_wrap=True, highlight=False)
        console.print("they sign up with that e-mail and a password of their own, then open the study's projects at "
                      f"{added.url} and press \"Label All Tasks\"")
    console.print(f"next: `empathy annotate push {study_dir}` gives them their tasks")


@app.command()
@user_errors
def push(
    study_dir: StudyDir,
    review: Annotated[bool, typer.Option("--review", help="Also sync review projects on the main server: the judges' "
                                         "scores and rationales as predictions, for checking the judge (never gold).")] = False,
    small_audit: Annotated[bool, typer.Option("--small-audit", help="Push an audit too small to reach [causal] min_arm "
                                              "in an arm: its labels serve agreement and calibration only.")] = False,
) -> None:
    """Send each annotator their share of the blind audit sample (and calibration pairs); re-pushing adds only what is new.

    Blind projects carry no judge score anywhere and live on each annotator's own server. Which
    annotators rate a pair follows [annotation] overlap and overlap_share. Says how many pairs the
    audit drew ([annotation] audit_rate) and how many fall in each arm by the judges' current scores;
    refuses an audit that cannot reach [causal] min_arm in an arm — the judge-error-corrected estimate
    needs that many — and says what audit_rate would (unless --small-audit).

    With [annotation] audit = "active", a push whose batches planned fewer than audit_labels pairs first
    draws the next batch: every sampled pair's probability grows with the judges' expected error on it
    (their disagreement, their uncertainty where they recorded logprobs and closeness to a threshold; once
    20 pairs are labelled, a model of the errors
    those labels show), at least min_audit_prob, and is written to DIR/audit_batches.parquet before
    anyone labels. Annotators still see no judge output.
    """
    ws = workspace(study_dir)
    pushed = study.push(ws, review, small_audit)
    results = pushed.projects
    table = Table(title="Label Studio push", title_justify="left")
    review_pushed = any(r.annotator is None for r in results)
    for column in ("project", "annotator", "server", "id", "new tasks", "had") + (("predictions",) if review_pushed else ()):
        table.add_column(column)
    for r in results:
        row = [r.project + (" (new)" if r.created else ""), r.annotator or "– (main server)",
               r.server.removeprefix("http://").removeprefix("https://"), str(r.project_id), str(r.new_tasks),
               str(r.existing_tasks)]
        table.add_row(*row, *((str(r.new_predictions),) if review_pushed else ()))
    console.print(table)
    for r in results:
        if r.note:
            console.print(f"note: {r.project} on {r.server}: {r.note}", highlight=False)
    for batch in pushed.batches:
        console.print(f"audit batch {batch_line(batch)}", markup=False, highlight=False)
    if pushed.audit is not None:
        console.print(f"audit: {pushed.audit.describe()}", markup=False, highlight=False)
        if pushed.audit.short:
            console.print(f"warning: pushed with --small-audit: {pushed.audit.remedy(str(study_dir))} for a "
                          "judge-error-corrected estimate", markup=False, highlight=False)


@app.command()
@user_errors
def pull(study_dir: StudyDir) -> None:
    """Fetch every annotation into DIR/labels.parquet (annotators under pseudonymous ids, each label with the
    rubric version its annotator saw; edits replace, deletions disappear). Nothing is overwritten when a
    server cannot be read."""
    ws = workspace(study_dir)
    summary = study.pull(ws)
    counts = summary.labels.groupby(["construct", "mode"]).size().to_dict() if len(summary.labels) else {}
    console.print(f"wrote {ws.labels}: {len(summary.labels):,} labels {counts}")
    if summary.foreign:
        console.print(f"ignored {summary.foreign} result(s) from controls that are not this study's")
    if summary.unparsed:
        console.print(f"ignored {summary.unparsed} annotation(s) without a 1-7 choice")
    for where, n in sorted(summary.other_accounts.items()):
        console.print(f"not counted: {n} annotation(s) by {where}, which is not the annotator registered for that "
                      "server (if it is them under another address, run add-annotator again with it)", highlight=False)
    if summary.other_versions:
        console.print(f"{summary.other_versions} label(s) were made under an earlier rubric version: kept in "
                      f"{ws.labels.name} with their prompt_version, not used for agreement or gold")
    if summary.skipped:
        console.print(f"{summary.skipped} audit task(s) were skipped: a skipped audit pair breaks its known sampling "
                      f"probability. Put them back in the queue with `empathy annotate requeue {study_dir}`.")


@app.command()
@user_errors
def status(study_dir: StudyDir) -> None:
    """Per annotator: their server and whether they signed up; per project: tasks, labelled, skips."""
    ws = workspace(study_dir)
    found = study.status(ws)
    if found.next_step:
        console.print(found.next_step, highlight=False)
        return
    people = Table(title="Annotators (each on a server of their own)", title_justify="left")
    for column in ("annotator", "server", "signed up", "other accounts there"):
        people.add_column(column)
    for row in found.annotators:
        people.add_row(row["annotator"], row["server"], "yes" if row["signed_up"] else "not yet",
                       ", ".join(row["other_accounts"]) or "–")
    console.print(people)
    table = Table(title="Projects", title_justify="left")
    for column in ("project", "server", "rubric", "tasks", "labelled", "skipped", "per annotator"):
        table.add_column(column)
    for row in found.projects:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(row["per_annotator"].items())) or "–"
        table.add_row(row["project"], row["server"], row["prompt_version"], str(row["tasks"]), str(row["labelled"]),
                      str(row["skipped"]), counts)
    console.print(table)
    if found.design:
        console.print(f"audit design: {found.design}", markup=False, highlight=False)
    for batch in found.batches:
        console.print(f"  batch {batch_line(batch)}", markup=False, highlight=False)
    reached = ", ".join(f"{c} {n:,}" for c, n in found.overlap_reached.items())
    console.print(f"audit pairs labelled by every annotator assigned to them: {reached}")
    for row in found.annotators:
        if row["other_accounts"]:
            console.print(f"warning: {row['server']} has other accounts ({', '.join(row['other_accounts'])}): they "
                          f"can open {row['annotator']}'s labels, so pull, agree and export refuse that server's labels "
                          "until the accounts are deleted there (or the study sets \\[annotation] "
                          "allow_foreign_accounts = true)", highlight=False)


def batch_line(batch: dict) -> str:
    """One active-audit batch in words, from its record in annotation.json."""
    if batch.get("design") == "uniform":
        return f"{batch['batch']}: the uniform audit at rate {batch['rate']:g}, {batch['drawn']:,} pairs drawn"
    p = batch["probability"]
    return (f"{batch['batch']} (drawn {batch['drawn_at']}): {batch['labels']:g} new pairs planned, {batch['new']:,} "
            f"drawn ({batch['drawn']:,} with pairs drawn before); probabilities {p['min']:.3g} to {p['max']:.3g} "
            f"(median {p['median']:.3g}, floor {batch['floor']:g}) from {batch['need_from']}")


@app.command()
@user_errors
def requeue(study_dir: StudyDir) -> None:
    """Delete skipped annotations of blind tasks so the tasks go back into their annotator's queue."""
    removed = study.requeue_skipped(workspace(study_dir))
    console.print(f"re-queued {removed} skipped task annotation(s)")


@user_errors
def agree(study_dir: StudyDir) -> None:
    """Agreement between annotators, judges and the panel → DIR/agreement.json and a table.

    Krippendorff's α (ordinal, interval; values 1..7) with unit-bootstrap 95 % CIs, quadratic-weighted
    κ, Spearman ρ, MAE and bias (mean of b − a: positive when b rates higher) for every pair of raters.
    Verdicts read the interval: reliable when all of it is ≥ 0.8, tentative ≥ 0.667, unreliable when
    all of it is below 0.667, inconclusive when it straddles 0.667.
    """
    ws = workspace(study_dir)
    report = study.agree(ws)
    for construct in CONSTRUCTS:
        result = report.get(construct, {})
        if "note" in result:
            console.print(f"{construct}: {result['note']}")
            continue
        ceiling = result.get("human_ceiling")
        table = Table(title=f"{construct}: agreement (human ceiling α = {'–' if ceiling is None else f'{ceiling:.2f}'})",
                      title_justify="left", caption=AGREEMENT_CAPTION, caption_justify="left")
        for column in ("kind", "a", "b", "α ordinal", "95 % CI", "α interval", "n", "κ qw", "ρ", "MAE", "bias b−a",
                       "verdict"):
            table.add_column(column)
        for p in result["pairs"]:
            table.add_row(p["kind"], p["a"], p["b"], _num(p["alpha_ordinal"]),
                          "–" if not p["ci"] else f"[{p['ci'][0]:.2f}, {p['ci'][1]:.2f}]", _num(p["alpha_interval"]),
                          str(p["n"]), _num(p["kappa_qw"]), _num(p["spearman"]), _num(p["mae"]), _num(p["bias"]),
                          p["verdict"])
        console.print(table)
    console.print(f"wrote {ws.agreement}")


def _num(value) -> str:
    return "–" if value is None else f"{value:.2f}"


@app.command()
@user_errors
def plan(
    study_dir: StudyDir,
    ci_width: Annotated[float, typer.Option("--ci-width", help="Target width of the corrected 95 % interval "
                                            "(points on the 1-7 scale).")],
    cost_per_label: Annotated[float | None, typer.Option(help="Price of one label in USD, to cost the plan.")] = None,
) -> None:
    """How many more audited pairs bring the judge-error-corrected interval to --ci-width.

    Reads the variance the last `empathy estimate DIR` measured (DIR/estimates/estimates.json) and
    the annotation rate in DIR/labels.parquet. Before a corrected estimate exists (no estimate yet, or
    an audited arm below [causal] min_arm), plans from the design: the outcome SD of the attachment
    labels (else assumed on the 1-7 scale) and the arm shares of the empathy labels (else the judges'),
    each with the range it leaves open.
    """
    from empathy_study.study.audit_plan import plan_audit

    result = plan_audit(workspace(study_dir), ci_width, cost_per_label)
    if result.design is not None:
        _print_design(result.design, result.why_design)
        return
    p = result.plan
    console.print(f"corrected estimate {result.estimate:+.3f}: interval width {p.current_width:.3f} from "
                  f"{p.audited:,} audited of {p.pairs:,} pairs")
    if not p.reachable:
        console.print(f"width {p.target_width:g} is out of reach in this sample: labelling every pair would give "
                      f"{p.width_if_all_audited:.3f} (the rest of the width is how much the effect varies)")
    elif not p.more:
        console.print(f"width {p.target_width:g} is already reached")
    else:
        line = f"about {p.more:,} more audited pairs ({p.needed:,} in all) reach width {p.target_width:g}"
        if result.labels_per_pair:
            line += f": {p.more * result.labels_per_pair:,.0f} labels at {result.labels_per_pair:.1f} per pair"
        if result.days is not None:
            line += f", ~{result.days:.1f} days at the current {result.labels_per_day:.0f} labels/day"
        if result.cost_usd is not None:
            line += f", ~{result.cost_usd:,.2f} USD"
        console.print(line)
        if result.more_range is not None:
            console.print(f"how sure: {_range(*result.more_range)} more, at the ends of the 95 % interval of the audit's "
                          f"part of the variance (χ² on {p.audited - 1:,} degrees of freedom; the rest taken as known)",
                          highlight=False)
        if result.uniform_factor is not None and p.more:
            console.print(f"under a uniform audit: about {p.more * result.uniform_factor:,.0f} more (the active design's "
                          f"labels are worth {result.uniform_factor:.2f} uniform ones each, measured by the last "
                          "estimate)", highlight=False)
        if result.active_more is not None:
            console.print(f"under an active design ([annotation] audit = \"active\"): about {result.active_more:,.0f} more "
                          f"audited pairs instead ({result.active_how})", highlight=False, markup=False)
        elif result.active_how is not None:
            console.print(f"under an active design: no forecast ({result.active_how})", highlight=False, markup=False)
        console.print("raise [annotation] audit_labels (active) or audit_rate (uniform) in study.toml, `empathy "
                      "annotate push`, label, pull, export and estimate again", markup=False)
    if result.stale:
        console.print(f"note: scored_pairs.parquet changed after the last estimate: run `empathy estimate "
                      f"{study_dir}` for an up-to-date plan")


def _count(n: float) -> str:
    return "no number (an arm is empty)" if n == float("inf") else f"{n:,.0f}"


def _range(low: float, high: float) -> str:
    return f"{_count(low)}–{_count(high)}" if high != float("inf") else f"from {_count(low)}, without an upper end"


def _print_design(d, why: str | None) -> None:
    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    say(f"no corrected estimate to plan from ({why}): planning from the design — a gold-only difference in mean "
        f"attachment between the arms, 95 % interval of width {d.target_width:g}, at least {d.min_arm} audited "
        "pairs in each arm ([causal] min_arm)")
    say(f"outcome SD {d.sd:.2f} (range {d.sd_range[0]:.2f}–{d.sd_range[1]:.2f}), {d.sd_from}")
    say(f"equal arms: about {d.per_arm:,} audited pairs in each (range {_range(*d.per_arm_range)})")
    if d.shares is None:
        say("arm shares unknown (no judge scores or labels yet): the audited pairs in all are those per arm divided "
            "by the rarer arm's share; `empathy judge run` and `empathy export` let this plan name them")
    else:
        shares = f"{d.shares[0]:.0%} treated, {d.shares[1]:.0%} control"
        if d.shares_range:
            shares += (f" ([{d.shares_range[0][0]:.0%}, {d.shares_range[0][1]:.0%}], "
                       f"[{d.shares_range[1][0]:.0%}, {d.shares_range[1][1]:.0%}])")
        say(f"arms: {shares}, from {d.shares_from}")
        line = f"at those shares: about {_count(d.needed)} audited pairs (range {_range(*d.needed_range)})"
        if d.reachable:
            line += (f" — audit_rate {d.rate_needed:g} of the {d.pairs:,} sampled pairs (now {d.rate:g}: "
                     f"{d.drawn:,} drawn)")
        else:
            line += f": more than the {d.pairs:,} sampled pairs hold; sample more (`empathy corpus sample --n`)"
        say(line)
    say("the corrected estimate also uses the judges' scores and is usually narrower than this; once each arm has "
        f"{d.min_arm} audited pairs, `empathy estimate` and this command plan from its measured variance")
