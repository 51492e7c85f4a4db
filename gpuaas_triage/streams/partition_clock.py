"""Event time per partition, with wall-clock progress when a partition goes idle.

Each partition's watermark is the newest event time it has carried. When no line has
arrived for a while, event time is taken to move on with the wall clock, so a quiet
stream still closes its correlations and fires its lineage deadlines.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass(slots=True)
class PartitionClock:
    allowed_lateness: float
    newest: dict[int, float] = field(default_factory=dict)
    arrived: dict[int, float] = field(default_factory=dict)

    def observe(self, partition: int, event_t: float, wall: float) -> None:
        if event_t > self.newest.get(partition, float("-inf")):
            self.newest[partition] = event_t
        self.arrived[partition] = wall

    def seed(self, partition: int, event_t: float, wall: float) -> None:
        """After a restart: resume from the newest event time the state holds."""
        if partition not in self.newest:
            self.newest[partition] = event_t
            self.arrived[partition] = wall

    def now(self, partition: int, wall: float) -> float:
        newest = self.newest.get(partition)
        if newest is None:
            return float("-inf")
        idle = max(0.0, wall - self.arrived[partition])
        return newest - self.allowed_lateness + idle

    def forget(self) -> None:
        self.newest.clear()
        self.arrived.clear()


@dataclass(slots=True)
class DueIndex:
    """Per partition, which keys need attention at which event time."""

    heaps: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    due: dict[int, dict[str, float]] = field(default_factory=dict)

    def set(self, partition: int, key: str, at: float | None) -> None:
        current = self.due.setdefault(partition, {})
        if at is None or at == float("inf"):
            current.pop(key, None)
            return
        if current.get(key) == at:
            return
        current[key] = at
        heapq.heappush(self.heaps.setdefault(partition, []), (at, key))

    def pop_due(self, partition: int, now: float) -> list[str]:
        heap = self.heaps.get(partition, [])
        current = self.due.get(partition, {})
        keys: list[str] = []
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if current.get(key) == at:
                del current[key]
                keys.append(key)
        return keys

    def size(self, partition: int) -> int:
        return len(self.due.get(partition, {}))

    def forget(self) -> None:
        self.heaps.clear()
        self.due.clear()
