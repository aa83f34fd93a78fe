"""The webhook payload of a new task, as the API and the dashboard validate it.

Its checks are the delivery's own (tasks.actions.webhook), so what is accepted
here is what the executor will send; kept apart so that the executor, which
only delivers, never imports pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.actions.webhook import MAX_URL_CHARS, Method, headers_problem, url_problem


class WebhookPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=MAX_URL_CHARS)
    data: Any = None
    method: Method = "POST"
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if problem := url_problem(value):
            raise ValueError(problem)
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        if problem := headers_problem(value):
            raise ValueError(problem)
        return value
