"""The `empathy` command: thin entry points over the stage libraries."""

from empathy_study.study.cli.main import app

__all__ = ["app"]
