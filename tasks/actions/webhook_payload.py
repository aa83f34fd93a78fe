"""The webhook payload of a new task, as the API and the dashboard validate it.

Its checks are the delivery's own (tasks.actions.webhook_rules and .limits),
so what is accepted here is what the executor will send; kept apart so that
the executor, which only delivers, never imports pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.actions import limits
from tasks.actions.webhook import Method
from tasks.actions.webhook_rules import (
    FIELD_VALUE_PATTERN,
    MAX_HEADER_NAME_CHARS,
    MAX_HEADER_VALUE_CHARS,
    MAX_HEADERS,
    MAX_URL_CHARS,
    TOKEN_PATTERN,
    headers_problem,
    normalise_url,
)

DATA_RULES = (
    f"Any JSON, sent as the request body. At most {limits.MAX_DEPTH} levels of nesting, "
    f"object keys of at most {limits.MAX_KEY_CHARS} characters, strings of at most "
    f"{limits.MAX_STRING_CHARS}, integers between -2**63 and 2**63-1, valid Unicode "
    "(no lone surrogates), no NaN or Infinity; the whole payload at most "
    "TASK_MAX_PAYLOAD_BYTES (64 KiB by default) as JSON."
)


class WebhookPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        max_length=MAX_URL_CHARS,
        description=(
            "http:// or https://, with a host and no credentials. Normalised: an "
            "internationalised host is stored in its xn-- form, spaces and non-ASCII "
            "in the path and query percent-encoded (UTF-8). Refused: control "
            "characters, a backslash before the query, IPv4 forms other than a.b.c.d, "
            "addresses in internal, metadata or reserved ranges. At most "
            f"{MAX_URL_CHARS} characters once encoded."
        ),
        json_schema_extra={"format": "uri"},
    )
    data: Any = Field(None, description=DATA_RULES)
    method: Method = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict,
        description=(
            f"At most {MAX_HEADERS}. Names are HTTP tokens of at most "
            f"{MAX_HEADER_NAME_CHARS} characters, each once (case-insensitive), not one "
            "the scheduler sets (Host, Content-Type, Content-Length, User-Agent, "
            "webhook-*, connection headers). Values are RFC 9110 field values in "
            f"printable ASCII, at most {MAX_HEADER_VALUE_CHARS} characters, without "
            "surrounding whitespace; sent exactly as given."
        ),
        json_schema_extra={
            "maxProperties": MAX_HEADERS,
            "propertyNames": {"pattern": f"^{TOKEN_PATTERN}$", "maxLength": MAX_HEADER_NAME_CHARS},
            "additionalProperties": {
                "type": "string",
                "pattern": f"^{FIELD_VALUE_PATTERN}$",
                "maxLength": MAX_HEADER_VALUE_CHARS,
            },
        },
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        return normalise_url(value)  # ValueError says why not

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        if problem := headers_problem(value):
            raise ValueError(problem)
        return value

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: Any) -> Any:
        # NaN and Infinity: services.creation.task_validate reports them for the
        # whole payload.
        if problem := limits.json_problem(value, allow_nan=True):
            raise ValueError(problem)
        return value
