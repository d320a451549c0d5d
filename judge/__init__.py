"""Judge stage: a panel of LLMs scores empathy and attachment through instructor + LiteLLM into Pydantic schemas."""

from ._config import JudgeConfig, JudgeSettings, default_panel
from ._diagnostics import judge_report
from ._errors import JudgeError
from ._log import LOG_FILE, JudgmentLog
from ._panel import (
    DryRunLine,
    RunSummary,
    Task,
    dry_run,
    main_tasks,
    open_endpoints,
    plan_panel,
    run_panel,
    swap_tasks,
)
from ._rubric import CONSTRUCTS, Rubric, load_rubric, render_messages, scale_text, study_rubrics
from ._schema import Judgment, JudgmentRecord, Score
from ._scores import judge_scores, panel_scores, records_frame

__all__ = [
    "CONSTRUCTS", "DryRunLine", "Judgment", "JudgmentLog", "JudgmentRecord", "JudgeConfig", "JudgeError",
    "JudgeSettings", "LOG_FILE", "Rubric", "RunSummary", "Score", "Task", "default_panel", "dry_run",
    "judge_report", "judge_scores", "load_rubric", "main_tasks", "open_endpoints", "panel_scores", "plan_panel",
    "records_frame", "render_messages", "run_panel", "scale_text", "study_rubrics", "swap_tasks",
]
