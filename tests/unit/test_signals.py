"""What one log line says about failure, and how much that evidence is worth."""

from __future__ import annotations

from typing import Any

import pytest
from factories import ADAPTER, API, PROXY, RELAY, WORKER, log_line, relay, to_log_line
from factories import worker as worker_line

from gpuaas_triage.classifiers.signals import (
    CODE,
    STATUS,
    STRUCTURED,
    WORDING,
    error_text,
    is_hop_success,
    norm_code,
    normalise_error,
    signal_for,
)


def signal(**fields: Any) -> Any:
    return signal_for(to_log_line(log_line(**fields)), 0)


@pytest.mark.parametrize(
    "fields",
    [
        {"msg": "deploy done; error budget 99.9% intact"},
        {"msg": "retrying on error is enabled", "http_status": 200},
        {"service": WORKER, "lifecycle_state": "succeeded", "msg": "0 errors"},
        {"service": RELAY, "outbox_status": "published", "msg": "error queue empty"},
        {"service": PROXY, "upstream_status": 200, "msg": "error page cached"},
        {"level": "warn", "msg": "slow request", "http_status": 201},
    ],
    ids=["api-msg", "api-200", "worker-done", "relay-published", "proxy-ok", "warn"],
)
def test_healthy_line_gives_no_signal(fields: dict[str, Any]) -> None:
    """A line that reports no failure gives no signal, whatever words it uses."""
    found = signal(**fields)

    assert found is None


@pytest.mark.parametrize(
    ("code", "normal"),
    [
        ("PERMISSION_DENIED", "permission_denied"),
        ("Permission-Denied", "permission_denied"),
        ("  internal error ", "internal_error"),
        ("--", None),
        ("", None),
        (None, None),
    ],
)
def test_norm_code(code: str | None, normal: str | None) -> None:
    """Error codes compare in one spelling: lower snake case, or None when empty."""
    result = norm_code(code)

    assert result == normal


def test_normalise_error_takes_out_what_varies_per_tenant() -> None:
    """Addresses, ports, hex ids and numbers vanish, so one fault reads the same for
    every tenant."""
    first = "dial tcp 10.0.0.7:443: connect: connection refused (pod 7f3a9c01)"
    second = "Dial tcp 172.16.4.21:8443: connect: connection refused (pod 00be12ff)"

    assert normalise_error(first) == normalise_error(second)
    assert "10.0.0.7" not in (normalise_error(first) or "")


def test_normalise_error_is_bounded() -> None:
    """A huge error text yields a bounded shape key."""
    result = normalise_error("x" * 10_000)

    assert result is not None
    assert len(result) <= 120


def test_error_text_joins_structured_fields() -> None:
    """The line's own account of a fault joins backend_error, error, exception and
    bootstrap_error, leaving the message out."""
    line = to_log_line(
        log_line(
            msg="ignored", backend_error="quota exhausted", exception="TimeoutError"
        )
    )

    text = error_text(line)

    assert text == "quota exhausted | TimeoutError"


@pytest.mark.parametrize(
    ("fields", "strength"),
    [
        ({"authz_decision": "denied", "http_status": 403}, STRUCTURED),
        ({"service": RELAY, "outbox_status": "exhausted"}, STRUCTURED),
        ({"service": PROXY, "bootstrap_error": "csp_blocked"}, STRUCTURED),
        ({"service": WORKER, "lifecycle_state": "failed", "backend_error": "x"},
         STRUCTURED),
        ({"level": "error", "http_status": 500, "error_code": "UNAVAILABLE"}, CODE),
        ({"level": "error", "http_status": 422}, STATUS),
        ({"level": "error", "msg": "upstream went away"}, WORDING),
    ],
    ids=["authz", "outbox", "bootstrap", "lifecycle", "code", "status", "wording"],
)
def test_strength_ranks_the_evidence(fields: dict[str, Any], strength: int) -> None:
    """Fields that name the fault outrank a code, which outranks a status, which
    outranks the message's words."""
    found = signal(**fields)

    assert found is not None
    assert found.strength == strength


def test_outbox_giving_up_is_async_delivery() -> None:
    """The relay giving up on an event is an async-delivery outage."""
    line = to_log_line(relay(3, "gave_up", level="error", error="broker timeout"))

    found = signal_for(line, 0)

    assert found is not None
    assert (found.failure_class, found.category) == (
        "service_unavailable",
        "async_delivery",
    )


def test_outbox_retry_is_not_yet_a_failure() -> None:
    """A relay retrying (a warning, no status) is not failure evidence on its own."""
    line = to_log_line(relay(1, "retrying", level="warn", error="broker timeout"))

    found = signal_for(line, 0)

    assert found is None


@pytest.mark.parametrize("service", [WORKER, ADAPTER])
def test_backend_refusing_the_platform_is_not_the_actors_fault(service: str) -> None:
    """A 403 the backend gives the platform's own worker or adapter is a backend
    outage, not the actor's missing permission."""
    line = to_log_line(
        log_line(
            service=service, level="error", error_code="permission_denied",
            lifecycle_state="failed", backend_error="clusterrole cannot patch pods",
        )
    )

    found = signal_for(line, 0)

    assert found is not None
    assert (found.failure_class, found.category) == (
        "service_unavailable",
        "runtime_backend_adapter",
    )


def test_api_denial_with_an_authz_decision_stays_a_permission_fault() -> None:
    """A permission code next to an authorization decision is the actor's fault."""
    found = signal(
        level="error", http_status=403, error_code="access_denied",
        authz_decision="deny", authz_reason="missing role apps.editor",
    )

    assert found is not None
    assert (found.failure_class, found.category) == (
        "insufficient_permissions",
        "iam_allowlist",
    )


@pytest.mark.parametrize(
    ("line", "success"),
    [
        (relay(1, "delivered"), True),
        (relay(1, "retrying"), False),
        (worker_line(9, "ready"), True),
        (worker_line(9, "running"), False),
        (log_line(http_status=202), True),
        (log_line(http_status=200, error_code="partial_failure"), False),
        (log_line(http_status=204, level="error"), False),
        (log_line(service=PROXY, upstream_status=200), False),
    ],
    ids=["relay-delivered", "relay-retrying", "worker-ready", "worker-running",
         "api-2xx", "api-2xx-with-code", "error-level", "proxy"],
)
def test_hop_success(line: dict[str, Any], success: bool) -> None:
    """A hop reports success through its own field, never on an error line."""
    result = is_hop_success(to_log_line(line))

    assert result is success


def test_signal_records_the_failing_service_and_time() -> None:
    """A signal names the service it came from and the line's event time."""
    line = to_log_line(log_line(42, service=API, level="error", http_status=504))

    found = signal_for(line, 7)

    assert found is not None
    assert (found.service, found.t, found.index) == (API, line.t, 7)
    assert found.error == "http_504"
