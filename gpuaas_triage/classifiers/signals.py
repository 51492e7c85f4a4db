"""What one log line says about failure, before the lines are weighed together.

A line yields at most one Signal. Its ``strength`` records how much the evidence is
worth: fields that name the fault (an authorization decision, an outbox status, a
bootstrap error) outrank a vocabulary error code, which outranks a bare HTTP status,
which outranks the words of the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gpuaas_triage.classifiers.vocabulary import (
    ADAPTER,
    API,
    PROXY,
    RELAY,
    WORKER,
    Category,
    FailureClass,
)
from gpuaas_triage.schemas.log_line import LogLine

STRUCTURED = 3
CODE = 2
STATUS = 1
WORDING = 0

_PERMISSION_CODES = frozenset(
    {
        "insufficient_permissions",
        "permission_denied",
        "forbidden",
        "unauthorized",
        "unauthenticated",
        "access_denied",
        "authz_denied",
        "not_allowlisted",
        "action_not_allowlisted",
        "token_expired",
        "invalid_token",
        "missing_permission",
    }
)
_INVALID_CODES = frozenset(
    {
        "invalid_request",
        "invalid_argument",
        "bad_request",
        "validation_error",
        "validation_failed",
        "failed_precondition",
        "unprocessable_entity",
        "invalid_operating_mode",
        "invalid_action",
        "invalid_state",
        "conflict",
        "out_of_range",
        "already_exists",
        "not_found",
        "missing_project",
        "project_required",
        "invalid_service_account",
    }
)
_STATE_CODES = frozenset({"invalid_state", "conflict", "failed_precondition"})
_UNAVAILABLE_CODES = frozenset(
    {
        "service_unavailable",
        "unavailable",
        "deadline_exceeded",
        "timeout",
        "gateway_timeout",
        "bad_gateway",
        "backend_unavailable",
        "resource_exhausted",
        "too_many_requests",
        "quota_exceeded",
        "connection_refused",
        "upstream_unavailable",
    }
)
_INTERNAL_CODES = frozenset(
    {
        "internal_error",
        "internal",
        "unknown",
        "unhandled_exception",
        "panic",
        "data_loss",
        "unimplemented",
        "internal_server_error",
    }
)

_OUTBOX_FAILED = frozenset(
    {
        "failed",
        "dead",
        "dead_letter",
        "dead_lettered",
        "giving_up",
        "gave_up",
        "exhausted",
        "abandoned",
    }
)
_OUTBOX_DELIVERED = frozenset({"published", "delivered", "sent", "acked"})
_LIFECYCLE_FAILED = frozenset({"failed", "error", "errored", "crashed", "aborted"})
_LIFECYCLE_DONE = frozenset(
    {
        "succeeded",
        "success",
        "ready",
        "completed",
        "complete",
        "healthy",
        "deployed",
        "upgraded",
        "decommissioned",
        "deleted",
        "created",
    }
)
_HEALTHY_INSTANCE_STATES = frozenset(
    {"active", "running", "ready", "healthy", "deployed", "provisioning", "pending"}
)

UNAVAILABLE_TEXT = re.compile(
    r"connection refused|connect: |econnrefused|no endpoints|endpoints? not available|"
    r"unreachable|timed? ?out|deadline exceeded|\bunavailable\b|connection reset|"
    r"no route to host|quota exceeded|throttl|too many requests|rate limit|"
    r"not available|no healthy upstream|\b50[234]\b|no such host|"
    r"name resolution|broken pipe|circuit open|backpressure|saturat",
    re.IGNORECASE,
)
VALIDATION_TEXT = re.compile(
    r"validation|invalid|malformed|schema|must be|required|unsupported|"
    r"not a valid|unknown field|missing",
    re.IGNORECASE,
)
STATE_TEXT = re.compile(
    r"\bstate\b|already (?:decommissioned|deleted|running|exists)|decommissioned|"
    r"not allowed (?:in|while|for)|conflict|in progress|locked",
    re.IGNORECASE,
)
BACKEND_TEXT = re.compile(
    r"backend|runtime|operator|adapter|scheduler|slurm|kubernetes|cluster|\bk8s\b",
    re.IGNORECASE,
)
_DEFECT_EXCEPTIONS = re.compile(
    r"KeyError|AttributeError|TypeError|IndexError|NoneType|nil pointer|"
    r"NullPointer|panic|assert|ZeroDivision|NotImplemented",
)


def norm_code(code: str | None) -> str | None:
    """``PERMISSION-DENIED`` and ``Permission Denied`` become ``permission_denied``."""
    if not code:
        return None
    return re.sub(r"[^a-z0-9]+", "_", code.strip().lower()).strip("_") or None


@dataclass(frozen=True, slots=True)
class Signal:
    """One line's failure evidence and the rule that read it."""

    failure_class: FailureClass
    category: Category
    service: str
    rule: str
    strength: int
    t: float
    index: int
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def error_text(line: LogLine) -> str:
    """The line's own account of the fault: structured fields first, then msg."""
    parts = (line.backend_error, line.error, line.exception, line.bootstrap_error)
    return " | ".join(p for p in parts if p)


def is_hop_success(line: LogLine) -> bool:
    """True when the line reports its hop done, so earlier failures there recovered."""
    if line.level == "error":
        return False
    if line.service == RELAY:
        return (line.outbox_status or "").lower() in _OUTBOX_DELIVERED
    if line.service in (WORKER, ADAPTER):
        return (line.lifecycle_state or "").lower() in _LIFECYCLE_DONE
    if line.service == API:
        status = line.http_status
        return status is not None and 200 <= status < 300 and not line.error_code
    return False


def is_lifecycle_failure(line: LogLine) -> bool:
    return (line.lifecycle_state or "").lower() in _LIFECYCLE_FAILED


def is_outbox_failure(line: LogLine) -> bool:
    return (line.outbox_status or "").lower() in _OUTBOX_FAILED


def is_outbox_delivery(line: LogLine) -> bool:
    return (line.outbox_status or "").lower() in _OUTBOX_DELIVERED


def _fields(line: LogLine, *names: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(line, name)
        if value is not None:
            out[name] = value
    return out


def _invalid_category(line: LogLine, code: str | None) -> Category:
    state = (line.instance_state or "").lower()
    if state and state not in _HEALTHY_INSTANCE_STATES:
        return "lifecycle_state"
    if line.http_status == 409 or code in _STATE_CODES:
        return "lifecycle_state"
    if STATE_TEXT.search(f"{line.msg or ''} {line.error or ''}"):
        return "lifecycle_state"
    return "request_validation"


def _unavailable_category(line: LogLine) -> Category:
    if line.service == RELAY:
        return "async_delivery"
    if line.service in (WORKER, ADAPTER, PROXY):
        return "runtime_backend_adapter"
    if line.backend_error or BACKEND_TEXT.search(
        f"{line.msg or ''} {line.error or ''}"
    ):
        return "runtime_backend_adapter"
    return "async_delivery"


def _class_from_code(code: str | None) -> FailureClass | None:
    if code is None:
        return None
    if code in _PERMISSION_CODES:
        return "insufficient_permissions"
    if code in _INVALID_CODES:
        return "invalid_request"
    if code in _UNAVAILABLE_CODES:
        return "service_unavailable"
    if code in _INTERNAL_CODES:
        return "internal_error"
    if "forbidden" in code or "permission" in code or "unauthori" in code:
        return "insufficient_permissions"
    if "invalid" in code or "validation" in code:
        return "invalid_request"
    if "unavailable" in code or "timeout" in code or "refused" in code:
        return "service_unavailable"
    return None


def _class_from_status(status: int | None) -> FailureClass | None:
    if status is None or status < 400:
        return None
    if status in (401, 403, 407):
        return "insufficient_permissions"
    if status in (429, 502, 503, 504):
        return "service_unavailable"
    if status >= 500:
        return "internal_error"
    return "invalid_request"


def _refine(
    line: LogLine, failure_class: FailureClass, code: str | None
) -> tuple[FailureClass, Category, str]:
    """Give a class its category, and correct what the code alone gets wrong."""
    text = error_text(line)
    words = f"{text} {line.msg or ''}"

    if failure_class == "insufficient_permissions":
        # A backend refusing the platform's own credentials is not the actor's fault.
        backend_side = line.service in (WORKER, ADAPTER) or (code or "").startswith(
            ("backend", "upstream", "runtime")
        )
        if backend_side and line.authz_decision is None:
            return "service_unavailable", "runtime_backend_adapter", "backend_refused"
        return failure_class, "iam_allowlist", "permission"

    if failure_class == "internal_error":
        if UNAVAILABLE_TEXT.search(text) or (
            not text and UNAVAILABLE_TEXT.search(line.msg or "")
        ):
            return (
                "service_unavailable",
                _unavailable_category(line),
                "unavailable_behind_internal_error",
            )
        if (
            VALIDATION_TEXT.search(words)
            and not _DEFECT_EXCEPTIONS.search(words)
            and not line.backend_error
        ):
            return (
                "invalid_request",
                _invalid_category(line, code),
                "validation_wrapped",
            )
        return failure_class, "runtime_backend_adapter", "internal_defect"

    if failure_class == "invalid_request":
        return failure_class, _invalid_category(line, code), "invalid_request"

    return failure_class, _unavailable_category(line), "unavailable"


def _proxy_signal(line: LogLine, index: int, failing: bool) -> Signal | None:
    upstream = line.upstream_status
    fields = _fields(line, "bootstrap_error", "upstream_status", "http_status", "route")
    if line.bootstrap_error:
        return Signal(
            "proxied_ui_bootstrap_failure",
            "runtime_backend_adapter",
            line.service,
            "proxy_bootstrap_error",
            STRUCTURED,
            line.t,
            index,
            fields,
            norm_code(line.bootstrap_error),
        )
    if not failing:
        return None
    text = error_text(line) or (line.msg or "")
    if upstream in (502, 503, 504) or (
        upstream is None and UNAVAILABLE_TEXT.search(text)
    ):
        return Signal(
            "service_unavailable",
            "runtime_backend_adapter",
            line.service,
            "proxy_upstream_unavailable",
            CODE,
            line.t,
            index,
            fields,
            f"upstream_{upstream}" if upstream else "upstream_unreachable",
        )
    # Behind the proxy, a 401/403 comes from the app's own session or origin check:
    # the route exists and the browser bootstrap is what fails.
    return Signal(
        "proxied_ui_bootstrap_failure",
        "runtime_backend_adapter",
        line.service,
        "proxy_route_failing",
        CODE,
        line.t,
        index,
        fields,
        f"upstream_{upstream}" if upstream else norm_code(line.msg),
    )


def signal_for(line: LogLine, index: int) -> Signal | None:
    """The failure evidence of one line, or None if it reports no failure."""
    code = norm_code(line.error_code)
    status = line.http_status
    deny = (line.authz_decision or "").lower() in ("deny", "denied", "forbid")
    failing = (
        line.level == "error"
        or deny
        or (status is not None and status >= 400)
        or _class_from_code(code) is not None
        or is_outbox_failure(line)
        or is_lifecycle_failure(line)
        or bool(line.bootstrap_error)
        or bool(line.exception)
        or (line.service == PROXY and (line.upstream_status or 0) >= 400)
    )
    if line.service == PROXY:
        return _proxy_signal(line, index, failing)
    if not failing:
        return None

    if deny:
        fields = _fields(
            line,
            "authz_decision",
            "authz_reason",
            "allowlisted",
            "http_status",
            "error_code",
        )
        return Signal(
            "insufficient_permissions",
            "iam_allowlist",
            line.service,
            "authz_deny",
            STRUCTURED,
            line.t,
            index,
            fields,
            norm_code(line.authz_reason) or "deny",
        )

    if is_outbox_failure(line):
        fields = _fields(line, "outbox_status", "attempt", "error", "event_id")
        return Signal(
            "service_unavailable",
            "async_delivery",
            line.service,
            "outbox_gave_up",
            STRUCTURED,
            line.t,
            index,
            fields,
            normalise_error(line.error) or "failed",
        )

    structured = bool(line.backend_error or line.exception) and (
        is_lifecycle_failure(line) or line.service in (WORKER, ADAPTER)
    )
    failure_class = _class_from_code(code)
    strength = CODE
    if failure_class is None:
        failure_class = _class_from_status(status)
        strength = STATUS
    if failure_class is None and (line.backend_error or line.exception):
        failure_class = "internal_error"
        strength = STRUCTURED
    if failure_class is None:
        text = f"{error_text(line)} {line.msg or ''}"
        failure_class = (
            "service_unavailable" if UNAVAILABLE_TEXT.search(text) else "internal_error"
        )
        strength = WORDING
    if structured:
        strength = STRUCTURED

    final_class, category, rule = _refine(line, failure_class, code)
    fields = _fields(
        line,
        "error_code",
        "http_status",
        "lifecycle_state",
        "backend_error",
        "exception",
        "instance_state",
        "handler",
    )
    error = (
        code
        or normalise_error(error_text(line))
        or (f"http_{status}" if status else None)
    )
    return Signal(
        final_class,
        category,
        line.service,
        rule,
        strength,
        line.t,
        index,
        fields,
        error,
    )


_VOLATILE = re.compile(
    r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|0x[0-9a-f]+|\b[0-9a-f]{8,}\b|\b\d+\b",
    re.IGNORECASE,
)


def normalise_error(text: str | None) -> str | None:
    """Error text with addresses, ids and numbers taken out, so that the same fault
    reads the same for every tenant."""
    if not text:
        return None
    return _VOLATILE.sub("#", text.strip().lower())[:120]
