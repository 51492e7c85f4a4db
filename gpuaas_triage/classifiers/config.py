"""The few numbers the pure core needs, apart from the worker's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpuaas_triage.settings import Settings


@dataclass(frozen=True, slots=True)
class CoreConfig:
    quiet_gap: float = 120.0
    allowed_lateness: float = 10.0
    lineage_deadline: float = 60.0
    closed_retention: float = 3600.0
    max_lines_per_correlation: int = 200
    trace_url_template: str = (
        "https://grafana.example.internal/explore?traceId={trace_id}"
    )
    escalation_min_orgs: int = 3
    escalation_min_projects: int = 3
    escalation_window: float = 600.0
    escalation_quiet: float = 600.0
    primitive_gap_min_incidents: int = 2
    max_tenants_per_shape: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> CoreConfig:
        return cls(
            quiet_gap=settings.quiet_gap_seconds,
            allowed_lateness=settings.allowed_lateness_seconds,
            lineage_deadline=settings.lineage_deadline_seconds,
            closed_retention=settings.closed_retention_seconds,
            max_lines_per_correlation=settings.max_lines_per_correlation,
            trace_url_template=settings.trace_url_template,
            escalation_min_orgs=settings.escalation_min_orgs,
            escalation_min_projects=settings.escalation_min_projects,
            escalation_window=settings.escalation_window_seconds,
            escalation_quiet=settings.escalation_quiet_seconds,
            primitive_gap_min_incidents=settings.primitive_gap_min_incidents,
        )
