"""The `empathy` command: thin entry points over the stage libraries."""

from study.cli.main import app

__all__ = ["app"]
