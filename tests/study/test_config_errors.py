"""A study.toml with a mistake in it: the message names the table as the author wrote it, the key
it probably meant, and single versus double brackets — in one line, exit code 1."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from empathy_study.study.cli import app
from empathy_study.study.workspace import StudyError, Workspace

PANEL = '[[judges]]\nname = "a"\nmodel = "openai/x"\n'

CASES = [
    ('[[judge]]\nname = "a"\nmodel = "openai/x"\n', ["[[judge]]", "[judge] is one table", "[[judges]] table (with an s)"]),
    ('[judges]\nname = "a"\nmodel = "openai/x"\n', ["[judges] (single brackets)", "one [[judges]] table"]),
    ('[[judges]]\nname = "a"\nmodle = "openai/x"\n', ["[[judges]] table 1 (name = 'a')", "'modle'", "did you mean 'model'?"]),
    (PANEL + '[[judges]]\nname = "b"\nmodel = "openai/y"\ntemprature = 0.5\n',
     ["[[judges]] table 2 (name = 'b')", "did you mean 'temperature'?"]),
    ("[annotation]\naudit_rat = 0.3\n", ["[annotation]", "'audit_rat'", "did you mean 'audit_rate'?"]),
    ("[causal]\ncaliperr = 0.4\n", ["[causal]", "did you mean 'caliper'?"]),  # CausalConfig itself ignores extras
    ("[sample]\nstrat = ['model']\n", ["[sample]", "did you mean 'strata'?"]),
    ("[corpus]\nkeep_transactionl = true\n", ["[corpus]", "did you mean 'keep_transactional'?"]),
    ("[jugdes]\nx = 1\n", ["unknown table [jugdes]", "did you mean [[judges]]?"]),
    ("[annotation]\nzzz = 1\n", ["unknown key 'zzz'", "the keys of this table are url, audit, audit_rate, audit_labels"]),
    ('[corpus]\nbackend = "ray"\n', ["[corpus]", "'backend' is now called 'build_backend'",
                                     'build_backend = "ray"']),  # [causal] backend keeps its name
    ('[corpus]\njudges = ["a"]\n' + PANEL, ["[corpus]", "'judges' is now called 'classify_judges'",
                                         'classify_judges = ["a"]']),
    (PANEL + "temperature = 5\n", ["[[judges]] table 1 (name = 'a')", "temperature", "less than or equal to 2",
                                   "(got 5)"]),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[1][0] for c in CASES])
def test_the_message_says_what_to_write(tmp_path, text, expected):
    (tmp_path / "study.toml").write_text(text)
    with pytest.raises(StudyError) as caught:
        Workspace(tmp_path).config()
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "study.toml")) and "\n" not in message
    for part in expected:
        assert part in message, message


def test_a_valid_file_with_every_table_passes(tmp_path):
    assert Workspace(tmp_path).init()
    config = Workspace(tmp_path).config()  # the commented defaults `empathy init` writes
    assert config.judges and config.annotation.audit_rate > 0


def test_the_cli_prints_it_as_one_error_line(tmp_path):
    (tmp_path / "study.toml").write_text('[[judge]]\nname = "a"\nmodel = "openai/x"\n')
    result = CliRunner().invoke(app, ["judge", "run", str(tmp_path), "--dry-run"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "[[judges]]" in lines[0]
