"""Weighing one tenant's lines into a failure class, a category and the why."""

from __future__ import annotations

from typing import Any

import pytest
from factories import (
    ADAPTER,
    PROXY,
    WORKER,
    accepted,
    final_incidents,
    healthy_action,
    log_line,
    only_incident,
    relay,
    replay,
    service_account,
    to_log_lines,
    worker,
)

from gpuaas_triage.classifiers.checks import Finding, run_checks
from gpuaas_triage.classifiers.guidance import PROXIED_UI_RUNBOOK, RECOVERY
from gpuaas_triage.classifiers.lineage import trace
from gpuaas_triage.classifiers.verdict import Verdict, decide

Lines = list[dict[str, Any]]


def verdict_of(lines: Lines, now: float = float("inf")) -> Verdict | None:
    """The verdict of one tenant's lines, as the correlator reaches it."""
    ordered = to_log_lines(lines)
    lineage = trace(ordered, now=now, deadline=60.0)
    findings = [*run_checks(ordered), Finding("lineage_gap", lineage.status, "")]
    return decide(ordered, findings, lineage)


def failing(seconds: float = 0.5, **fields: Any) -> dict[str, Any]:
    """An error line, with the fields that say what failed."""
    return log_line(seconds, **({"level": "error", "msg": "request failed"} | fields))


PLAIN = [
    pytest.param(
        [log_line(0, **service_account()),
         failing(**service_account(allowlisted=False), http_status=403,
                 error_code="insufficient_permissions", authz_decision="deny")],
        "insufficient_permissions", "iam_allowlist",
        id="permission-allowlist",
    ),
    pytest.param(
        [failing(http_status=400, error_code="invalid_argument",
                 msg="replicas must be between 1 and 8")],
        "invalid_request", "request_validation",
        id="invalid-validation",
    ),
    pytest.param(
        [failing(action="rollback", http_status=422, error_code="failed_precondition",
                 instance_state="terminated")],
        "invalid_request", "lifecycle_state",
        id="invalid-lifecycle-state",
    ),
    pytest.param(
        [accepted(0), relay(2, "dead", level="error", attempt=7,
                            error="produce: NOT_ENOUGH_REPLICAS")],
        "service_unavailable", "async_delivery",
        id="unavailable-async",
    ),
    pytest.param(
        [accepted(0), relay(0.3), worker(0.8),
         worker(14, "errored", level="error", backend_error="no route to host")],
        "service_unavailable", "runtime_backend_adapter",
        id="unavailable-backend",
    ),
    pytest.param(
        [accepted(0), relay(0.3), worker(0.8),
         worker(1.1, "crashed", level="error",
                exception="AttributeError: 'NoneType' object has no attribute 'gpus'")],
        "internal_error", "runtime_backend_adapter",
        id="internal-defect",
    ),
    pytest.param(
        [log_line(0, app_slug="volcano-batch", handler="core.allocations.reserve"),
         failing(app_slug="volcano-batch", handler="core.allocations.reserve",
                 http_status=500, error_code="INTERNAL")],
        "internal_error", "platform_primitive_gap",
        id="internal-primitive-gap",
    ),
    pytest.param(
        [log_line(0, service=PROXY, upstream_status=200, msg="route served"),
         log_line(0.2, service=PROXY, level="error", msg="launcher failed",
                  bootstrap_error="websocket_upgrade_blocked")],
        "proxied_ui_bootstrap_failure", "runtime_backend_adapter",
        id="proxied-ui",
    ),
]


@pytest.mark.parametrize(("lines", "failure_class", "category"), PLAIN)
def test_plain_failures(lines: Lines, failure_class: str, category: str) -> None:
    """Each failure class and each category is reached on a plain case of it."""
    verdict = verdict_of(lines)

    assert verdict is not None
    assert (verdict.failure_class, verdict.category) == (failure_class, category)


def test_plain_cases_cover_the_whole_vocabulary() -> None:
    """The plain cases above reach all five classes and all six categories."""
    classes = {param.values[1] for param in PLAIN}
    categories = {param.values[2] for param in PLAIN}

    assert len(classes) == 5
    assert categories == set(RECOVERY)


OUTSIDE_VOCABULARY = [
    pytest.param(
        [failing(http_status=403, error_code="PERMISSION_DENIED")],
        "insufficient_permissions", "iam_allowlist",
        id="PERMISSION_DENIED",
    ),
    pytest.param(
        [failing(http_status=401, error_code="Unauthenticated")],
        "insufficient_permissions", "iam_allowlist",
        id="Unauthenticated",
    ),
    pytest.param(
        [accepted(0), relay(0.2), worker(0.5),
         worker(3, "failed", level="error", error_code="BACKEND_FORBIDDEN",
                backend_error="serviceaccount cannot create statefulsets")],
        "service_unavailable", "runtime_backend_adapter",
        id="BACKEND_FORBIDDEN-from-worker",
    ),
    pytest.param(
        [log_line(0, service=ADAPTER, level="error", error_code="UpstreamForbidden",
                  app_slug="kubeflow", msg="operator rejected credentials")],
        "service_unavailable", "runtime_backend_adapter",
        id="UpstreamForbidden-from-adapter",
    ),
    pytest.param(
        [failing(http_status=503)],
        "service_unavailable", None,
        id="bare-503",
    ),
    pytest.param(
        [failing(http_status=500, error_code="internal_error",
                 exception="pydantic_core.ValidationError: 1 validation error for "
                           "ScaleSpec gpus Input should be greater than 0")],
        "invalid_request", "request_validation",
        id="500-wrapping-validation",
    ),
    pytest.param(
        [failing(http_status=500, exception="jsonschema.ValidationError: 'image' is "
                                            "a required property")],
        "invalid_request", "request_validation",
        id="500-wrapping-schema-error",
    ),
    pytest.param(
        [failing(http_status=500, error_code="E_INTERNAL",
                 exception="KeyError: 'required_gpus'")],
        "internal_error", "runtime_backend_adapter",
        id="500-keyerror-mentioning-required",
    ),
]


@pytest.mark.parametrize(("lines", "failure_class", "category"), OUTSIDE_VOCABULARY)
def test_codes_outside_the_vocabulary(
    lines: Lines, failure_class: str, category: str | None
) -> None:
    """Codes the platform does not use are read by what they mean and by who said
    them."""
    verdict = verdict_of(lines)

    assert verdict is not None
    assert verdict.failure_class == failure_class
    if category is not None:
        assert verdict.category == category


def test_healthy_action_whose_text_mentions_error_is_no_incident() -> None:
    """A deploy that succeeds is no incident, even when its messages talk of errors."""
    lines = healthy_action(correlation_id="req-ok-41", action="deploy")
    lines[-1]["msg"] = "rollout complete; error-rate alert and errors dashboard created"
    lines[1]["msg"] = "published to error-handling topic"

    found = final_incidents(replay(lines))

    assert found == []


@pytest.mark.parametrize(
    "fields",
    [
        {"backend_error": "no endpoints available for service \"ray-head\""},
        {"msg": "no endpoints available for service triton-svc"},
        {"backend_error": "upstream connect error: connection refused"},
    ],
    ids=["backend_error", "msg-only", "connection-refused"],
)
def test_internal_error_code_over_a_missing_backend_is_unavailable(
    fields: dict[str, Any]
) -> None:
    """An "internal error" code whose own text says the backend has no endpoints
    is a service outage, not a defect."""
    lines = [
        accepted(0), relay(0.2), worker(0.4),
        worker(2, "failed", level="error", error_code="Internal Error", **fields),
    ]

    verdict = verdict_of(lines)

    assert verdict is not None
    assert (verdict.failure_class, verdict.category) == (
        "service_unavailable",
        "runtime_backend_adapter",
    )


@pytest.mark.parametrize("status", [401, 403])
def test_proxy_session_rejection_is_a_proxied_ui_failure(status: int) -> None:
    """A 401/403 from the app's own session or origin check behind gpuaas-app-proxy
    is a proxied UI bootstrap failure, handled by the proxied app UI runbook."""
    lines = [
        log_line(0, service=PROXY, app_slug="grafana-lab", upstream_status=200,
                 msg="route served"),
        log_line(0.4, service=PROXY, app_slug="grafana-lab", level="warn",
                 upstream_status=status, http_status=status,
                 msg="upstream rejected request: origin not allowed"),
    ]

    incident = only_incident(lines)

    assert incident.failure_class == "proxied_ui_bootstrap_failure"
    assert incident.runbook == PROXIED_UI_RUNBOOK
    assert incident.recovery is not None and "proxied app UI" in incident.recovery


def test_proxy_upstream_down_is_unavailable_not_bootstrap() -> None:
    """A proxy whose upstream answers 502 reports an outage, not a UI bootstrap
    fault."""
    lines = [
        log_line(0, service=PROXY, level="error", upstream_status=502,
                 msg="upstream unavailable"),
    ]

    verdict = verdict_of(lines)

    assert verdict is not None
    assert (verdict.failure_class, verdict.category) == (
        "service_unavailable",
        "runtime_backend_adapter",
    )


@pytest.mark.parametrize(
    ("app_slug", "backend", "handler"),
    [
        ("ray-serve", "kubernetes", "core.allocations.scale"),
        ("batch-lab", "pbs", "compute.core.allocate_nodes"),
        ("argo-workflows", "kubernetes", "api.AllocationHandler.create"),
    ],
)
def test_scheduler_through_core_handler_escalates_as_primitive_gap(
    app_slug: str, backend: str, handler: str
) -> None:
    """A scheduler or operator app served by a core handler is a platform primitive
    gap and goes to the platform team."""
    common = {"app_slug": app_slug, "runtime_backend": backend, "handler": handler}
    lines = [
        log_line(0, **common),
        failing(0.3, http_status=500, error_code="internal_error", **common),
    ]

    incident = only_incident(lines)

    assert incident.category == "platform_primitive_gap"
    assert incident.escalate is True
    assert incident.escalation_reason and "core handler" in incident.escalation_reason
    assert "scheduler_via_core_handler" in incident.checks_failed


def test_stronger_evidence_decides() -> None:
    """An authorization denial outranks a bare 500 logged for the same request."""
    lines = [
        failing(0.1, authz_decision="deny", authz_reason="role missing"),
        failing(0.2, service=WORKER, http_status=500),
    ]

    verdict = verdict_of(lines)

    assert verdict is not None
    assert verdict.failure_class == "insufficient_permissions"
    assert verdict.rule == "authz_deny"


def test_retry_that_recovered_is_no_verdict() -> None:
    """A failure on a hop followed by success on the same hop is no failure."""
    lines = [
        accepted(0), relay(0.2), worker(0.5),
        worker(3, "failed", level="error", backend_error="TLS handshake timeout"),
        worker(9, "running", attempt=2),
        worker(40, "succeeded"),
    ]

    verdict = verdict_of(lines)

    assert verdict is None


def test_lineage_gap_alone_is_async_delivery() -> None:
    """With no failing line, an action lost between hops is an async-delivery outage
    at the first missing hop."""
    lines = [accepted(0), relay(0.5)]

    verdict = verdict_of(lines, now=1_000_000_000_000.0)

    assert verdict is not None
    assert (verdict.failure_class, verdict.category, verdict.rule) == (
        "service_unavailable",
        "async_delivery",
        "lineage_deadline",
    )
    assert verdict.failing_service == WORKER


def test_api_outage_with_a_lineage_gap_is_async_delivery() -> None:
    """An API-side outage while the action is lost between hops is filed as async
    delivery, where recovery starts."""
    lines = [
        accepted(0),
        log_line(1, level="error", error_code="deadline_exceeded",
                 msg="status poll timed out"),
    ]

    verdict = verdict_of(lines, now=1_000_000_000_000.0)

    assert verdict is not None
    assert (verdict.failure_class, verdict.category) == (
        "service_unavailable",
        "async_delivery",
    )


def test_incoherent_metadata_makes_an_invalid_request_a_validation_fault() -> None:
    """An invalid request whose runtime metadata is incoherent is a malformed request,
    whatever state words its message uses."""
    lines = [
        failing(operating_mode="platform_managed", control_plane_scope="project",
                http_status=400, error_code="invalid_request",
                msg="request conflicts with plane settings"),
    ]

    verdict = verdict_of(lines)

    assert verdict is not None
    assert (verdict.failure_class, verdict.category) == (
        "invalid_request",
        "request_validation",
    )


def test_no_failure_no_verdict() -> None:
    """Lines that report nothing wrong, with no action pending, give no verdict."""
    lines = [log_line(0, action="list", http_status=200)]

    verdict = verdict_of(lines)

    assert verdict is None


def test_incident_carries_recovery_for_its_category() -> None:
    """An incident names the runbook's recovery step for its category."""
    lines = [accepted(0), relay(1, "failed", level="error", error="queue full")]

    incident = only_incident(lines)

    assert incident.recovery == RECOVERY["async_delivery"]
    assert incident.runbook == "operator-incident"


def test_incident_explanation_redacts_secrets() -> None:
    """What decided the verdict is published without the secrets a line carried."""
    lines = [
        accepted(0), relay(0.2), worker(0.4),
        worker(2, "failed", level="error",
               backend_error="auth to registry failed: password=Qq7-very-secret"),
    ]

    incident = only_incident(lines)

    assert incident.explanation is not None
    assert "Qq7-very-secret" not in str(incident.explanation.decided_by)
    assert "Qq7-very-secret" not in incident.model_dump_json()
