"""empathy-study: does empathetic language from an LLM cause users to become emotionally attached?

The distribution installs under this one name. The stage packages live in the repository's
top-level folders and are mapped here by `pyproject.toml`:

- `empathy_study.corpus`      raw chat logs → turn-pairs → a stratified sample
- `empathy_study.judge`       a panel of LLM judges, its append-only log and scores
- `empathy_study.annotation`  Label Studio sync and agreement statistics
- `empathy_study.causal`      confounders, matching, doubly robust estimates, report
- `empathy_study.prompts`     the rubric files (package data)
- `empathy_study.study`       the study library that wires the stages, the `empathy` CLI and the TUI
"""

from importlib import metadata

try:
    __version__ = metadata.version("empathy-study")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
