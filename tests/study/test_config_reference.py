"""study.toml is documented from one source, the configuration models' field descriptions: every
table and key has one, the template `empathy init` writes holds every key with its default, and the
checked-in reference page is what the models render now."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from empathy_study.study import config
from empathy_study.study.workspace import StudyConfig, Workspace

REPO = Path(__file__).resolve().parents[2]


def test_every_table_and_key_is_documented():
    assert config.undocumented() == [], "give these keys a Field(description=...): " + ", ".join(config.undocumented())


def test_the_checked_in_reference_is_current():
    written = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert written == config.reference(), "docs/configuration.md is stale: run `make docs` and commit it"


def test_the_template_holds_every_key_with_its_default(tmp_path):
    text = Workspace(tmp_path).init().read_text(encoding="utf-8")
    assert text == config.template()
    assert StudyConfig.model_validate(tomllib.loads(text)) == StudyConfig()  # the values shown are the defaults
    for name, _, model, _ in config.tables():
        for key in model.model_fields:
            assert re.search(rf"^(# )?{key} = ", text, re.MULTILINE), f"{name}.{key} is missing from the template"


def test_the_examples_of_keys_unset_by_default_are_valid_values():
    for name, _, model, listed in config.tables():
        for key, field in model.model_fields.items():
            for example in field.examples or []:
                base = {"name": "j", "model": "m"} if listed else {}
                model.model_validate({**base, key: example})  # raises if the template shows a wrong value
