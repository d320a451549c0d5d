"""What every `empathy` command does with bad options and with `--help`, checked on every command the
app registers (the list is walked, not written down): usage errors end with one `error:` line and
exit 1, and help texts keep every bracketed word (`[[judges]]`, `[causal]`) that Rich markup would eat."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from empathy_study.study.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "400"}  # one line per help paragraph: bracketed phrases are not wrapped apart


def commands(group=None, path=()):
    """(path, click command) of every leaf command of the app."""
    group = group or typer.main.get_command(app)
    for name, command in sorted(group.commands.items()):
        if getattr(command, "commands", None):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = list(commands())
IDS = [" ".join(path) for path, _ in COMMANDS]


def test_the_walk_finds_the_commands_of_every_stage():
    assert {"init", "demo", "agree", "export", "estimate", "corpus build", "corpus sample", "judge run", "judge export",
            "judge report", "annotate push", "annotate pull", "annotate status", "annotate requeue"} <= set(IDS)


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_an_unknown_option_is_one_error_line_and_exit_1(path, command):
    result = runner.invoke(app, [*path, "--no-such-option"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: No such option: --no-such-option"), result.output
    assert f"empathy {' '.join(path)} --help".replace("empathy", "", 1).strip() in lines[0]


def test_bad_values_and_missing_arguments_end_the_same_way(tmp_path):
    cases = [(["corpus", "sample", str(tmp_path), "--n", "zero"], "Invalid value for '--n'"),
             (["corpus", "sample", str(tmp_path), "--n", "0"], "Invalid value for '--n'"),
             (["estimate", str(tmp_path), "--folds", "x"], "Invalid value for '--folds'"),
             (["judge", "run"], "Missing argument"),
             (["no-such-command"], "No such command")]
    for args, expected in cases:
        result = runner.invoke(app, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1, (args, result.output)
        assert lines[0].startswith("error: ") and expected in lines[0], (args, result.output)


def test_a_bare_group_prints_its_help_and_succeeds():
    result = runner.invoke(app, ["judge"])
    assert result.exit_code == 0 and "run" in result.output and "error" not in result.output


def bracketed(text: str | None) -> list[str]:
    return re.findall(r"\[+[^\[\]]*\]+", text or "")


def flat(output: str) -> str:
    """Help output without box drawing and line breaks, whitespace collapsed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help_keeps_every_bracketed_word(path, command):
    words = bracketed(command.help) + [w for param in command.params for w in bracketed(getattr(param, "help", None))]
    result = runner.invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    shown = flat(result.output)
    for word in words:
        assert " ".join(word.split()) in shown, (word, result.output)


def test_some_help_text_has_brackets_to_lose():
    """The check above is not empty: these docstrings hold the words Rich used to swallow."""
    found = {word for _, command in COMMANDS for word in bracketed(command.help)}
    assert {"[[judges]]", "[judge]"} <= found
