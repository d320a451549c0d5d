"""The study library: one function per stage over a study directory, typed options in, typed results out.

The `empathy` CLI, the calibration app, the demo, the tests and the benchmarks all run a stage
through these functions; none of them rebuilds a stage's sequence of calls by hand.
"""

from empathy_study.study.annotate import Pushed, add_annotator, agree, pull, push, requeue_skipped, status
from empathy_study.study.audit_plan import AuditReach, audit_reach
from empathy_study.study.build import BuildResult, SampleResult, build_corpus, draw_sample
from empathy_study.study.estimate import DEFAULT_CHECK_REPS, check_reps, estimate, estimate_config, locate_pairs
from empathy_study.study.export import ExportResult, export
from empathy_study.study.judging import (
    JudgeRunResult,
    JudgingPlan,
    ScoresResult,
    export_scores,
    load_sample,
    plan_judging,
    report_judges,
    run_judges,
)
from empathy_study.study.progress import Progress, Step, quiet
from empathy_study.study.provenance import read_scored_pairs
from empathy_study.study.selection import TerminalSampleResult, draw_terminal_sample, export_terminal
from empathy_study.study.workspace import StudyConfig, StudyError, Workspace

__all__ = [
    "AuditReach", "DEFAULT_CHECK_REPS", "Pushed", "audit_reach", "check_reps", "BuildResult", "ExportResult", "JudgeRunResult", "JudgingPlan", "Progress", "SampleResult", "ScoresResult", "Step",
    "StudyConfig", "StudyError", "Workspace", "add_annotator", "agree", "build_corpus", "draw_sample", "estimate", "estimate_config",
    "export", "export_scores", "load_sample", "locate_pairs", "plan_judging", "pull", "push", "quiet", "read_scored_pairs",
    "report_judges", "requeue_skipped", "run_judges", "status", "TerminalSampleResult", "draw_terminal_sample",
    "export_terminal",
]
