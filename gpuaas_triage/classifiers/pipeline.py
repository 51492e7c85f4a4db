"""The whole core driven from an ordered sequence of raw lines, in memory.

``triage replay`` uses it on files; tests use it as the reference the Kafka worker
must agree with. Event time only: the watermark is the newest line seen minus the
allowed lateness, and ``finish`` lets it run to the end of time.

Memory is bounded: past ``max_open_correlations`` held correlations, the one whose
newest line is the oldest is closed early, its final versions marked
``closed_early``; the worker applies the same cap per partition.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpuaas_triage.classifiers import correlation, patterns
from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.schemas.dead_letter import DeadLetter
from gpuaas_triage.schemas.events import EscalationEvent, IncidentEvent
from gpuaas_triage.schemas.log_line import LogLine
from gpuaas_triage.schemas.parse import parse_line
from gpuaas_triage.schemas.source import SourceRef

if TYPE_CHECKING:
    from gpuaas_triage.settings import Settings

logger = logging.getLogger(__name__)

Output = IncidentEvent | EscalationEvent | DeadLetter


def newest_line(state: correlation.CorrelationState) -> float:
    """Event time of the newest line a correlation holds, over all its threads."""
    return max(thread.last_t for thread in state.threads)


@dataclass
class OpenCorrelations:
    """The correlations held in state, each with the event time of its newest line,
    so that the one to close first when over ``cap`` is found in log time."""

    cap: int
    newest: dict[str, float] = field(default_factory=dict)
    _heap: list[tuple[float, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.newest)

    def hold(self, correlation_id: str, newest_t: float) -> None:
        if self.newest.get(correlation_id) == newest_t:
            return
        self.newest[correlation_id] = newest_t
        heapq.heappush(self._heap, (newest_t, correlation_id))
        if len(self._heap) > 2 * len(self.newest) + 64:
            # Entries left behind by newer lines and released correlations would
            # otherwise grow with the stream rather than with what is held.
            self._heap = [(t, cid) for cid, t in self.newest.items()]
            heapq.heapify(self._heap)

    def release(self, correlation_id: str) -> None:
        self.newest.pop(correlation_id, None)

    def over_cap(self) -> bool:
        return len(self.newest) > self.cap

    def oldest(self, *, besides: str | None = None) -> str | None:
        """The held correlation whose newest line is the oldest, other than
        ``besides`` (the one a line has just been added to)."""
        heap = self._heap
        spared: tuple[float, str] | None = None
        while heap:
            t, cid = heap[0]
            if self.newest.get(cid) != t:
                heapq.heappop(heap)
            elif cid == besides and spared is None:
                spared = heapq.heappop(heap)
            else:
                break
        found = heap[0][1] if heap else None
        if spared is not None:
            heapq.heappush(heap, spared)
        return found

    def forget(self) -> None:
        self.newest.clear()
        self._heap.clear()


def close_early(
    state: correlation.CorrelationState, *, now: float, cfg: CoreConfig
) -> list[IncidentEvent]:
    """Close every open thread of ``state`` as judged at event time ``now``, before
    its quiet gap has passed, and return the final versions, marked ``closed_early``.

    For the open-correlation cap: the caller then forgets the state, so a later
    line of the same correlation_id starts its incidents again from version 1.
    """
    events: list[IncidentEvent] = []
    for thread in state.threads:
        if thread.closed:
            continue
        thread.closed = True
        assessment = correlation._assess(state, thread, now, cfg)
        if assessment.verdict is None and not thread.version:
            continue  # a healthy request: nothing was reported, nothing to close
        event = correlation._version(
            state, thread, assessment, final=True, cfg=cfg, judged=True
        )
        events.append(
            event.model_copy(
                update={
                    "closed_early": True,
                    "closed_early_reason": "open_correlation_cap",
                }
            )
        )
    return events


@dataclass
class Schedule:
    """Keys to look at again at an event time, earliest first. A key already queued
    for the same time is not queued twice: every look re-queues the key's next time,
    which would otherwise pile up copies for as long as the key is held."""

    _heap: list[tuple[float, str]] = field(default_factory=list)
    _queued: set[tuple[float, str]] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: float, key: str) -> None:
        entry = (at, key)
        if entry not in self._queued:
            self._queued.add(entry)
            heapq.heappush(self._heap, entry)

    def pop(self, now: float) -> str | None:
        """The next key due at or before ``now``, or None."""
        if not self._heap or self._heap[0][0] > now:
            return None
        entry = heapq.heappop(self._heap)
        self._queued.discard(entry)
        return entry[1]


@dataclass
class Pipeline:
    cfg: CoreConfig = field(default_factory=CoreConfig)
    allowed_lateness: float = 10.0
    max_line_bytes: int = 1_048_576
    max_open_correlations: int = 200_000
    states: dict[str, correlation.CorrelationState] = field(default_factory=dict)
    windows: dict[str, patterns.ShapeWindow] = field(default_factory=dict)
    _due: Schedule = field(default_factory=Schedule)
    _shape_due: Schedule = field(default_factory=Schedule)
    _max_t: float = float("-inf")
    #: Correlations closed early for the cap, and those of them that had no verdict
    #: yet (one still inside a lineage deadline, say), so ended without an incident.
    closed_early: int = 0
    closed_unreported: int = 0
    _open: OpenCorrelations = field(init=False)

    def __post_init__(self) -> None:
        self._open = OpenCorrelations(self.max_open_correlations)

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        """The pipeline ``triage replay`` runs: every bound from the settings."""
        return cls(
            cfg=CoreConfig.from_settings(settings),
            allowed_lateness=settings.allowed_lateness_seconds,
            max_line_bytes=settings.max_line_bytes,
            max_open_correlations=settings.max_open_correlations,
        )

    @property
    def watermark(self) -> float:
        return self._max_t - self.allowed_lateness

    def feed_raw(
        self, raw: bytes, ref: SourceRef, topic_service: str | None = None
    ) -> list[Output]:
        parsed = parse_line(
            raw, ref, max_bytes=self.max_line_bytes, topic_service=topic_service
        )
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
        self._open.hold(cid, newest_line(state))
        self._due.push(correlation.next_due(state, now=now, cfg=self.cfg), cid)
        out: list[Output] = []
        for incident in incidents:
            out.append(incident)
            out.extend(self._observe(incident))
        out.extend(self._enforce_cap(now, keep=cid))
        out.extend(self.advance(now))
        return out

    def _enforce_cap(self, now: float, *, keep: str) -> list[Output]:
        out: list[Output] = []
        while self._open.over_cap():
            cid = self._open.oldest(besides=keep)
            if cid is None:
                break
            self._open.release(cid)
            state = self.states.pop(cid, None)
            if state is None:
                continue
            final = close_early(state, now=now, cfg=self.cfg)
            for incident in final:
                out.append(incident)
                out.extend(self._observe(incident))
            self.closed_early += 1
            self.closed_unreported += not final
            if self.closed_early & (self.closed_early - 1) == 0:
                # Said at the 1st, 2nd, 4th, 8th... time: a stream over its cap
                # would otherwise log once per line.
                logger.warning(
                    "%d correlation(s) closed early so far (%d of them with no verdict "
                    "yet, so no incident): more than %d open "
                    "(TRIAGE_MAX_OPEN_CORRELATIONS); latest correlation_id %s; its "
                    "incidents are final and marked closed_early",
                    self.closed_early,
                    self.closed_unreported,
                    self._open.cap,
                    cid,
                )
        return out

    def _observe(self, incident: IncidentEvent) -> list[EscalationEvent]:
        if incident.shape is None or not incident.settled:
            return []
        if patterns.is_tenantless(incident):
            return [
                escalation
                for window in self.windows.values()
                for escalation in patterns.attach_shared(window, incident, self.cfg)
            ]
        key = incident.shape.fingerprint
        window, escalations = patterns.observe(
            self.windows.get(key), incident, self.cfg
        )
        if window is not None:
            self.windows[key] = window
            self._shape_due.push(patterns.next_due(window, self.cfg), key)
        return escalations

    def advance(self, now: float) -> list[Output]:
        out: list[Output] = []
        while (cid := self._due.pop(now)) is not None:
            state = self.states.get(cid)
            if state is None:
                continue
            kept, incidents = correlation.advance(state, now=now, cfg=self.cfg)
            for incident in incidents:
                out.append(incident)
                out.extend(self._observe(incident))
            if kept is None:
                del self.states[cid]
                self._open.release(cid)
            else:
                self._open.hold(cid, newest_line(kept))
                self._due.push(correlation.next_due(kept, now=now, cfg=self.cfg), cid)
        while (key := self._shape_due.pop(now)) is not None:
            window = self.windows.get(key)
            if window is None:
                continue
            kept_window, escalations = patterns.expire(window, now=now, cfg=self.cfg)
            out.extend(escalations)
            if kept_window is None:
                del self.windows[key]
            else:
                self._shape_due.push(patterns.next_due(kept_window, self.cfg), key)
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
