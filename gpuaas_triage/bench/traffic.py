"""Platform traffic with a fixed seed, in the order the lines reach the topics.

Requests start as a Poisson process in event time; each becomes a flow of three to
six lines across the API, the outbox relay, the runtime worker (sometimes an adapter
or the app proxy). Now and then a multi-tenant burst starts: the same failure, one
flow per org, for many orgs within a few minutes. Lines reach the topics a few
milliseconds after their event time; a few arrive seconds late, inside the allowed
lateness, as log shippers deliver them.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import NamedTuple

import orjson

from gpuaas_triage.bench import flows
from gpuaas_triage.bench.flows import FlowContext, LineSpec
from gpuaas_triage.bench.tenants import Project, build_projects
from gpuaas_triage.classifiers.correlation import incident_id_for

#: 2026-11-20T09:00:00Z: event time of the first request.
START = 1795165200.0


@dataclass(frozen=True, slots=True)
class TrafficMix:
    """Relative weights of the flow kinds (they need not sum to one) and bursts."""

    healthy: float = 0.60
    permission_denied: float = 0.09
    invalid_request: float = 0.07
    relay_gave_up: float = 0.04
    lineage_gap: float = 0.04
    backend_unavailable: float = 0.07
    translation_defect: float = 0.04
    proxied_ui: float = 0.05
    #: Mean event time between multi-tenant bursts.
    burst_every_seconds: float = 240.0
    #: How many orgs a burst hits, and over how much event time.
    burst_orgs: tuple[int, int] = (5, 30)
    burst_span_seconds: float = 180.0
    #: Requests per second of event time, outside bursts.
    requests_per_second: float = 40.0
    orgs: int = 400

    def weights(self) -> dict[str, float]:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if f.name in flows.FLOWS
        }


class TrafficLine(NamedTuple):
    """One line as it goes to its topic. ``incident_id`` is set on the first line of
    a request that carries failure evidence: the line that should open an incident."""

    service: str
    correlation_id: str
    raw: bytes
    incident_id: str | None


@dataclass(frozen=True, slots=True)
class _Burst:
    kind: str
    detail: str
    action: str
    runtime_backend: str
    operating_mode: str


_BURSTS = (
    _Burst(
        "backend_unavailable",
        "no endpoints available for service gpu-scheduler-{c}",
        "deploy",
        "kubernetes",
        "tenant_dedicated",
    ),
    _Burst(
        "relay_gave_up",
        "shared broker quota exceeded",
        "deploy",
        "kubernetes",
        "platform_managed",
    ),
    _Burst(
        "translation_defect",
        "KeyError: 'gpu_count'",
        "upgrade",
        "kubernetes",
        "tenant_dedicated",
    ),
    _Burst(
        "permission_denied",
        "action_not_allowlisted",
        "deploy",
        "kubernetes",
        "tenant_dedicated",
    ),
)


#: A flow due to start: (event time, tie-break, kind, burst, project).
_Scheduled = tuple[float, int, str, _Burst | None, Project | None]
#: A line waiting for its arrival: (arrival, tie-break, line, its flow's opened
#: flag, the incident id it would open).
_Pending = tuple[float, int, LineSpec, list[bool], str]


def _iso(t: float) -> str:
    stamp = datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="microseconds")
    return stamp.removesuffix("+00:00") + "Z"


class TrafficGenerator:
    """An endless, reproducible stream of TrafficLine in arrival order."""

    def __init__(
        self, seed: int = 7, mix: TrafficMix | None = None, start: float = START
    ) -> None:
        self.mix = mix or TrafficMix()
        self.rng = random.Random(seed)
        self.projects = build_projects(self.rng, self.mix.orgs)
        weights = self.mix.weights()
        self._kinds = list(weights)
        self._weights = list(weights.values())
        self._next_request = start
        self._next_burst = start + self.rng.expovariate(
            1 / self.mix.burst_every_seconds
        )
        self._scheduled: list[_Scheduled] = []
        self._pending: list[_Pending] = []
        self._seq = 0
        self.flows: Counter[str] = Counter()
        self.bursts = 0

    def __iter__(self) -> Iterator[TrafficLine]:
        return self

    def __next__(self) -> TrafficLine:
        while True:
            horizon = min(
                self._next_request,
                self._next_burst,
                self._scheduled[0][0] if self._scheduled else float("inf"),
            )
            if self._pending and self._pending[0][0] <= horizon:
                return self._emit(heapq.heappop(self._pending))
            self._start_next(horizon)

    def take(self, count: int) -> list[TrafficLine]:
        return [next(self) for _ in range(count)]

    # -- scheduling ------------------------------------------------------------

    def _start_next(self, at: float) -> None:
        rng = self.rng
        if at == self._next_burst:
            self._schedule_burst(at)
            self._next_burst = at + rng.expovariate(1 / self.mix.burst_every_seconds)
        elif self._scheduled and at == self._scheduled[0][0]:
            _, _, kind, burst, project = heapq.heappop(self._scheduled)
            self._start_flow(at, kind, burst, project)
        else:
            kind = rng.choices(self._kinds, self._weights)[0]
            self._start_flow(at, kind, None, None)
            self._next_request = at + rng.expovariate(self.mix.requests_per_second)

    def _schedule_burst(self, at: float) -> None:
        rng = self.rng
        burst = rng.choice(_BURSTS)
        fitting: dict[str, Project] = {}
        for project in rng.sample(self.projects, len(self.projects)):
            if project.operating_mode == burst.operating_mode and any(
                a.runtime_backend == burst.runtime_backend for a in project.apps
            ):
                fitting.setdefault(project.org_id, project)
        low, high = self.mix.burst_orgs
        chosen = list(fitting.values())[: rng.randint(low, high)]
        for project in chosen:
            self._seq += 1
            when = at + rng.random() * self.mix.burst_span_seconds
            heapq.heappush(
                self._scheduled, (when, self._seq, burst.kind, burst, project)
            )
        self.bursts += 1

    def _start_flow(
        self, at: float, kind: str, burst: _Burst | None, project: Project | None
    ) -> None:
        rng = self.rng
        project = project or rng.choice(self.projects)
        apps = project.apps
        if burst is not None:
            apps = tuple(a for a in apps if a.runtime_backend == burst.runtime_backend)
        service_account = rng.random() < 0.3
        ctx = FlowContext(
            correlation_id=f"c-{rng.getrandbits(64):016x}",
            trace_id=f"{rng.getrandbits(128):032x}",
            project=project,
            app=rng.choice(apps),
            action=burst.action if burst else rng.choice(flows.LIFECYCLE),
            event_id=f"evt-{rng.getrandbits(48):012x}",
            service_account=service_account,
            actor_id=project.service_account_id
            if service_account
            else rng.choice(project.users),
        )
        specs = self._build(kind, ctx, burst)
        self.flows[f"{kind} (burst)" if burst else kind] += 1

        opened = [False]
        incident_id = incident_id_for(
            ctx.correlation_id, project.org_id, project.project_id
        )
        for spec in specs:
            delay = rng.random() * 0.05
            if rng.random() < 0.02:
                delay += 1 + rng.random() * 4
            self._seq += 1
            heapq.heappush(
                self._pending,
                (
                    at + spec[0] + delay,
                    self._seq,
                    (at + spec[0], *spec[1:]),
                    opened,
                    incident_id,
                ),
            )

    def _build(
        self, kind: str, ctx: FlowContext, burst: _Burst | None
    ) -> list[LineSpec]:
        rng = self.rng
        if burst is None:
            return flows.FLOWS[kind](ctx, rng)
        if kind == "backend_unavailable":
            return flows.backend_unavailable(ctx, rng, burst.detail)
        if kind == "relay_gave_up":
            return flows.relay_gave_up(ctx, rng, burst.detail)
        if kind == "translation_defect":
            return flows.translation_defect(ctx, rng, burst.detail)
        return flows.permission_denied(ctx, rng, burst.detail)

    def _emit(self, item: _Pending) -> TrafficLine:
        _, _, (t, service, line_fields, failing), opened, incident_id = item
        record = {"ts": _iso(t), "service": service, **line_fields}
        trigger = failing and not opened[0]
        if trigger:
            opened[0] = True
        return TrafficLine(
            service,
            line_fields["correlation_id"],
            orjson.dumps(record),
            incident_id if trigger else None,
        )
