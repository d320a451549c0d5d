"""Judge stage: a panel of LLMs scores empathy and attachment through instructor + LiteLLM into Pydantic schemas."""

from ._batch import (
    BATCHES_FILE,
    Batch,
    BatchLedger,
    BatchReport,
    batch_price_per_token,
    batch_target,
    hold_in_flight,
    split_budget,
    within_budget,
)
from ._batch import poll as poll_batches
from ._batch import submit_all as submit_batches
from ._config import JudgeConfig, JudgeSettings, default_panel
from ._diagnostics import is_sentence, judge_matrix, judge_report, judge_warnings, retest_matrices, study_judge_note
from ._errors import JudgeError
from ._log import LOG_FILE, RUNS_FILE, JudgmentLog, LogState
from ._panel import (
    EXPECTED_TOKENS_OUT,
    DryRunLine,
    JudgePlan,
    RunSummary,
    Task,
    dry_run,
    main_tasks,
    open_endpoints,
    panel_seconds,
    plan_panel,
    run_panel,
    swap_tasks,
)
from ._rubric import (
    CONSTRUCTS,
    CONTROLS,
    Rubric,
    control_rubrics,
    load_rubric,
    render_messages,
    rubric_bytes,
    scale_text,
    study_rubrics,
    swap_check_rubrics,
)
from ._schema import Judgment, JudgmentRecord, Score
from ._scores import (
    SCORE_COLUMNS,
    VERSION_SCORE_COLUMNS,
    current_judgments,
    first_draws,
    judge_scores,
    of_panel,
    panel_scores,
    records_frame,
    version_scores,
)

__all__ = [
    "BATCHES_FILE", "Batch", "BatchLedger", "BatchReport", "batch_price_per_token", "batch_target", "hold_in_flight", "poll_batches",
    "split_budget", "submit_batches", "within_budget",
    "CONSTRUCTS", "CONTROLS", "control_rubrics", "DryRunLine", "EXPECTED_TOKENS_OUT", "JudgePlan", "Judgment", "JudgmentLog", "JudgmentRecord", "JudgeConfig", "JudgeError",
    "JudgeSettings", "LOG_FILE", "LogState", "RUNS_FILE", "Rubric", "RunSummary", "Score", "Task",
    "current_judgments", "default_panel", "dry_run", "first_draws", "is_sentence", "judge_matrix", "judge_report",
    "judge_scores", "judge_warnings", "study_judge_note", "load_rubric", "main_tasks", "of_panel", "open_endpoints", "panel_scores",
    "panel_seconds", "plan_panel", "records_frame", "render_messages", "retest_matrices", "rubric_bytes", "run_panel",
    "scale_text", "study_rubrics", "swap_check_rubrics", "SCORE_COLUMNS", "VERSION_SCORE_COLUMNS", "version_scores",
    "swap_tasks",
]
