"""Event time per partition, with wall-clock progress when its sources go idle."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass(slots=True)
class PartitionClock:
    """Event time per partition: the slowest of the sources feeding it.

    A correlate partition is fed by several input topic-partitions (one per
    service), consumed at different speeds. Its watermark is the minimum over those
    sources of the newest event time each has carried, so a lagging relay topic
    holds judgement back instead of making its lines look missing. A source that
    has sent nothing for ``idle_after`` wall seconds is taken to be idle: its event
    time moves on with the wall clock, so it cannot hold the partition forever.
    """

    allowed_lateness: float
    idle_after: float = 5.0
    newest: dict[int, dict[str, float]] = field(default_factory=dict)
    arrived: dict[int, dict[str, float]] = field(default_factory=dict)

    def observe(self, partition: int, source: str, event_t: float, wall: float) -> None:
        newest = self.newest.setdefault(partition, {})
        if event_t > newest.get(source, float("-inf")):
            newest[source] = event_t
        self.arrived.setdefault(partition, {})[source] = wall

    def seed(self, partition: int, event_t: float, wall: float) -> None:
        """After a restart: resume from the newest event time the state holds."""
        if partition not in self.newest:
            self.observe(partition, "restored-state", event_t, wall)

    def now(self, partition: int, wall: float) -> float:
        newest = self.newest.get(partition)
        if not newest:
            return float("-inf")
        arrived = self.arrived[partition]
        slowest = min(
            t + max(0.0, wall - arrived[source] - self.idle_after)
            for source, t in newest.items()
        )
        return slowest - self.allowed_lateness

    def forget(self) -> None:
        self.newest.clear()
        self.arrived.clear()


@dataclass(slots=True)
class DueIndex:
    """Per partition, which keys need attention at which event time.

    A key touched less than ``settle`` wall seconds ago is not handed out yet: while
    a backlog is read, one service's topic can run ahead of another's, and the lines
    a correlation is waiting for may be a moment behind.
    """

    settle: float = 0.0
    heaps: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    due: dict[int, dict[str, float]] = field(default_factory=dict)
    touched: dict[str, float] = field(default_factory=dict)

    def touch(self, key: str, wall: float) -> None:
        self.touched[key] = wall

    def set(self, partition: int, key: str, at: float | None) -> None:
        current = self.due.setdefault(partition, {})
        if at is None or at == float("inf"):
            current.pop(key, None)
            return
        if current.get(key) == at:
            return
        current[key] = at
        heapq.heappush(self.heaps.setdefault(partition, []), (at, key))

    def pop_due(
        self, partition: int, now: float, wall: float = float("inf")
    ) -> list[str]:
        heap = self.heaps.get(partition, [])
        current = self.due.get(partition, {})
        keys: list[str] = []
        unsettled: list[tuple[float, str]] = []
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if current.get(key) != at:
                continue
            if wall - self.touched.get(key, float("-inf")) < self.settle:
                unsettled.append((at, key))
                continue
            del current[key]
            self.touched.pop(key, None)
            keys.append(key)
        for entry in unsettled:
            heapq.heappush(heap, entry)
        return keys

    def keys(self, partition: int) -> list[str]:
        """The keys scheduled on ``partition``, in no particular order."""
        return list(self.due.get(partition, {}))

    def size(self, partition: int) -> int:
        return len(self.due.get(partition, {}))

    def forget(self) -> None:
        self.heaps.clear()
        self.due.clear()
        self.touched.clear()
