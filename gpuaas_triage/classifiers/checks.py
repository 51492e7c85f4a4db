"""The runbook's boundary, service-account and operating-mode checks.

Each check is a small function with a stable id. It answers passed, failed, or
unknown when the lines do not carry the facts it needs, with a one-line detail.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpuaas_triage.classifiers.vocabulary import (
    COHERENT_SCOPES,
    CheckId,
    CheckStatus,
)
from gpuaas_triage.schemas.log_line import LogLine

#: App slugs and backends of scheduler- and operator-style reference apps.
SCHEDULER_HINTS = (
    "slurm",
    "operator",
    "scheduler",
    "ray",
    "kubeflow",
    "volcano",
    "lsf",
    "pbs",
    "airflow",
    "argo",
)


@dataclass(frozen=True, slots=True)
class Finding:
    id: CheckId
    status: CheckStatus
    detail: str


def _first(lines: Sequence[LogLine], name: str) -> str | None:
    for line in lines:
        value = getattr(line, name)
        if value is not None:
            return str(value)
    return None


def _reasons(lines: Sequence[LogLine]) -> str:
    return " ".join(
        f"{ln.authz_reason or ''} {ln.error_code or ''}".lower() for ln in lines
    )


def instance_project_mismatch(lines: Sequence[LogLine]) -> Finding:
    project = _first(lines, "project_id")
    for line in lines:
        owner = line.instance_project_id
        if owner is not None and project is not None and owner != project:
            return Finding(
                "instance_project_mismatch",
                "failed",
                f"instance {line.app_instance_id or '?'} belongs to {owner}, "
                f"request names {project}",
            )
    owner = _first(lines, "instance_project_id")
    if owner is None or project is None:
        return Finding("instance_project_mismatch", "unknown", "no instance record")
    return Finding("instance_project_mismatch", "passed", f"instance owned by {owner}")


def service_account_foreign_project(lines: Sequence[LogLine]) -> Finding:
    project = _first(lines, "project_id")
    for line in lines:
        home = line.service_account_project_id
        if home is not None and project is not None and home != project:
            return Finding(
                "service_account_foreign_project",
                "failed",
                f"service account {line.operator_service_account_id or '?'} belongs "
                f"to {home}, not {project}",
            )
    if "foreign_project" in _reasons(lines) or "cross_project" in _reasons(lines):
        return Finding(
            "service_account_foreign_project",
            "failed",
            "authorization names a foreign project",
        )
    home = _first(lines, "service_account_project_id")
    if home is None:
        return Finding(
            "service_account_foreign_project",
            "unknown",
            "service account project absent",
        )
    return Finding("service_account_foreign_project", "passed", f"belongs to {home}")


def service_account_inactive(lines: Sequence[LogLine]) -> Finding:
    states = [
        ln.service_account_active
        for ln in lines
        if ln.service_account_active is not None
    ]
    reasons = _reasons(lines)
    if False in states or "inactive" in reasons or "disabled" in reasons:
        return Finding("service_account_inactive", "failed", "service account inactive")
    if states:
        return Finding("service_account_inactive", "passed", "service account active")
    return Finding("service_account_inactive", "unknown", "activity not logged")


def service_account_token_expired(lines: Sequence[LogLine]) -> Finding:
    for line in lines:
        expires = line.token_expires_at
        if expires is not None and expires <= line.ts:
            late = line.ts - expires
            return Finding(
                "service_account_token_expired",
                "failed",
                f"token expired at {expires.isoformat()}, used {late} later",
            )
    if "expired" in _reasons(lines):
        return Finding(
            "service_account_token_expired", "failed", "authorization says expired"
        )
    if any(ln.token_expires_at is not None for ln in lines):
        return Finding("service_account_token_expired", "passed", "token still valid")
    return Finding("service_account_token_expired", "unknown", "token expiry absent")


def action_not_allowlisted(lines: Sequence[LogLine]) -> Finding:
    action = _first(lines, "action") or "?"
    marks = [ln.allowlisted for ln in lines if ln.allowlisted is not None]
    if False in marks or "not_allowlisted" in _reasons(lines):
        return Finding(
            "action_not_allowlisted",
            "failed",
            f"{action} is not on the service account's same-project allowlist",
        )
    if marks:
        return Finding("action_not_allowlisted", "passed", f"{action} is allowlisted")
    return Finding("action_not_allowlisted", "unknown", "allowlist decision absent")


def runtime_metadata_incoherent(lines: Sequence[LogLine]) -> Finding:
    pairs = {
        (ln.operating_mode, ln.control_plane_scope)
        for ln in lines
        if ln.operating_mode is not None or ln.control_plane_scope is not None
    }
    if not pairs:
        return Finding("runtime_metadata_incoherent", "unknown", "no runtime metadata")
    modes = {mode for mode, _ in pairs if mode is not None}
    if len(modes) > 1:
        return Finding(
            "runtime_metadata_incoherent",
            "failed",
            f"lines disagree on operating_mode: {sorted(modes)}",
        )
    for mode, scope in sorted(pairs, key=str):
        if mode is not None and mode not in COHERENT_SCOPES:
            return Finding(
                "runtime_metadata_incoherent",
                "failed",
                f"unknown operating_mode {mode}",
            )
        if (
            mode is not None
            and scope is not None
            and scope not in COHERENT_SCOPES[mode]
        ):
            return Finding(
                "runtime_metadata_incoherent",
                "failed",
                f"{mode} does not run with control_plane_scope={scope}",
            )
    return Finding("runtime_metadata_incoherent", "passed", f"{sorted(pairs, key=str)}")


def is_scheduler_app(lines: Sequence[LogLine]) -> bool:
    for line in lines:
        for value in (line.app_slug, line.runtime_backend):
            if value and any(hint in value.lower() for hint in SCHEDULER_HINTS):
                return True
    return False


def _core_handler(handler: str) -> bool:
    lowered = handler.lower()
    return lowered.startswith("core.") or ".core." in lowered or "allocation" in lowered


def scheduler_via_core_handler(lines: Sequence[LogLine]) -> Finding:
    handlers = sorted({ln.handler for ln in lines if ln.handler})
    if not is_scheduler_app(lines):
        return Finding("scheduler_via_core_handler", "passed", "not a scheduler app")
    core = [h for h in handlers if _core_handler(h)]
    if core:
        return Finding(
            "scheduler_via_core_handler",
            "failed",
            f"scheduler app served by core handler {core[0]}",
        )
    if handlers:
        return Finding(
            "scheduler_via_core_handler", "passed", f"served by {handlers[0]}"
        )
    return Finding("scheduler_via_core_handler", "unknown", "handler not logged")


def tenant_boundary_not_explicit(lines: Sequence[LogLine]) -> Finding:
    bare = [
        f"{ln.service}@{ln.ts.isoformat()}"
        for ln in lines
        if ln.org_id is None or ln.project_id is None
    ]
    if bare:
        return Finding(
            "tenant_boundary_not_explicit",
            "failed",
            f"{len(bare)} line(s) lack org_id or project_id, first {bare[0]}",
        )
    return Finding(
        "tenant_boundary_not_explicit", "passed", "every line names org and project"
    )


ServiceAccountCheck = Callable[[Sequence[LogLine]], Finding]

BOUNDARY_CHECKS: tuple[ServiceAccountCheck, ...] = (
    instance_project_mismatch,
    runtime_metadata_incoherent,
    scheduler_via_core_handler,
)

#: Run only when the actor is a service account: a user token is never debugged
#: as a service-account fault.
SERVICE_ACCOUNT_CHECKS: tuple[ServiceAccountCheck, ...] = (
    service_account_foreign_project,
    service_account_inactive,
    service_account_token_expired,
    action_not_allowlisted,
)


def is_service_account(lines: Sequence[LogLine]) -> bool:
    # service_account, service-account, ServiceAccount and SA all name one actor.
    return any(
        re.sub(r"[^a-z]", "", (ln.actor_type or "").lower()) in ("serviceaccount", "sa")
        for ln in lines
    )


def operating_mode(lines: Sequence[LogLine]) -> str | None:
    return _first(lines, "operating_mode")


def run_checks(lines: Sequence[LogLine]) -> list[Finding]:
    """Every check that applies to these lines; lineage and tenancy come apart."""
    findings = [check(lines) for check in BOUNDARY_CHECKS]
    if is_service_account(lines):
        findings.extend(check(lines) for check in SERVICE_ACCOUNT_CHECKS)
    if operating_mode(lines) == "tenant_dedicated":
        findings.append(tenant_boundary_not_explicit(lines))
    return findings
