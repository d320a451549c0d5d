"""Typed judge configuration: one `[[judges]]` table per judge, plus the `[judge]` settings."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class JudgeConfig(BaseModel):
    """One judge of the panel. Keys never live here: `api_key_env` names the variable holding it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the judge's name in logs, scores and reports")
    model: str = Field(description="any LiteLLM model string, or local/smollm2 / local/gemma3-270m")
    api_base: str | None = Field(None, description="for OpenAI-compatible servers (vLLM, Ollama, llama.cpp …)",
                                 examples=["http://127.0.0.1:8000/v1"])
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key",
                                    examples=["OPENAI_API_KEY"])
    temperature: float = Field(0.0, ge=0, le=2, description="sampling temperature; part of the judge's identity "
                                                                  "(another temperature is another judge)")
    samples: int = Field(1, ge=1, le=20, description="repeat draws per item (test–retest)")
    rpm: float | None = Field(None, gt=0, description="requests per minute allowed by the provider", examples=[500])
    concurrency: int = Field(4, ge=1, le=512, description="calls in flight at once")
    logprobs: bool = Field(False, description="ask for token logprobs and record the expected score")
    fallbacks: list[str] = Field(default_factory=list, description="models tried, in order, when this one keeps failing")
    max_tokens: int = Field(256, ge=16, description="longest answer (tokens) a call may return; --max-cost "
                                                     "reserves this much output per call")
    timeout: float = Field(120, gt=0, description="seconds per call")
    latency: float | None = Field(None, gt=0, description="seconds a call takes: the dry run's time estimate "
                                                          "until the log has measured this judge", examples=[2.0])
    retries: int = Field(4, ge=0, description="retries with backoff on 429 / 5xx / timeouts within one run")
    schema_in_response_format: bool | None = Field(
        None, description="send the JSON schema inside response_format json_object (llama.cpp grammar); "
                          "default: on for local models only", examples=[True],
    )
    batch: bool = Field(False, description="send this judge's calls as provider batches (OpenAI batch format, "
                                           "through LiteLLM's files/batches API): submitted by one run, collected by a later one")
    input_cost_per_million: float | None = Field(None, ge=0, description="price (USD) per million input tokens "
                                                                          "when LiteLLM does not know it; for a batch "
                                                                          "judge, its batch price", examples=[0.15])
    output_cost_per_million: float | None = Field(None, ge=0, description="price (USD) per million output tokens, "
                                                                           "likewise", examples=[0.6])

    @field_validator("api_key_env")
    @classmethod
    def _looks_like_a_variable(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable (the key itself never goes in study.toml)")
        return value

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value.strip() or "/" in value:
            raise ValueError("a judge name must be non-empty and contain no '/'")
        return value


class JudgeSettings(BaseModel):
    """The `[judge]` table: what applies to the whole panel."""

    model_config = ConfigDict(extra="forbid")

    attachment_context: list[Literal["prompt", "response", "reply"]] = Field(
        default_factory=lambda: ["prompt", "reply"],
        description="what raters of attachment see; adding 'response' lets the outcome absorb the treatment",
    )
    max_attempts: int = Field(3, ge=1, description="runs that may retry an item that failed")
    validation_retries: int = Field(1, ge=0, description="re-asks after an answer that breaks the schema")
    swap_check_pairs: int = Field(20, ge=0, description="attachment pairs re-judged with the response shown / swapped")
    negative_control: bool = Field(False, description="also score prompt_attachment — the attachment the prompt "
                                                      "already expresses (a negative-control outcome; one more call "
                                                      "per pair and judge)")


def default_panel() -> list[JudgeConfig]:
    return [JudgeConfig(name="smollm2", model="local/smollm2", concurrency=1, logprobs=True)]
