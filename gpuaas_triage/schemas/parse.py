"""Raw bytes in, a LogLine or a DeadLetter out: never an exception."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import ValidationError

from gpuaas_triage.schemas.dead_letter import DeadLetter, DeadLetterReason
from gpuaas_triage.schemas.log_line import LogLine
from gpuaas_triage.schemas.source import SourceRef

logger = logging.getLogger(__name__)

#: Topic-name fragments that name the service when a line does not.
_TOPIC_SERVICES = (
    ("outbox", "gpuaas-outbox-relay"),
    ("runtime-worker", "gpuaas-app-runtime-worker"),
    ("adapter", "gpuaas-app-adapter"),
    ("proxy", "gpuaas-app-proxy"),
    ("api", "gpuaas-api"),
)

_TIME_FIELDS = ("ts", "token_expires_at")
_ID_FIELDS = ("correlation_id",)


def service_for_topic(topic: str) -> str | None:
    """The service a per-service topic carries, or None for a shared topic."""
    lowered = topic.lower()
    for fragment, service in _TOPIC_SERVICES:
        if fragment in lowered:
            return service
    return None


def _reason(error: ValidationError) -> tuple[DeadLetterReason, str]:
    first = error.errors(include_url=False)[0]
    field = str(first["loc"][0]) if first["loc"] else "?"
    detail = f"{field}: {first['msg']} (got {first.get('input')!r:.80})"
    if field in _ID_FIELDS:
        return "missing_correlation_id", detail + "; send correlation_id or request_id"
    if field in _TIME_FIELDS:
        if first["type"] == "missing":
            return "missing_timestamp", detail + "; send ts as RFC 3339 with zone"
        return "bad_timestamp", detail + "; send ts as RFC 3339 with zone"
    return "wrong_type", detail


def parse_line(
    raw: bytes, source: SourceRef, *, max_bytes: int, topic_service: str | None = None
) -> LogLine | DeadLetter:
    """Decode one raw log line.

    ``topic_service`` names the service for lines that leave it out (a per-service
    topic); a line's own ``service`` field always wins.
    """
    if len(raw) > max_bytes:
        return DeadLetter.build(
            "too_large",
            f"line is {len(raw)} bytes, over the {max_bytes}-byte limit "
            "(TRIAGE_MAX_LINE_BYTES)",
            raw,
            source,
        )

    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DeadLetter.build("invalid_utf8", str(exc), raw, source)

    try:
        obj: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return DeadLetter.build("invalid_json", str(exc), raw, source)

    if not isinstance(obj, dict):
        kind = type(obj).__name__
        return DeadLetter.build(
            "not_an_object",
            f"a log line must be a JSON object, got {kind}",
            raw,
            source,
        )

    # A null field is a field the line does not know: absent, so that defaults,
    # aliases and the topic's service apply to it.
    obj = {name: value for name, value in obj.items() if value is not None}
    if topic_service and "service" not in obj:
        obj["service"] = topic_service

    try:
        return LogLine.model_validate(obj)
    except ValidationError as exc:
        reason, detail = _reason(exc)
        return DeadLetter.build(reason, detail, raw, source)
