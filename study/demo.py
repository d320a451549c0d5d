"""`empathy demo`: every stage, in order, on the embedded defaults (bundled corpus, local judge)."""

from __future__ import annotations

from pathlib import Path

from study.cli import corpus as corpus_cli
from study.cli._common import console
from study.workspace import Workspace

DEMO_SAMPLE = 24  # small enough for the local judge to finish in a few minutes
DEMO_SEED = 0


def run_demo(out: Path) -> None:
    study = Workspace(out)
    if not study.config_path.exists():
        study.init()
    console.rule("1 · corpus: the bundled real ShareGPT conversations → turn-pairs")
    corpus_cli.build(source="sharegpt", out=out, input=None)
    console.rule(f"2 · a stratified sample of {DEMO_SAMPLE} pairs")
    corpus_cli.sample(study_dir=out, n=DEMO_SAMPLE, seed=DEMO_SEED)
    console.print(f"\nThe demo study is in {out}")
