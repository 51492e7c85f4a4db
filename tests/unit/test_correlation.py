"""Correlation state: tenancy kept apart, incident versions, late lines, the cap."""

from __future__ import annotations

from typing import Any

import orjson
from factories import (
    RELAY,
    WORKER,
    accepted,
    epoch,
    failed_checks,
    final_incidents,
    log_line,
    ref,
    relay,
    replay,
    to_log_line,
    worker,
)

from gpuaas_triage.classifiers import correlation
from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.classifiers.correlation import CorrelationState
from gpuaas_triage.schemas.events import IncidentEvent

CFG = CoreConfig(quiet_gap=120.0, lineage_deadline=60.0, closed_retention=900.0)
Lines = list[dict[str, Any]]


class Correlator:
    """One correlation_id's state, fed lines and event time like the drivers do."""

    def __init__(self, cfg: CoreConfig = CFG) -> None:
        self.cfg = cfg
        self.state: CorrelationState | None = None
        self.fed = 0

    def ingest(
        self, line: dict[str, Any], now: float | None = None
    ) -> list[IncidentEvent]:
        parsed = to_log_line(line)
        self.fed += 1
        self.state, events = correlation.ingest(
            self.state, parsed, ref(self.fed),
            now=parsed.t if now is None else now, cfg=self.cfg,
        )
        return events

    def advance(self, seconds: float) -> list[IncidentEvent]:
        assert self.state is not None
        self.state, events = correlation.advance(
            self.state, now=epoch(seconds), cfg=self.cfg
        )
        return events


def denied(seconds: float, **fields: Any) -> dict[str, Any]:
    """An API line refusing the request for a missing permission."""
    return log_line(
        seconds, level="error", http_status=403, error_code="forbidden",
        authz_decision="deny", authz_reason="role lacks apps.scale", **fields,
    )


def unavailable(seconds: float, **fields: Any) -> dict[str, Any]:
    """An API line answering 503 for the request."""
    return log_line(
        seconds, level="error", http_status=503, error_code="unavailable", **fields
    )


# Tenancy ------------------------------------------------------------------------


def test_same_correlation_id_from_two_orgs_gives_two_incidents() -> None:
    """Two orgs reusing one correlation_id get an incident each, both flagged."""
    lines = [
        denied(0, correlation_id="req-shared-9", org_id="org-lyra",
               project_id="prj-l1"),
        unavailable(1, correlation_id="req-shared-9", org_id="org-vega",
                    project_id="prj-v1"),
    ]

    found = final_incidents(replay(lines))

    assert len(found) == 2
    assert {i.correlation_id for i in found} == {"req-shared-9"}
    assert len({i.incident_id for i in found}) == 2
    assert all("correlation_id_crosses_tenants" in i.checks_failed for i in found)


def test_tenants_evidence_is_never_merged() -> None:
    """Each tenant's incident holds its own lines, context and verdict only."""
    lines = [
        denied(0, correlation_id="req-shared-9", org_id="org-lyra",
               project_id="prj-l1"),
        unavailable(1, correlation_id="req-shared-9", org_id="org-vega",
                    project_id="prj-v1"),
        denied(2, correlation_id="req-shared-9", org_id="org-lyra",
               project_id="prj-l1"),
    ]

    found = {i.context.org_id: i for i in final_incidents(replay(lines))}

    assert found["org-lyra"].failure_class == "insufficient_permissions"
    assert found["org-vega"].failure_class == "service_unavailable"
    assert (found["org-lyra"].lines_seen, found["org-vega"].lines_seen) == (2, 1)


def test_two_projects_of_one_org_are_two_tenants() -> None:
    """Projects of one org sharing a correlation_id are kept apart as well."""
    lines = [
        denied(0, correlation_id="req-p", project_id="prj-halcyon-dev"),
        denied(1, correlation_id="req-p", project_id="prj-halcyon-prod"),
    ]

    found = final_incidents(replay(lines))

    projects = {i.context.project_id for i in found}
    assert projects == {"prj-halcyon-dev", "prj-halcyon-prod"}
    assert all("correlation_id_crosses_tenants" in failed_checks(i) for i in found)


def test_one_tenant_passes_the_tenancy_check() -> None:
    """A correlation_id used by one tenant passes correlation_id_crosses_tenants."""
    lines = [log_line(0), denied(1)]

    found = final_incidents(replay(lines))

    statuses = {f.id: f.status for f in found[0].checks}
    assert statuses["correlation_id_crosses_tenants"] == "passed"


def test_tenantless_line_joins_the_tenant_of_its_event() -> None:
    """A relay line without org or project joins the tenant whose event it carries."""
    lyra = {"org_id": "org-lyra", "project_id": "prj-l1", "event_id": "evt-lyra",
            "trace_id": "0af7651916cd43dd8448eb211c80319c", "app_instance_id": "inst-l"}
    vega = {"org_id": "org-vega", "project_id": "prj-v1", "event_id": "evt-vega",
            "trace_id": "b7ad6b7169203331b7ad6b7169203331", "app_instance_id": "inst-v"}
    tenantless = {"correlation_id": "req-shared-4", "org_id": None, "project_id": None}
    lines = [
        accepted(0, correlation_id="req-shared-4", **lyra),
        accepted(0.1, correlation_id="req-shared-4", **vega),
        relay(2, "failed", level="error", error="topic not found",
              **(tenantless | {"event_id": "evt-vega"})),
        relay(2.5, **(tenantless | {"event_id": "evt-lyra"})),
        worker(3, **(tenantless | {"event_id": "evt-lyra"})),
    ]

    found = {i.context.org_id: i for i in final_incidents(replay(lines))}

    assert set(found) == {"org-vega"}
    assert found["org-vega"].lineage.hops_missing == [WORKER]


def test_incident_id_does_not_depend_on_which_service_spoke_first() -> None:
    """A thread begun by a tenantless line gets the incident_id its tenant would
    have given it, so a replay and the live worker name the incident alike."""
    api_first = [
        accepted(0, correlation_id="req-77"),
        relay(1, "failed", level="error", correlation_id="req-77", org_id=None,
              project_id=None, error="produce timeout"),
    ]
    relay_first = [
        relay(1, "retrying", level="warn", correlation_id="req-77", org_id=None,
              project_id=None, error="produce timeout"),
        *api_first,
    ]

    from_api = final_incidents(replay(api_first))
    from_relay = final_incidents(replay(relay_first))

    assert [i.incident_id for i in from_relay] == [i.incident_id for i in from_api]
    assert from_api[0].incident_id == correlation.incident_id_for(
        "req-77", "org-halcyon", "prj-halcyon-batch"
    )


def test_incident_id_is_stable_across_replays() -> None:
    """Replaying the same lines names the same incident."""
    lines = [log_line(0, correlation_id="req-5"), denied(1, correlation_id="req-5")]

    first = final_incidents(replay(lines))
    second = final_incidents(replay(lines))

    assert [i.incident_id for i in first] == [i.incident_id for i in second]


# Versions -------------------------------------------------------------------------


def test_no_version_before_error_evidence() -> None:
    """Healthy lines of a correlation publish nothing."""
    correlator = Correlator()

    events = correlator.ingest(log_line(0))
    events += correlator.ingest(log_line(1, action=None))

    assert events == []


def test_first_version_on_first_error_evidence() -> None:
    """The first error line publishes version 1, open and not final."""
    correlator = Correlator()
    correlator.ingest(log_line(0))

    events = correlator.ingest(unavailable(1))

    assert [(e.version, e.status, e.final) for e in events] == [(1, "open", False)]
    assert events[0].failure_class == "service_unavailable"


def test_same_verdict_evidence_publishes_no_new_version() -> None:
    """More evidence of the same verdict does not publish another version."""
    correlator = Correlator()
    correlator.ingest(unavailable(1))

    events = correlator.ingest(unavailable(2, msg="retry failed too"))

    assert events == []


def test_new_version_when_the_verdict_changes() -> None:
    """Evidence that changes the verdict publishes the next version."""
    correlator = Correlator()
    first = correlator.ingest(unavailable(1))

    second = correlator.ingest(denied(2))

    assert [e.version for e in first + second] == [1, 2]
    assert second[0].incident_id == first[0].incident_id
    assert second[0].failure_class == "insufficient_permissions"


def test_new_version_when_a_check_starts_failing() -> None:
    """A check that fails on later evidence publishes a new version."""
    correlator = Correlator()
    correlator.ingest(denied(1, **{"actor_type": "service_account"}))

    events = correlator.ingest(
        log_line(2, actor_type="service_account", service_account_active=False)
    )

    assert [e.version for e in events] == [2]
    assert "service_account_inactive" in events[0].checks_failed


def test_final_version_on_close() -> None:
    """The first judgement settles the verdict; after the quiet gap the incident
    closes with a final version."""
    correlator = Correlator()
    opened = correlator.ingest(denied(1))

    early = correlator.advance(1 + CFG.quiet_gap - 1)
    again = correlator.advance(1 + CFG.quiet_gap - 0.5)
    closed = correlator.advance(1 + CFG.quiet_gap)

    assert [(e.version, e.settled, e.final) for e in opened] == [(1, False, False)]
    assert [(e.version, e.settled, e.final) for e in early] == [(2, True, False)]
    assert again == []
    assert [(e.version, e.status, e.final) for e in closed] == [(3, "closed", True)]
    assert closed[0].incident_id == opened[0].incident_id


def test_failure_then_recovery_publishes_a_recovered_version() -> None:
    """A published incident whose failure later recovers says so in a new version."""
    correlator = Correlator()
    correlator.ingest(accepted(0))
    correlator.ingest(relay(1))
    correlator.ingest(worker(2))
    opened = correlator.ingest(worker(5, "failed", level="error", backend_error="OOM"))

    recovered = correlator.ingest(worker(30, "ready"))

    assert [e.status for e in opened] == ["open"]
    assert [(e.version, e.status, e.failure_class) for e in recovered] == [
        (2, "recovered", None)
    ]


def test_late_line_reopens_as_a_new_version_of_the_same_incident() -> None:
    """A line that arrives after close reopens the same incident_id, one version on,
    and it closes again with a final version."""
    correlator = Correlator()
    opened = correlator.ingest(denied(1))
    closed = correlator.advance(1 + CFG.quiet_gap)

    reopened = correlator.ingest(
        log_line(3, service=WORKER, msg="cleanup"), now=epoch(1 + CFG.quiet_gap + 60)
    )
    closed_again = correlator.advance(3 + 4 * CFG.quiet_gap)

    incident_id = opened[0].incident_id
    assert [(e.incident_id, e.version, e.status, e.final) for e in reopened] == [
        (incident_id, closed[0].version + 1, "open", False)
    ]
    assert [(e.version, e.final) for e in closed_again] == [
        (closed[0].version + 2, True)
    ]
    assert closed_again[0].lines_seen == 2


def test_closed_correlation_is_forgotten_after_retention() -> None:
    """Past the quiet gap and the retention, nothing of the correlation is kept."""
    correlator = Correlator()
    correlator.ingest(denied(1))
    correlator.advance(1 + CFG.quiet_gap)

    assert correlator.state is not None
    kept, events = correlation.advance(
        correlator.state, now=epoch(1 + CFG.quiet_gap + CFG.closed_retention), cfg=CFG
    )

    assert kept is None
    assert events == []


def test_next_due_is_the_earliest_close_or_deadline() -> None:
    """next_due names the lineage deadline while an action is pending, then the
    quiet-gap close."""
    correlator = Correlator()
    correlator.ingest(accepted(0))
    assert correlator.state is not None

    pending = correlation.next_due(correlator.state, now=epoch(1), cfg=CFG)
    correlator.ingest(worker(5))
    settled = correlation.next_due(correlator.state, now=epoch(6), cfg=CFG)

    assert pending == epoch(CFG.lineage_deadline)
    assert settled == epoch(5 + CFG.quiet_gap)


def test_state_survives_a_changelog_round_trip() -> None:
    """State written to the changelog and read back continues the same versions."""
    correlator = Correlator()
    correlator.ingest(unavailable(1))
    assert correlator.state is not None
    stored = orjson.loads(orjson.dumps(correlator.state.to_dict()))

    correlator.state = CorrelationState.from_dict(stored)
    events = correlator.ingest(denied(2))

    assert [e.version for e in events] == [2]


# The cap ----------------------------------------------------------------------------


def test_lines_over_the_cap_are_counted_as_dropped() -> None:
    """Past the per-correlation cap, lines are counted in lines_dropped, not kept."""
    cfg = CoreConfig(max_lines_per_correlation=6)
    lines = [accepted(0), relay(0.3), worker(0.6)]
    lines += [worker(1 + i, msg=f"progress {i}") for i in range(10)]
    lines.append(worker(20, "failed", level="error", backend_error="disk full"))

    found = final_incidents(replay(lines, cfg=cfg))

    assert len(found) == 1
    assert found[0].lines_seen == len(lines)
    assert found[0].lines_dropped == len(lines) - 6
    assert len(found[0].evidence.log_lines) == 6


def test_cap_keeps_the_failure_evidence_and_each_hop() -> None:
    """The cap drops healthy repeats first, so verdict and lineage survive it."""
    cfg = CoreConfig(max_lines_per_correlation=5)
    lines = [accepted(0), relay(0.3), worker(0.6),
             worker(1, "failed", level="error", backend_error="no route to host")]
    lines += [worker(2 + i, "running", msg=f"poll {i}") for i in range(20)]

    found = final_incidents(replay(lines, cfg=cfg))

    services = {ref.service for ref in found[0].evidence.log_lines}
    assert (found[0].failure_class, found[0].category) == (
        "service_unavailable",
        "runtime_backend_adapter",
    )
    assert {RELAY, WORKER} <= services
    assert found[0].lineage.status == "passed"
