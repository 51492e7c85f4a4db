"""The same failure across tenants: sliding event-time windows per failure shape.

An escalation opens the moment a shape's window holds enough distinct orgs (or, on
a tenant_dedicated plane, enough projects of one org), is updated as tenants join,
and resolves after a quiet window. One escalation per episode; its id is derived
from the shape and the episode's first incident, so a replay or a restart that sees
the same incidents names the same escalation.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.schemas.events import EscalationEvent, IncidentEvent, Shape

logger = logging.getLogger(__name__)

Kind = Literal["cross_tenant", "tenant_wide", "platform_primitive_gap_candidate"]

#: Members listed on an escalation.
LIST_CAP = 50

#: Distinct orgs and projects tracked per episode: counts are exact up to here and
#: read "at least this many" beyond, so memory per shape stays bounded.
TRACK_CAP = 10 * LIST_CAP


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat()


def _t(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


@dataclass(slots=True)
class Episode:
    escalation_id: str
    kind: Kind
    opened_at: float
    version: int = 0
    orgs: set[str] = field(default_factory=set)
    projects: set[str] = field(default_factory=set)
    incident_ids: list[str] = field(default_factory=list)
    incidents: int = 0
    shared: list[str] = field(default_factory=list)
    last_seen: float = 0.0


@dataclass(slots=True)
class ShapeWindow:
    """Recent incidents of one shape: (event time, incident_id, org, project)."""

    shape: Shape
    hits: list[tuple[float, str, str | None, str | None]] = field(default_factory=list)
    episode: Episode | None = None

    def to_dict(self) -> dict[str, Any]:
        ep = self.episode
        return {
            "shape": self.shape.model_dump(),
            "hits": self.hits,
            "episode": None
            if ep is None
            else {
                "escalation_id": ep.escalation_id,
                "kind": ep.kind,
                "opened_at": ep.opened_at,
                "version": ep.version,
                "orgs": sorted(ep.orgs),
                "projects": sorted(ep.projects),
                "incident_ids": ep.incident_ids,
                "incidents": ep.incidents,
                "shared": ep.shared,
                "last_seen": ep.last_seen,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShapeWindow:
        ep = data["episode"]
        episode = None
        if ep is not None:
            episode = Episode(
                ep["escalation_id"],
                ep["kind"],
                ep["opened_at"],
                ep["version"],
                set(ep["orgs"]),
                set(ep["projects"]),
                list(ep["incident_ids"]),
                ep["incidents"],
                list(ep["shared"]),
                ep["last_seen"],
            )
        hits = [tuple(h) for h in data["hits"]]
        return cls(Shape.model_validate(data["shape"]), hits, episode)


def _kind(window: ShapeWindow, cfg: CoreConfig) -> tuple[Kind, str] | None:
    orgs = {org for _, _, org, _ in window.hits if org}
    if len(orgs) >= cfg.escalation_min_orgs:
        return "cross_tenant", f"{len(orgs)} orgs hit within {cfg.escalation_window:g}s"
    shape = window.shape
    if (
        shape.category == "platform_primitive_gap"
        or shape.service == "gpuaas-app-adapter"
    ):
        count = len({inc for _, inc, _, _ in window.hits})
        if count >= cfg.primitive_gap_min_incidents:
            return (
                "platform_primitive_gap_candidate",
                f"{count} scheduler/operator adapter failures of one shape",
            )
    if shape.operating_mode == "tenant_dedicated":
        per_org: dict[str, set[str]] = {}
        for _, _, org, project in window.hits:
            if org and project:
                per_org.setdefault(org, set()).add(project)
        for org, projects in sorted(per_org.items()):
            if len(projects) >= cfg.escalation_min_projects:
                return "tenant_wide", f"{len(projects)} projects of {org} hit"
    return None


def _owner(kind: Kind, shape: Shape, window: ShapeWindow) -> str:
    if kind == "platform_primitive_gap_candidate":
        return "platform-team"
    if kind == "tenant_wide":
        orgs = sorted({org for _, _, org, _ in window.hits if org})
        return f"tenant:{orgs[0]}" if len(orgs) == 1 else "platform-team"
    if shape.operating_mode == "platform_managed":
        return f"managed-service-owner:{shape.service}"
    return "platform-team"


def _event(
    window: ShapeWindow,
    status: str,
    cfg: CoreConfig,
    reason: str,
    resolved_at: float | None = None,
) -> EscalationEvent:
    ep = window.episode
    assert ep is not None  # noqa: S101  # callers hold an episode
    ep.version += 1
    return EscalationEvent(
        escalation_id=ep.escalation_id,
        version=ep.version,
        status=status,  # type: ignore[arg-type]  # opened, updated or resolved
        kind=ep.kind,
        owner=_owner(ep.kind, window.shape, window),
        reason=reason,
        shape=window.shape,
        distinct_orgs=len(ep.orgs),
        distinct_projects=len(ep.projects),
        orgs=sorted(ep.orgs)[:LIST_CAP],
        projects=sorted(ep.projects)[:LIST_CAP],
        incidents=ep.incidents,
        incident_ids=ep.incident_ids[:LIST_CAP],
        shared_service_evidence=ep.shared[:LIST_CAP],
        window_seconds=cfg.escalation_window,
        opened_at=_iso(ep.opened_at),
        last_seen=_iso(ep.last_seen),
        resolved_at=_iso(resolved_at) if resolved_at is not None else None,
    )


def observe(
    window: ShapeWindow | None, incident: IncidentEvent, cfg: CoreConfig
) -> tuple[ShapeWindow | None, list[EscalationEvent]]:
    """Count one incident version against its shape's window."""
    shape = incident.shape
    if shape is None or incident.status == "recovered":
        return window, []
    if window is None:
        window = ShapeWindow(shape)
    t = _t(incident.first_seen)
    org, project = incident.context.org_id, incident.context.project_id
    if any(inc == incident.incident_id for _, inc, _, _ in window.hits):
        return window, []
    if window.hits and t < window.hits[-1][0] - cfg.escalation_window:
        # Further back than the window reaches from its newest hit: a later version
        # of an incident that has aged out of the window, which must not be counted
        # again, or one too old to coincide with the others.
        return window, []

    resolved = _resolve_quiet(window, t, cfg)
    if resolved:
        window, earlier = resolved
        new_window, events = observe(window, incident, cfg)
        return new_window, [earlier, *events]

    ep = window.episode
    if org is None and project is None:
        # Not another tenant: ``attach_shared`` offers it to open episodes instead.
        return window, []

    window.hits.append((t, incident.incident_id, org, project))
    window.hits = [h for h in window.hits if h[0] >= t - cfg.escalation_window]
    window.hits.sort()
    if len(window.hits) > cfg.max_tenants_per_shape:
        del window.hits[: len(window.hits) - cfg.max_tenants_per_shape]

    if ep is not None:
        joined = (org and org not in ep.orgs) or (
            project and project not in ep.projects
        )
        _count(ep, incident.incident_id, org, project, t)
        if joined:
            return window, [_event(window, "updated", cfg, "a tenant joined")]
        return window, []

    decided = _kind(window, cfg)
    if decided is None:
        return window, []
    kind, reason = decided
    first = window.hits[0]
    key = f"{shape.fingerprint}\x1f{kind}\x1f{first[1]}"
    escalation_id = (
        "esc-" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:20]
    )
    window.episode = Episode(escalation_id, kind, t)
    for hit_t, inc, hit_org, hit_project in window.hits:
        _count(window.episode, inc, hit_org, hit_project, hit_t)
    logger.info(
        "escalation %s opened: %s for shape %s",
        escalation_id,
        reason,
        shape.fingerprint,
    )
    return window, [_event(window, "opened", cfg, reason)]


def is_tenantless(incident: IncidentEvent) -> bool:
    return incident.context.org_id is None and incident.context.project_id is None


def attach_shared(
    window: ShapeWindow, incident: IncidentEvent, cfg: CoreConfig
) -> list[EscalationEvent]:
    """Attach a tenant-less incident (a relay or consumer-level error that names no
    org) to this window's open episode as shared-service evidence, when it failed
    at the same service within the episode's time span."""
    ep = window.episode
    shape = incident.shape
    if ep is None or shape is None or not is_tenantless(incident):
        return []
    if shape.service != window.shape.service or incident.incident_id in ep.shared:
        return []
    t = _t(incident.first_seen)
    if (
        not ep.opened_at - cfg.escalation_window
        <= t
        <= ep.last_seen + cfg.escalation_quiet
    ):
        return []
    if len(ep.shared) >= LIST_CAP:
        return []
    ep.shared.append(incident.incident_id)
    return [_event(window, "updated", cfg, "shared-service evidence attached")]


def _resolve_quiet(
    window: ShapeWindow, t: float, cfg: CoreConfig
) -> tuple[ShapeWindow, EscalationEvent] | None:
    """Resolve an episode that went quiet before event time ``t``.

    A driver may hand over the next incident before its timer has expired the
    episode; counting that incident into the old episode would merge two bursts.
    """
    ep = window.episode
    if ep is None or t < ep.last_seen + cfg.escalation_quiet:
        return None
    resolved_at = ep.last_seen + cfg.escalation_quiet
    event = _event(
        window, "resolved", cfg, "quiet window passed", resolved_at=resolved_at
    )
    window.episode = None
    window.hits = []
    return window, event


def _count(
    ep: Episode, incident_id: str, org: str | None, project: str | None, t: float
) -> None:
    ep.incidents += 1
    if len(ep.incident_ids) < LIST_CAP:
        ep.incident_ids.append(incident_id)
    if org and (org in ep.orgs or len(ep.orgs) < TRACK_CAP):
        ep.orgs.add(org)
    if project and (project in ep.projects or len(ep.projects) < TRACK_CAP):
        ep.projects.add(project)
    ep.last_seen = max(ep.last_seen, t)


def expire(
    window: ShapeWindow, *, now: float, cfg: CoreConfig
) -> tuple[ShapeWindow | None, list[EscalationEvent]]:
    """Resolve a quiet episode and forget hits older than the window."""
    events: list[EscalationEvent] = []
    ep = window.episode
    if ep is not None and now >= ep.last_seen + cfg.escalation_quiet:
        resolved_at = ep.last_seen + cfg.escalation_quiet
        events.append(
            _event(
                window,
                "resolved",
                cfg,
                "quiet window passed",
                resolved_at=min(resolved_at, now),
            )
        )
        window.episode = None
        window.hits = []
    window.hits = [h for h in window.hits if h[0] >= now - cfg.escalation_window]
    if window.episode is None and not window.hits:
        return None, events
    return window, events


def next_due(window: ShapeWindow, cfg: CoreConfig) -> float:
    if window.episode is not None:
        return window.episode.last_seen + cfg.escalation_quiet
    if window.hits:
        return window.hits[0][0] + cfg.escalation_window
    return float("inf")
