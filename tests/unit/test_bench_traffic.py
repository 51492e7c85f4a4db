"""The bench's traffic generator: reproducible, realistic in shape, honest triggers."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import accumulate
from typing import Any

import orjson

from gpuaas_triage.bench.traffic import TrafficGenerator, TrafficMix
from gpuaas_triage.classifiers.pipeline import Pipeline
from gpuaas_triage.schemas.events import EscalationEvent, IncidentEvent
from gpuaas_triage.schemas.source import file_ref

SERVICES = {
    "gpuaas-api", "gpuaas-outbox-relay", "gpuaas-app-runtime-worker",
    "gpuaas-app-adapter", "gpuaas-app-proxy",
}


def test_same_seed_gives_the_same_lines() -> None:
    """Two generators with one seed produce identical bytes in identical order."""
    first = TrafficGenerator(seed=3).take(2_000)

    second = TrafficGenerator(seed=3).take(2_000)

    assert first == second
    assert first != TrafficGenerator(seed=4).take(2_000)


def test_requests_span_services_tenants_and_time() -> None:
    """Requests have three to six lines, come from many orgs, and event time moves
    forward, lines arriving at most a few seconds behind the newest one."""
    lines = TrafficGenerator(seed=5).take(6_000)
    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        by_request[line.correlation_id].append(orjson.loads(line.raw))

    complete = list(by_request.values())[: len(by_request) // 2]
    orgs = {record["org_id"] for records in by_request.values() for record in records}
    times = [
        datetime.fromisoformat(orjson.loads(line.raw)["ts"]).timestamp()
        for line in lines
    ]
    newest = accumulate(times, max)
    behind = [top - t for top, t in zip(newest, times, strict=True)]

    assert all(3 <= len(records) <= 6 for records in complete)
    assert {r["service"] for records in complete for r in records} == SERVICES
    assert len(orgs) > 100
    assert times[-1] - times[0] > 20
    assert max(behind) < 6.0


def test_trigger_lines_are_where_incidents_open() -> None:
    """The line marked with an incident_id is the one on which the in-memory
    pipeline publishes that incident's first version."""
    lines = TrafficGenerator(seed=6).take(3_000)
    pipeline = Pipeline()
    opened_at: dict[str, int] = {}

    for number, line in enumerate(lines):
        for out in pipeline.feed_raw(line.raw, file_ref("bench", number)):
            if isinstance(out, IncidentEvent):
                opened_at.setdefault(out.incident_id, number)

    marked = {line.incident_id: n for n, line in enumerate(lines) if line.incident_id}
    assert len(marked) > 100
    assert all(opened_at.get(incident_id) == n for incident_id, n in marked.items())


def test_bursts_hit_many_orgs_with_one_failure() -> None:
    """With only burst traffic failing, the bursts alone open cross-tenant
    escalations of five or more orgs."""
    mix = TrafficMix(
        permission_denied=0, invalid_request=0, relay_gave_up=0, lineage_gap=0,
        backend_unavailable=0, translation_defect=0, proxied_ui=0,
        burst_every_seconds=60.0, burst_span_seconds=60.0, requests_per_second=4.0,
    )
    generator = TrafficGenerator(seed=9, mix=mix)
    pipeline = Pipeline()
    outputs = []

    for number, line in enumerate(generator.take(5_000)):
        outputs += pipeline.feed_raw(line.raw, file_ref("bench", number))
    outputs += pipeline.finish()

    escalations = [o for o in outputs if isinstance(o, EscalationEvent)]
    assert generator.bursts >= 2
    assert any(e.kind == "cross_tenant" and e.distinct_orgs >= 5 for e in escalations)
