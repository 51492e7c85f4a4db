"""The same failure across tenants: windows per failure shape and escalations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from factories import (
    ADAPTER,
    WORKER,
    at,
    epoch,
    escalations,
    log_line,
    ref,
    replay,
    to_log_line,
)

from gpuaas_triage.classifiers import correlation, patterns
from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.classifiers.patterns import LIST_CAP, ShapeWindow
from gpuaas_triage.schemas.events import EscalationEvent, IncidentEvent

CFG = CoreConfig(
    escalation_min_orgs=3,
    escalation_min_projects=3,
    escalation_window=600.0,
    escalation_quiet=600.0,
    primitive_gap_min_incidents=2,
)
MANAGED = {"operating_mode": "platform_managed", "control_plane_scope": "platform"}


def backend_down(seconds: float, org: str | None, project: str | None,
                 **fields: Any) -> dict[str, Any]:
    """A runtime worker line: the backend refused the lifecycle action."""
    line: dict[str, Any] = {
        "service": WORKER,
        "level": "error",
        "msg": "lifecycle action failed",
        "correlation_id": f"req-{org}-{project}-{seconds:g}",
        "org_id": org,
        "project_id": project,
        "lifecycle_state": "failed",
        "error_code": "UNAVAILABLE",
        "backend_error": f"dial tcp 10.4.{int(seconds) % 250}.9:6443: "
                         "connection refused",
        "action": "deploy",
        **MANAGED,
    }
    return log_line(seconds, **(line | fields))


def incident(seconds: float, org: str | None, project: str | None = None,
             **fields: Any) -> IncidentEvent:
    """The first version of the incident one failing line makes."""
    project = project if project is not None or org is None else f"prj-{org}"
    line = to_log_line(backend_down(seconds, org, project, **fields))
    _, events = correlation.ingest(None, line, ref(1), now=line.t, cfg=CFG)
    assert len(events) == 1
    return events[0]


class Detector:
    """One failure shape's window, fed incidents and event time like the drivers."""

    def __init__(self, cfg: CoreConfig = CFG) -> None:
        self.cfg = cfg
        self.window: ShapeWindow | None = None

    def observe(self, *found: IncidentEvent) -> list[EscalationEvent]:
        out: list[EscalationEvent] = []
        for each in found:
            if patterns.is_tenantless(each):
                if self.window is not None:
                    out.extend(patterns.attach_shared(self.window, each, self.cfg))
                continue
            self.window, events = patterns.observe(self.window, each, self.cfg)
            out.extend(events)
        return out

    def expire(self, seconds: float) -> list[EscalationEvent]:
        if self.window is None:
            return []
        self.window, events = patterns.expire(self.window, now=epoch(seconds),
                                              cfg=self.cfg)
        return events


def orgs(count: int, start: float = 0.0, step: float = 30.0) -> list[IncidentEvent]:
    """One incident of the same shape for each of ``count`` orgs."""
    return [incident(start + i * step, f"org-{i:04d}") for i in range(count)]


def test_incidents_of_one_org_share_a_shape_across_tenants() -> None:
    """Incidents of different tenants with the same fault share one fingerprint."""
    first, second = incident(0, "org-lyra"), incident(40, "org-vega")

    assert first.shape is not None and second.shape is not None
    assert first.shape.fingerprint == second.shape.fingerprint


def test_below_threshold_no_escalation() -> None:
    """Two orgs failing the same way do not escalate."""
    detector = Detector()

    events = detector.observe(*orgs(2))

    assert events == []


def test_threshold_of_orgs_opens_exactly_one_escalation() -> None:
    """The third distinct org opens one escalation; later orgs update it."""
    detector = Detector()

    events = detector.observe(*orgs(5))

    assert [e.status for e in events] == ["opened", "updated", "updated"]
    assert len({e.escalation_id for e in events}) == 1
    assert [e.distinct_orgs for e in events] == [3, 4, 5]
    assert events[0].kind == "cross_tenant"
    assert events[0].shape.failure_class == "service_unavailable"


def test_open_escalation_names_the_managed_service_owner() -> None:
    """On the platform_managed plane the owner is the managed service's owner."""
    detector = Detector()

    events = detector.observe(*orgs(3))

    assert events[0].owner == f"managed-service-owner:{WORKER}"


def test_repeat_incident_of_a_known_org_publishes_nothing() -> None:
    """Another incident of an org already counted adds no update."""
    detector = Detector()
    detector.observe(*orgs(3))

    events = detector.observe(incident(100, "org-0001"))

    assert events == []


def test_same_incident_version_counts_once() -> None:
    """Later versions of a counted incident are not new tenants."""
    detector = Detector()
    first = orgs(2)
    detector.observe(*first)

    events = detector.observe(first[0].model_copy(update={"version": 2}))

    assert events == []


def test_orgs_spread_wider_than_the_window_do_not_escalate() -> None:
    """Three orgs spread across more than the window never coincide."""
    detector = Detector()

    events = detector.observe(*orgs(3, step=CFG.escalation_window / 2 + 1))

    assert events == []


def test_quiet_window_resolves_the_escalation() -> None:
    """After a quiet window the escalation resolves and the window is forgotten."""
    detector = Detector()
    opened = detector.observe(*orgs(3))
    last = 2 * 30.0

    early = detector.expire(last + CFG.escalation_quiet - 1)
    resolved = detector.expire(last + CFG.escalation_quiet)

    assert early == []
    assert [e.status for e in resolved] == ["resolved"]
    assert resolved[0].escalation_id == opened[0].escalation_id
    assert resolved[0].resolved_at is not None
    assert datetime.fromisoformat(resolved[0].resolved_at).timestamp() == epoch(
        last + CFG.escalation_quiet
    )
    assert detector.window is None


def test_second_episode_after_resolution_gets_a_new_id() -> None:
    """A new burst after resolution is a new escalation with its own id."""
    detector = Detector()
    first = detector.observe(*orgs(3))
    detector.expire(5000)

    second = detector.observe(*orgs(3, start=6000))

    assert [e.status for e in second] == ["opened"]
    assert second[0].escalation_id != first[0].escalation_id
    assert second[0].version == 1


def test_quiet_gap_inside_the_stream_starts_a_second_episode() -> None:
    """A burst arriving long after the last one opens a new escalation, even when no
    expiry ran in between."""
    detector = Detector()
    first = detector.observe(*orgs(3))

    second = detector.observe(*orgs(3, start=5000))

    assert [e.status for e in second] == ["resolved", "opened"]
    assert second[0].escalation_id == first[0].escalation_id
    assert second[1].escalation_id != first[0].escalation_id


def test_second_episode_through_the_pipeline() -> None:
    """Two bursts an hour apart in one replay are two escalations, each opened and
    resolved once."""
    lines = [backend_down(i * 20, f"org-{i}", f"prj-{i}") for i in range(3)]
    lines += [backend_down(3600 + i * 20, f"org-{i + 3}", f"prj-{i + 3}")
              for i in range(3)]

    found = escalations(replay(lines, cfg=CFG))

    by_id: dict[str, list[str]] = {}
    for event in found:
        by_id.setdefault(event.escalation_id, []).append(event.status)
    assert list(by_id.values()) == [["opened", "resolved"], ["opened", "resolved"]]


def test_replayed_incidents_give_the_same_escalation_id() -> None:
    """The same incidents seen again (a replay, a restart) name the same escalation."""
    found = orgs(4)

    first = Detector().observe(*found)
    again = Detector().observe(*found)

    assert [e.escalation_id for e in again] == [e.escalation_id for e in first]


def test_replayed_log_gives_the_same_escalation_id() -> None:
    """Replaying one log twice through the whole pipeline names the same escalation."""
    lines = [backend_down(i * 15, f"org-{i}", f"prj-{i}") for i in range(4)]

    first = escalations(replay(lines, cfg=CFG))
    again = escalations(replay(lines, cfg=CFG))

    assert first
    assert [(e.escalation_id, e.version) for e in again] == [
        (e.escalation_id, e.version) for e in first
    ]


def test_many_projects_of_one_org_on_tenant_dedicated_are_tenant_wide() -> None:
    """One org failing in many projects of a tenant_dedicated plane escalates to that
    tenant."""
    dedicated = {"operating_mode": "tenant_dedicated", "control_plane_scope": "tenant"}
    found = [incident(i * 10, "org-lyra", f"prj-lyra-{i}", **dedicated)
             for i in range(3)]

    events = Detector().observe(*found)

    assert [(e.status, e.kind) for e in events] == [("opened", "tenant_wide")]
    assert events[0].owner == "tenant:org-lyra"
    assert (events[0].distinct_orgs, events[0].distinct_projects) == (1, 3)


def test_many_projects_of_one_org_on_platform_managed_are_not_tenant_wide() -> None:
    """tenant_wide belongs to tenant_dedicated: a managed plane needs many orgs."""
    found = [incident(i * 10, "org-lyra", f"prj-lyra-{i}") for i in range(4)]

    events = Detector().observe(*found)

    assert events == []


def test_repeated_adapter_failures_are_a_primitive_gap_candidate() -> None:
    """Repeated scheduler/operator adapter failures of one shape, even in one org,
    are a platform primitive gap candidate for the platform team."""
    adapter = {
        "service": ADAPTER, "app_slug": "lsf-cluster", "runtime_backend": "lsf",
        "error_code": None, "backend_error": "bsub: unsupported resource string",
    }
    found = [incident(i * 50, "org-lyra", "prj-lyra-hpc", **adapter) for i in range(2)]

    events = Detector().observe(*found)

    assert [(e.status, e.kind, e.owner) for e in events] == [
        ("opened", "platform_primitive_gap_candidate", "platform-team")
    ]


def test_tenantless_incident_attaches_as_shared_service_evidence() -> None:
    """An incident with no tenant joins the open escalation as shared-service
    evidence and is not counted as another org."""
    detector = Detector()
    detector.observe(*orgs(3))
    tenantless = incident(70, None, None)

    events = detector.observe(tenantless)

    assert [e.status for e in events] == ["updated"]
    assert events[0].shared_service_evidence == [tenantless.incident_id]
    assert events[0].distinct_orgs == 3


def test_tenantless_incident_outside_the_episode_span_is_not_attached() -> None:
    """Shared-service evidence must coincide with the episode in event time."""
    detector = Detector()
    detector.observe(*orgs(3))
    long_after = incident(60 + CFG.escalation_window + CFG.escalation_quiet + 1, None, None)

    events = detector.observe(long_after)

    assert events == []


def test_tenantless_incidents_never_open_an_escalation() -> None:
    """Incidents with no tenant cannot make up the count of orgs."""
    detector = Detector()

    events = detector.observe(*(incident(i, None, None) for i in range(5)))

    assert events == []


def test_recovered_incidents_are_not_counted() -> None:
    """A recovered incident version is not a tenant hit."""
    detector = Detector()
    recovered = [i.model_copy(update={"status": "recovered"}) for i in orgs(3)]

    events = detector.observe(*recovered)

    assert events == []


def _copies(template: IncidentEvent, count: int) -> list[IncidentEvent]:
    """``count`` incidents of the template's shape, each of its own org."""
    copies = []
    for i in range(count):
        context = template.context.model_copy(
            update={"org_id": f"org-{i:05d}", "project_id": f"prj-{i:05d}"}
        )
        copies.append(
            template.model_copy(
                update={
                    "incident_id": f"inc-{i:05d}",
                    "context": context,
                    "first_seen": at(i * 0.1),
                }
            )
        )
    return copies


def test_listed_orgs_stay_bounded_with_thousands_of_tenants() -> None:
    """With thousands of orgs the escalation lists a bounded number while its count
    keeps growing past the list."""
    detector = Detector()
    found = _copies(incident(0, "org-template"), 3000)

    events = detector.observe(*found)

    last = events[-1]
    assert max(len(e.orgs) for e in events) <= LIST_CAP
    assert max(len(e.projects) for e in events) <= LIST_CAP
    assert max(len(e.incident_ids) for e in events) <= LIST_CAP
    assert last.distinct_orgs > LIST_CAP
    assert last.incidents == 3000
    assert detector.window is not None
    assert len(detector.window.hits) <= CFG.max_tenants_per_shape


def test_window_survives_a_changelog_round_trip() -> None:
    """A shape window written out and read back continues the same escalation."""
    detector = Detector()
    opened = detector.observe(*orgs(3))
    assert detector.window is not None

    detector.window = ShapeWindow.from_dict(detector.window.to_dict())
    events = detector.observe(incident(95, "org-new"))

    assert [(e.escalation_id, e.status, e.version) for e in events] == [
        (opened[0].escalation_id, "updated", 2)
    ]
