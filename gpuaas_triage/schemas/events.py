"""What gpuaas-triage publishes: versioned incidents and escalations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gpuaas_triage.classifiers.vocabulary import (
    Category,
    CheckId,
    CheckStatus,
    FailureClass,
)
from gpuaas_triage.schemas.source import SourceRef


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IncidentContext(_Out):
    """Scope, identity and effective runtime metadata, as the runbook captures them."""

    org_id: str | None = None
    project_id: str | None = None
    app_slug: str | None = None
    app_instance_id: str | None = None
    operator_service_account_id: str | None = None
    actor_type: str | None = None
    actor_id: str | None = None
    action: str | None = None
    operating_mode: str | None = None
    control_plane_scope: str | None = None
    runtime_backend: str | None = None
    tenant_boundary_mode: str | None = None
    environment_boundary_candidate: bool = Field(
        default=False,
        description="tenant_dedicated with control_plane_scope=project: the project is "
        "an environment boundary (dev|test|stage|prod).",
    )
    environment: str | None = Field(
        default=None, description="dev, test, stage or prod when the project names one."
    )


class CheckFinding(_Out):
    id: CheckId
    status: CheckStatus
    detail: str


class LineageView(_Out):
    expected: list[str]
    services_seen: list[str]
    hops_missing: list[str]
    status: CheckStatus
    detail: str


class LineRef(_Out):
    service: str
    ts: str
    level: str
    msg: str | None = None
    source: SourceRef


class Evidence(_Out):
    log_lines: list[LineRef]
    logql: dict[str, str]
    trace_url: str | None = None
    shared_service_evidence: list[str] = Field(
        default_factory=list,
        description="On the platform_managed plane: the service-level evidence to "
        "gather, beyond this project's lines.",
    )
    shared_service_logql: dict[str, str] = Field(default_factory=dict)


class Explanation(_Out):
    rule: str
    decided_by: dict[str, Any]
    summary: str


class Shape(_Out):
    """The tenant-free fingerprint of a failure: incidents sharing it are grouped."""

    fingerprint: str
    failure_class: FailureClass
    category: Category
    service: str
    error: str | None
    action: str | None
    runtime_backend: str | None
    operating_mode: str | None


class IncidentEvent(_Out):
    """One version of one incident. Keyed by incident_id; the newest version wins."""

    type: Literal["incident"] = "incident"
    incident_id: str
    version: int
    status: Literal["open", "closed", "recovered"]
    final: bool
    settled: bool = Field(
        default=False,
        description="The verdict was judged against event time, past the allowed "
        "lateness, so the context is as complete as it will get. Escalation windows "
        "count an incident from its first settled version.",
    )
    closed_early: bool = Field(
        default=False,
        description="Closed before its quiet gap, as judged at that moment, because "
        "the worker held more open correlations than its cap "
        "(TRIAGE_MAX_OPEN_CORRELATIONS). Later lines of the same correlation_id start "
        "the incident's versions again from 1.",
    )
    closed_early_reason: Literal["open_correlation_cap"] | None = Field(
        default=None, description="Why the incident was closed early, if it was."
    )
    correlation_id: str
    trace_id: str | None
    failure_class: FailureClass | None
    category: Category | None
    escalate: bool
    escalation_reason: str | None
    context: IncidentContext
    lineage: LineageView
    checks: list[CheckFinding]
    checks_failed: list[CheckId]
    recovery: str | None
    runbook: str | None
    explanation: Explanation | None
    evidence: Evidence
    shape: Shape | None
    first_seen: str
    last_seen: str
    lines_seen: int
    lines_dropped: int = Field(
        default=0, description="Lines beyond the per-correlation cap, counted not kept."
    )


class EscalationEvent(_Out):
    """One state of one escalation episode: the same failure shape across tenants."""

    type: Literal["escalation"] = "escalation"
    escalation_id: str
    version: int
    status: Literal["opened", "updated", "resolved"]
    kind: Literal["cross_tenant", "tenant_wide", "platform_primitive_gap_candidate"]
    owner: str
    reason: str
    shape: Shape
    distinct_orgs: int
    distinct_projects: int
    orgs: list[str]
    projects: list[str]
    incidents: int
    incident_ids: list[str]
    shared_service_evidence: list[str]
    window_seconds: float
    opened_at: str
    last_seen: str
    resolved_at: str | None = None
