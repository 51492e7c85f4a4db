"""Whether a lifecycle action travelled API -> outbox relay -> runtime worker in time,
with deadlines measured in event time."""

from __future__ import annotations

from typing import Any

import pytest
from factories import (
    API,
    RELAY,
    WORKER,
    accepted,
    epoch,
    final_incidents,
    healthy_action,
    incidents,
    log_line,
    only_incident,
    ref,
    relay,
    replay,
    to_log_lines,
    to_raw,
    worker,
)

from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.classifiers.lineage import trace
from gpuaas_triage.classifiers.pipeline import Pipeline

DEADLINE = 60.0
Lines = list[dict[str, Any]]


def lineage_at(lines: Lines, seconds: float) -> Any:
    """The lineage of ``lines`` when event time has reached ``seconds`` after T0."""
    return trace(to_log_lines(lines), now=epoch(seconds), deadline=DEADLINE)


def test_accepted_without_relay_waits_until_the_deadline() -> None:
    """Before the deadline an accepted action is pending, with the deadline named."""
    lines = [accepted(0)]

    lineage = lineage_at(lines, 59)

    assert lineage.status == "unknown"
    assert lineage.next_deadline == epoch(DEADLINE)
    assert lineage.hops_missing == ()


def test_accepted_without_relay_fails_at_the_deadline() -> None:
    """Once event time passes the deadline with no relay line, relay and worker are
    missing."""
    lines = [accepted(0)]

    lineage = lineage_at(lines, DEADLINE)

    assert lineage.status == "failed"
    assert lineage.hops_missing == (RELAY, WORKER)
    assert lineage.next_deadline is None


def test_published_without_worker_fails_a_deadline_after_publishing() -> None:
    """The worker's deadline runs from the relay's publish, not from the request."""
    lines = [accepted(0), relay(20)]

    before = lineage_at(lines, 79)
    after = lineage_at(lines, 80)

    assert (before.status, before.next_deadline) == ("unknown", epoch(80))
    assert (after.status, after.hops_missing) == ("failed", (WORKER,))


def test_relay_giving_up_fails_at_once() -> None:
    """A relay that gave up needs no deadline: the worker can never get the event."""
    lines = [accepted(0), relay(1, "retrying", level="warn"),
             relay(4, "abandoned", level="error", attempt=6)]

    lineage = lineage_at(lines, 5)

    assert lineage.status == "failed"
    assert lineage.hops_missing == (WORKER,)
    assert "6 attempts" in lineage.detail


def test_relay_publishing_after_a_give_up_clears_it() -> None:
    """A publish after a give-up (an operator re-drove the outbox) is back on track."""
    lines = [accepted(0), relay(4, "failed", level="error"), relay(30, "published")]

    lineage = lineage_at(lines, 31)

    assert lineage.status == "unknown"
    assert lineage.next_deadline == epoch(30 + DEADLINE)


def test_worker_seen_passes() -> None:
    """A runtime worker line for the action means the action was picked up."""
    lines = [accepted(0), relay(0.5), worker(1)]

    lineage = lineage_at(lines, 10_000)

    assert lineage.status == "passed"
    assert lineage.services_seen == (API, RELAY, WORKER)


def test_read_only_request_expects_no_lineage() -> None:
    """A read or a refused request never enters the outbox, so nothing is expected."""
    lines = [log_line(0, action="get", http_status=200),
             log_line(1, action="scale", level="error", http_status=403)]

    lineage = lineage_at(lines, 10_000)

    assert (lineage.status, lineage.expected) == ("unknown", False)


def test_relay_line_alone_starts_the_lineage() -> None:
    """A relay line without the API's (lost or late) still expects a worker."""
    lines = [relay(3)]

    lineage = lineage_at(lines, 3 + 2 * DEADLINE)

    assert lineage.expected
    assert (lineage.status, lineage.hops_missing) == ("failed", (WORKER,))


def test_services_seen_follow_the_expected_path_order() -> None:
    """Services are listed in path order, whatever order their lines came in."""
    lines = [worker(0.2), accepted(0.0), relay(0.1)]

    lineage = lineage_at(lines, 1)

    assert lineage.services_seen == (API, RELAY, WORKER)


# Through the pipeline -----------------------------------------------------------


def test_accepted_and_never_relayed_is_an_incident() -> None:
    """An accepted action with no relay line at all becomes a lineage-gap incident."""
    lines = [accepted(0, correlation_id="req-silent-1", action="rollback")]

    incident = only_incident(lines)

    assert (incident.failure_class, incident.category) == (
        "service_unavailable",
        "async_delivery",
    )
    assert incident.lineage.hops_missing == [RELAY, WORKER]
    assert "lineage_gap" in incident.checks_failed


def test_published_and_never_picked_up_is_an_incident() -> None:
    """Published by the relay but never picked up: the worker hop is missing."""
    lines = [accepted(0, action="start"), relay(0.7)]

    incident = only_incident(lines)

    assert incident.lineage.hops_missing == [WORKER]
    assert "lineage_gap" in incident.checks_failed


def test_retries_that_recover_make_no_incident() -> None:
    """Relay and worker retries that end in success report nothing."""
    lines = [
        accepted(0),
        relay(1, "retrying", level="warn", error="produce timeout"),
        relay(2, "failed", level="error", attempt=2, error="produce timeout"),
        relay(5, "published", attempt=3),
        worker(6, "running"),
        worker(8, "failed", level="error", backend_error="image pull backoff"),
        worker(20, "running", attempt=2),
        worker(55, "ready"),
    ]

    found = final_incidents(replay(lines))

    assert found == []


def test_duplicate_deliveries_change_nothing() -> None:
    """Every line delivered twice (at-least-once) gives no incident for a healthy
    action."""
    lines = healthy_action(correlation_id="req-dup-3")

    found = final_incidents(replay(lines + lines))

    assert found == []


def test_duplicate_failure_lines_give_one_incident() -> None:
    """A failing action delivered twice gives one incident with the same verdict."""
    lines = [accepted(0), relay(0.2), worker(0.4),
             worker(3, "failed", level="error", backend_error="quota exhausted")]

    once = only_incident(lines)
    twice = only_incident(lines + lines)

    assert twice.incident_id == once.incident_id
    assert (twice.failure_class, twice.category) == (once.failure_class, once.category)
    assert twice.lines_seen == 2 * once.lines_seen


def test_out_of_order_lines_still_find_the_path() -> None:
    """Worker, relay and API lines arriving backwards make no lineage gap."""
    lines = list(reversed(healthy_action(correlation_id="req-rev-8")))

    found = final_incidents(replay(lines))

    assert found == []


def test_out_of_order_failure_is_read_against_the_whole_path() -> None:
    """A worker failure that arrives before the acceptance is classified with it."""
    lines = [
        worker(0.9, "failed", level="error", error_code="unavailable",
               backend_error="context deadline exceeded"),
        relay(0.4),
        accepted(0),
    ]

    incident = only_incident(lines)

    assert (incident.failure_class, incident.category) == (
        "service_unavailable",
        "runtime_backend_adapter",
    )
    assert incident.lineage.status == "passed"


def _feed(pipeline: Pipeline, lines: Lines, start: int = 1) -> list[Any]:
    out: list[Any] = []
    for number, line in enumerate(lines, start=start):
        out.extend(pipeline.feed_raw(to_raw(line), ref(number)))
    return out


def test_deadline_fires_on_event_time_not_wall_clock() -> None:
    """The lineage deadline fires when other lines carry event time past it, and not
    before, however fast they arrive."""
    pipeline = Pipeline(cfg=CoreConfig(lineage_deadline=DEADLINE), allowed_lateness=5)
    stuck = accepted(0, correlation_id="req-stuck")
    other = {"correlation_id": "req-other", "org_id": "org-lyra"}

    at_start = _feed(pipeline, [stuck])
    before = _feed(pipeline, [log_line(DEADLINE + 4, **other)], start=2)
    after = _feed(pipeline, [log_line(DEADLINE + 5, **other)], start=3)

    assert incidents(at_start + before) == []
    fired = incidents(after)
    assert [i.correlation_id for i in fired] == ["req-stuck"]
    assert "lineage_gap" in fired[0].checks_failed
    assert fired[0].final is False


@pytest.mark.parametrize("deadline", [30.0, 300.0])
def test_deadline_is_the_configured_one(deadline: float) -> None:
    """A relay arriving inside the configured deadline is in time; the worker's
    absence is judged against the same deadline."""
    lines = [accepted(0), relay(deadline - 1)]

    lineage = trace(to_log_lines(lines), now=epoch(2 * deadline - 2), deadline=deadline)

    assert lineage.status == "unknown"
    assert lineage.next_deadline == epoch(2 * deadline - 1)


def test_late_worker_line_recovers_a_lineage_incident() -> None:
    """A worker line arriving after the deadline fired turns the incident into a
    recovered version of the same incident_id."""
    pipeline = Pipeline(cfg=CoreConfig(lineage_deadline=DEADLINE), allowed_lateness=5)
    other = {"correlation_id": "req-other", "org_id": "org-lyra"}
    _feed(pipeline, [accepted(0), relay(1)])
    fired = incidents(_feed(pipeline, [log_line(2 * DEADLINE, **other)], start=3))

    late = incidents(_feed(pipeline, [worker(2)], start=4))

    assert [i.incident_id for i in late] == [fired[0].incident_id]
    assert late[0].status == "recovered"
    assert late[0].version == fired[-1].version + 1
