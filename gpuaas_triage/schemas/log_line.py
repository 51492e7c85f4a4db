"""The log line the platform's services write, as pydantic v2 sees it.

Real services disagree on names and types, so the model accepts the aliases they use,
numbers sent as strings, nulls, and fields it does not know (they are ignored).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

LEVELS = {
    "trace": "debug",
    "debug": "debug",
    "info": "info",
    "information": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "err": "error",
    "error": "error",
    "fatal": "error",
    "critical": "error",
    "crit": "error",
    "panic": "error",
    "alert": "error",
    "emerg": "error",
}


def _aliases(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class LogLine(BaseModel):
    """One JSON log line from gpuaas-api, the outbox relay, the runtime worker,
    an app adapter or the app proxy."""

    # Numbers where text is expected (a numeric error code, a numeric message) are
    # kept as their text rather than costing the line.
    model_config = ConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, coerce_numbers_to_str=True
    )

    ts: datetime = Field(
        validation_alias=_aliases("ts", "timestamp", "time", "@timestamp", "t"),
        description="Event time, RFC 3339 with zone (or epoch seconds/milliseconds).",
    )
    correlation_id: str = Field(
        validation_alias=_aliases(
            "correlation_id",
            "correlationId",
            "request_id",
            "requestId",
            "x_request_id",
            "x-request-id",
            "x-correlation-id",
            "req_id",
        ),
        min_length=1,
        description="The join key carried by API, outbox relay and runtime worker.",
    )
    service: str = Field(
        default="unknown",
        validation_alias=_aliases("service", "service_name", "serviceName", "svc"),
    )
    level: str = Field(
        default="info",
        validation_alias=_aliases("level", "severity", "lvl", "loglevel"),
    )
    msg: str | None = Field(default=None, validation_alias=_aliases("msg", "message"))
    trace_id: str | None = Field(
        default=None, validation_alias=_aliases("trace_id", "traceId", "traceID")
    )

    org_id: str | None = Field(
        default=None, validation_alias=_aliases("org_id", "orgId")
    )
    project_id: str | None = Field(
        default=None, validation_alias=_aliases("project_id", "projectId")
    )
    app_slug: str | None = Field(
        default=None, validation_alias=_aliases("app_slug", "app")
    )
    app_instance_id: str | None = Field(
        default=None, validation_alias=_aliases("app_instance_id", "instance_id")
    )

    actor_type: str | None = None
    actor_id: str | None = None
    operator_service_account_id: str | None = Field(
        default=None,
        validation_alias=_aliases("operator_service_account_id", "service_account_id"),
    )
    action: str | None = None

    operating_mode: str | None = None
    control_plane_scope: str | None = None
    runtime_backend: str | None = None
    tenant_boundary_mode: str | None = None

    http_status: int | None = Field(
        default=None, validation_alias=_aliases("http_status", "status_code", "status")
    )
    error_code: str | None = Field(
        default=None, validation_alias=_aliases("error_code", "errorCode", "code")
    )
    route: str | None = None
    handler: str | None = None

    authz_decision: str | None = None
    authz_reason: str | None = None
    allowlisted: bool | None = None

    service_account_project_id: str | None = None
    service_account_active: bool | None = None
    token_expires_at: datetime | None = None

    instance_project_id: str | None = None
    instance_state: str | None = None

    event_id: str | None = None
    outbox_status: str | None = None
    attempt: int | None = None
    error: str | None = Field(default=None, validation_alias=_aliases("error", "err"))

    lifecycle_state: str | None = None
    backend_error: str | None = None
    exception: str | None = Field(
        default=None, validation_alias=_aliases("exception", "exc_info", "stack")
    )

    upstream_status: int | None = None
    bootstrap_error: str | None = None

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if isinstance(value, str):
            return LEVELS.get(value.strip().lower(), value.strip().lower())
        return value

    @field_validator("ts", "token_expires_at", mode="before")
    @classmethod
    def _epoch(cls, value: Any) -> Any:
        # Epoch numbers arrive in seconds or milliseconds; a value past year 5000
        # in seconds can only be milliseconds.
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = value / 1000 if value > 95_617_584_000 else value
            try:
                return datetime.fromtimestamp(seconds, tz=UTC)
            except (OverflowError, OSError) as exc:
                # The platform's time_t cannot hold it: a bad value, not a crash.
                raise ValueError(f"epoch {value!r} is out of range") from exc
        return value

    @field_validator("ts", "token_expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A timestamp without a zone is read as UTC, as Loki does.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        if value is not None:
            try:
                value.astimezone(UTC)
            except OverflowError as exc:
                # Event time is compared in UTC; one that leaves the calendar there
                # (a zoned year 1 or 9999) cannot be ordered against other lines.
                raise ValueError(f"{value.isoformat()} is out of range in UTC") from exc
        return value

    @field_validator(
        "correlation_id",
        "trace_id",
        "org_id",
        "project_id",
        "app_slug",
        "app_instance_id",
        "event_id",
        "actor_id",
        "operator_service_account_id",
        "service_account_project_id",
        "instance_project_id",
        mode="before",
    )
    @classmethod
    def _id(cls, value: Any) -> Any:
        # Ids sent as numbers are still ids; blank ones are absent.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @property
    def t(self) -> float:
        """Event time as epoch seconds."""
        return self.ts.timestamp()
