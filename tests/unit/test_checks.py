"""The runbook's boundary, service-account and operating-mode checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from factories import (
    ADAPTER,
    WORKER,
    accepted,
    at,
    check_status,
    log_line,
    only_incident,
    relay,
    service_account,
    to_log_lines,
    worker,
)

from gpuaas_triage.classifiers import checks
from gpuaas_triage.classifiers.checks import Finding, run_checks
from gpuaas_triage.schemas.log_line import LogLine

Check = Callable[[Sequence[LogLine]], Finding]


def sa_line(seconds: float = 0.0, **overrides: Any) -> dict[str, Any]:
    """A line of a healthy same-project service account, with overrides."""
    return log_line(seconds, **(service_account() | overrides))


CASES: list[Any] = [
    # instance_project_mismatch
    pytest.param(
        checks.instance_project_mismatch,
        [log_line(instance_project_id="prj-halcyon-research")],
        "failed",
        id="instance_project_mismatch-failed",
    ),
    pytest.param(
        checks.instance_project_mismatch,
        [log_line(instance_project_id="prj-halcyon-batch")],
        "passed",
        id="instance_project_mismatch-passed",
    ),
    pytest.param(
        checks.instance_project_mismatch,
        [log_line()],
        "unknown",
        id="instance_project_mismatch-unknown",
    ),
    # service_account_foreign_project
    pytest.param(
        checks.service_account_foreign_project,
        [sa_line(service_account_project_id="prj-lyra-infer")],
        "failed",
        id="service_account_foreign_project-failed",
    ),
    pytest.param(
        checks.service_account_foreign_project,
        [sa_line(service_account_project_id=None, authz_reason="SA_CROSS_PROJECT")],
        "failed",
        id="service_account_foreign_project-failed-by-reason",
    ),
    pytest.param(
        checks.service_account_foreign_project,
        [sa_line()],
        "passed",
        id="service_account_foreign_project-passed",
    ),
    pytest.param(
        checks.service_account_foreign_project,
        [sa_line(service_account_project_id=None)],
        "unknown",
        id="service_account_foreign_project-unknown",
    ),
    # service_account_inactive
    pytest.param(
        checks.service_account_inactive,
        [sa_line(service_account_active=False)],
        "failed",
        id="service_account_inactive-failed",
    ),
    pytest.param(
        checks.service_account_inactive,
        [sa_line(service_account_active=None, authz_reason="service_account_disabled")],
        "failed",
        id="service_account_inactive-failed-by-reason",
    ),
    pytest.param(
        checks.service_account_inactive,
        [sa_line()],
        "passed",
        id="service_account_inactive-passed",
    ),
    pytest.param(
        checks.service_account_inactive,
        [sa_line(service_account_active=None)],
        "unknown",
        id="service_account_inactive-unknown",
    ),
    # service_account_token_expired
    pytest.param(
        checks.service_account_token_expired,
        [sa_line(3600, token_expires_at=at(1800))],
        "failed",
        id="service_account_token_expired-failed",
    ),
    pytest.param(
        checks.service_account_token_expired,
        [sa_line(authz_reason="token expired")],
        "failed",
        id="service_account_token_expired-failed-by-reason",
    ),
    pytest.param(
        checks.service_account_token_expired,
        [sa_line(60, token_expires_at=at(900))],
        "passed",
        id="service_account_token_expired-passed",
    ),
    pytest.param(
        checks.service_account_token_expired,
        [sa_line()],
        "unknown",
        id="service_account_token_expired-unknown",
    ),
    # action_not_allowlisted
    pytest.param(
        checks.action_not_allowlisted,
        [sa_line(allowlisted=False)],
        "failed",
        id="action_not_allowlisted-failed",
    ),
    pytest.param(
        checks.action_not_allowlisted,
        [sa_line(allowlisted=None, error_code="NOT_ALLOWLISTED")],
        "failed",
        id="action_not_allowlisted-failed-by-code",
    ),
    pytest.param(
        checks.action_not_allowlisted,
        [sa_line()],
        "passed",
        id="action_not_allowlisted-passed",
    ),
    pytest.param(
        checks.action_not_allowlisted,
        [sa_line(allowlisted=None)],
        "unknown",
        id="action_not_allowlisted-unknown",
    ),
    # runtime_metadata_incoherent
    pytest.param(
        checks.runtime_metadata_incoherent,
        [log_line(operating_mode="platform_managed", control_plane_scope="tenant")],
        "failed",
        id="runtime_metadata_incoherent-failed-pair",
    ),
    pytest.param(
        checks.runtime_metadata_incoherent,
        [log_line(operating_mode="tenant_dedicated", control_plane_scope="platform")],
        "failed",
        id="runtime_metadata_incoherent-failed-dedicated-on-platform",
    ),
    pytest.param(
        checks.runtime_metadata_incoherent,
        [log_line(operating_mode="hybrid_burst")],
        "failed",
        id="runtime_metadata_incoherent-failed-unknown-mode",
    ),
    pytest.param(
        checks.runtime_metadata_incoherent,
        [
            log_line(0),
            log_line(1, service=WORKER, operating_mode="platform_managed",
                     control_plane_scope=None),
        ],
        "failed",
        id="runtime_metadata_incoherent-failed-lines-disagree",
    ),
    pytest.param(
        checks.runtime_metadata_incoherent,
        [log_line(operating_mode="tenant_dedicated", control_plane_scope="project")],
        "passed",
        id="runtime_metadata_incoherent-passed-dedicated",
    ),
    pytest.param(
        checks.runtime_metadata_incoherent,
        [log_line(operating_mode="platform_managed", control_plane_scope="platform")],
        "passed",
        id="runtime_metadata_incoherent-passed-managed",
    ),
    pytest.param(
        checks.runtime_metadata_incoherent,
        [log_line(operating_mode=None, control_plane_scope=None)],
        "unknown",
        id="runtime_metadata_incoherent-unknown",
    ),
    # scheduler_via_core_handler
    pytest.param(
        checks.scheduler_via_core_handler,
        [log_line(app_slug="ray-cluster", handler="core.gpu_allocation.scale")],
        "failed",
        id="scheduler_via_core_handler-failed-core-prefix",
    ),
    pytest.param(
        checks.scheduler_via_core_handler,
        [log_line(app_slug="lab", runtime_backend="volcano",
                  handler="platform.AllocationService.Reserve")],
        "failed",
        id="scheduler_via_core_handler-failed-allocation-by-backend",
    ),
    pytest.param(
        checks.scheduler_via_core_handler,
        [log_line(app_slug="kubeflow-pipelines",
                  handler="apps.schedulers.kubeflow.scale")],
        "passed",
        id="scheduler_via_core_handler-passed-own-handler",
    ),
    pytest.param(
        checks.scheduler_via_core_handler,
        [log_line(handler="core.allocations.scale")],
        "passed",
        id="scheduler_via_core_handler-passed-not-a-scheduler",
    ),
    pytest.param(
        checks.scheduler_via_core_handler,
        [log_line(app_slug="airflow")],
        "unknown",
        id="scheduler_via_core_handler-unknown",
    ),
    # tenant_boundary_not_explicit
    pytest.param(
        checks.tenant_boundary_not_explicit,
        [log_line(0), log_line(1, service=WORKER, project_id=None)],
        "failed",
        id="tenant_boundary_not_explicit-failed",
    ),
    pytest.param(
        checks.tenant_boundary_not_explicit,
        [log_line(0), log_line(1, service=WORKER)],
        "passed",
        id="tenant_boundary_not_explicit-passed",
    ),
]


@pytest.mark.parametrize(("check", "lines", "status"), CASES)
def test_check_status(
    check: Check, lines: list[dict[str, Any]], status: str
) -> None:
    """Each check fails on the fault, passes on healthy facts, and says unknown
    when the lines do not carry the facts it needs."""
    finding = check(to_log_lines(lines))

    assert finding.status == status, finding.detail
    assert finding.id == check.__name__
    assert finding.detail


def test_every_check_of_the_vocabulary_has_a_test() -> None:
    """The table above covers every check id the line-level checks can give."""
    covered = {param.values[0].__name__ for param in CASES}

    every = {check.__name__ for check in checks.BOUNDARY_CHECKS}
    every |= {check.__name__ for check in checks.SERVICE_ACCOUNT_CHECKS}
    every.add(checks.tenant_boundary_not_explicit.__name__)
    assert covered == every


def test_token_expiry_is_judged_at_each_line_time() -> None:
    """A token valid when first used but expired by a later line fails the check."""
    lines = [sa_line(0, token_expires_at=at(30)), sa_line(45, token_expires_at=at(30))]

    finding = checks.service_account_token_expired(to_log_lines(lines))

    assert finding.status == "failed"


def test_user_token_never_gets_service_account_checks() -> None:
    """A user actor is never debugged as a service-account fault, whatever the lines
    say about service accounts."""
    lines = [
        log_line(
            actor_type="user",
            operator_service_account_id="sa-rollout-bot",
            service_account_project_id="prj-other",
            service_account_active=False,
            allowlisted=False,
        )
    ]

    ids = {finding.id for finding in run_checks(to_log_lines(lines))}

    assert not ids & {check.__name__ for check in checks.SERVICE_ACCOUNT_CHECKS}


@pytest.mark.parametrize(
    "actor_type", ["service_account", "ServiceAccount", "service-account", "SA"]
)
def test_service_account_actor_gets_service_account_checks(actor_type: str) -> None:
    """Any spelling of a service-account actor runs the four service-account checks."""
    lines = [sa_line(actor_type=actor_type)]

    ids = {finding.id for finding in run_checks(to_log_lines(lines))}

    assert {check.__name__ for check in checks.SERVICE_ACCOUNT_CHECKS} <= ids


def test_service_account_on_a_later_line_still_counts() -> None:
    """The actor named on any line of the action decides which checks run."""
    lines = [
        log_line(0, actor_type=None),
        log_line(1, service=WORKER, **service_account(allowlisted=False)),
    ]

    findings = {f.id: f.status for f in run_checks(to_log_lines(lines))}

    assert findings["action_not_allowlisted"] == "failed"


def test_tenant_boundary_check_runs_only_on_tenant_dedicated() -> None:
    """tenant_boundary_not_explicit is a tenant_dedicated check: platform_managed
    lines without a project never get it."""
    managed = [
        log_line(0, operating_mode="platform_managed", control_plane_scope="platform"),
        log_line(1, service=ADAPTER, operating_mode="platform_managed",
                 control_plane_scope="platform", project_id=None),
    ]
    dedicated = [
        log_line(0),
        log_line(1, service=ADAPTER, project_id=None),
    ]

    managed_ids = {f.id for f in run_checks(to_log_lines(managed))}
    dedicated_ids = {f.id for f in run_checks(to_log_lines(dedicated))}

    assert "tenant_boundary_not_explicit" not in managed_ids
    assert "tenant_boundary_not_explicit" in dedicated_ids


def test_boundary_checks_always_run() -> None:
    """Instance ownership, metadata coherence and the scheduler check run for all."""
    findings = run_checks(to_log_lines([log_line()]))

    ids = {finding.id for finding in findings}
    assert {check.__name__ for check in checks.BOUNDARY_CHECKS} <= ids


def test_user_incident_reports_no_service_account_checks() -> None:
    """An incident of a user's denied request carries no service-account finding."""
    lines = [
        log_line(0, action="rollback"),
        log_line(0.02, action="rollback", level="error", http_status=403,
                 error_code="forbidden", authz_decision="deny",
                 authz_reason="role viewer lacks apps.rollback"),
    ]

    incident = only_incident(lines)

    reported = {finding.id for finding in incident.checks}
    assert incident.failure_class == "insufficient_permissions"
    assert not reported & {check.__name__ for check in checks.SERVICE_ACCOUNT_CHECKS}


def test_incident_reports_lineage_gap_passed_when_the_worker_picked_up() -> None:
    """An action the worker picked up passes lineage_gap on its incident."""
    lines = [accepted(0), relay(0.3), worker(0.5),
             worker(4, "failed", level="error", backend_error="ECONNRESET")]

    incident = only_incident(lines)

    assert check_status(incident, "lineage_gap") == "passed"


def test_incident_reports_lineage_gap_unknown_without_an_action() -> None:
    """A refused request that never entered the outbox leaves lineage_gap unknown."""
    lines = [log_line(0, level="error", http_status=400, error_code="bad_request")]

    incident = only_incident(lines)

    assert check_status(incident, "lineage_gap") == "unknown"
    assert check_status(incident, "correlation_id_crosses_tenants") == "passed"
