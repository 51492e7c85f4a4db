"""The whole core driven from an ordered sequence of raw lines, in memory.

``triage replay`` uses it on files; tests use it as the reference the Kafka worker
must agree with. Event time only: the watermark is the newest line seen minus the
allowed lateness, and ``finish`` lets it run to the end of time.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from gpuaas_triage.classifiers import correlation, patterns
from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.schemas.dead_letter import DeadLetter
from gpuaas_triage.schemas.events import EscalationEvent, IncidentEvent
from gpuaas_triage.schemas.log_line import LogLine
from gpuaas_triage.schemas.parse import parse_line
from gpuaas_triage.schemas.source import SourceRef

logger = logging.getLogger(__name__)

Output = IncidentEvent | EscalationEvent | DeadLetter


@dataclass
class Pipeline:
    cfg: CoreConfig = field(default_factory=CoreConfig)
    allowed_lateness: float = 10.0
    max_line_bytes: int = 1_048_576
    states: dict[str, correlation.CorrelationState] = field(default_factory=dict)
    windows: dict[str, patterns.ShapeWindow] = field(default_factory=dict)
    _due: list[tuple[float, str]] = field(default_factory=list)
    _shape_due: list[tuple[float, str]] = field(default_factory=list)
    _max_t: float = float("-inf")

    @property
    def watermark(self) -> float:
        return self._max_t - self.allowed_lateness

    def feed_raw(
        self, raw: bytes, ref: SourceRef, topic_service: str | None = None
    ) -> list[Output]:
        parsed = parse_line(raw, ref, max_bytes=self.max_line_bytes,
                            topic_service=topic_service)
        if isinstance(parsed, DeadLetter):
            return [parsed]
        return self.feed(parsed, ref)

    def feed(self, line: LogLine, ref: SourceRef) -> list[Output]:
        self._max_t = max(self._max_t, line.t)
        now = self.watermark
        cid = line.correlation_id
        state, incidents = correlation.ingest(
            self.states.get(cid), line, ref, now=now, cfg=self.cfg
        )
        self.states[cid] = state
        heapq.heappush(self._due, (correlation.next_due(state, now=now, cfg=self.cfg), cid))
        out: list[Output] = []
        for incident in incidents:
            out.append(incident)
            out.extend(self._observe(incident))
        out.extend(self.advance(now))
        return out

    def _observe(self, incident: IncidentEvent) -> list[EscalationEvent]:
        if incident.shape is None or not incident.settled:
            return []
        key = incident.shape.fingerprint
        window, escalations = patterns.observe(self.windows.get(key), incident, self.cfg)
        if window is not None:
            self.windows[key] = window
            heapq.heappush(self._shape_due, (patterns.next_due(window, self.cfg), key))
        return escalations

    def advance(self, now: float) -> list[Output]:
        out: list[Output] = []
        while self._due and self._due[0][0] <= now:
            _, cid = heapq.heappop(self._due)
            state = self.states.get(cid)
            if state is None:
                continue
            kept, incidents = correlation.advance(state, now=now, cfg=self.cfg)
            for incident in incidents:
                out.append(incident)
                out.extend(self._observe(incident))
            if kept is None:
                del self.states[cid]
            else:
                due = correlation.next_due(kept, now=now, cfg=self.cfg)
                heapq.heappush(self._due, (due, cid))
        while self._shape_due and self._shape_due[0][0] <= now:
            _, key = heapq.heappop(self._shape_due)
            window = self.windows.get(key)
            if window is None:
                continue
            kept_window, escalations = patterns.expire(window, now=now, cfg=self.cfg)
            out.extend(escalations)
            if kept_window is None:
                del self.windows[key]
            else:
                heapq.heappush(
                    self._shape_due, (patterns.next_due(kept_window, self.cfg), key)
                )
        return out

    def finish(self) -> list[Output]:
        """End of input: every deadline passes, every correlation closes."""
        return self.advance(float("inf"))


def latest(outputs: list[Output]) -> Iterator[IncidentEvent | EscalationEvent]:
    """The newest version of each incident and escalation, in first-seen order;
    recovered incidents are left out (there is nothing to report)."""
    newest: dict[str, IncidentEvent | EscalationEvent] = {}
    for out in outputs:
        if isinstance(out, IncidentEvent):
            newest[out.incident_id] = out
        elif isinstance(out, EscalationEvent):
            newest[out.escalation_id] = out
    for out in newest.values():
        if isinstance(out, IncidentEvent) and out.status == "recovered":
            continue
        yield out
