"""Conditions a worker reports in counts, at most once every few seconds.

A stream of bad lines, or a stream over the open-correlation cap, would otherwise
log once per message. Each report says how many happened since the previous one and
names the latest; what a burst leaves unsaid is said by a later ``flush``, which
the worker calls on a timer.
"""

from __future__ import annotations

import logging
import time

from gpuaas_triage.schemas.dead_letter import DeadLetter
from gpuaas_triage.schemas.source import describe

logger = logging.getLogger(__name__)

RATE_LIMIT_SECONDS = 10.0


class _Report:
    def __init__(self) -> None:
        self.total = 0
        self._said_at = float("-inf")
        self._said_total = 0

    def _due(self) -> bool:
        if self.total == self._said_total:
            return False
        return time.monotonic() - self._said_at >= RATE_LIMIT_SECONDS

    def _said(self) -> int:
        """Mark a report as made; the count it covers."""
        since, self._said_total = self.total - self._said_total, self.total
        self._said_at = time.monotonic()
        return since


class DeadLetterLog(_Report):
    """Dead letters by reason."""

    def __init__(self) -> None:
        super().__init__()
        self.by_reason: dict[str, int] = {}
        self._latest: DeadLetter | None = None

    def count(self, record: DeadLetter) -> None:
        self.total += 1
        self.by_reason[record.reason] = self.by_reason.get(record.reason, 0) + 1
        self._latest = record
        self.flush()

    def flush(self) -> None:
        latest = self._latest
        if latest is None or not self._due():
            return
        logger.warning(
            "%d line(s) dead-lettered since the last report, %d in all %s; latest: %s "
            "at %s; the worker goes on",
            self._said(),
            self.total,
            self.by_reason,
            latest.reason,
            describe(latest.source),
        )


class EarlyCloseLog(_Report):
    """Correlations closed early to keep a partition under the open-correlation cap;
    those with no verdict yet (say, still inside a lineage deadline) end without an
    incident, and are counted apart so that the loss shows."""

    def __init__(self, cap: int, partitions: int) -> None:
        super().__init__()
        self.cap = cap
        self.partitions = partitions
        self.unreported = 0
        self._latest: tuple[str, int] | None = None

    def count(self, correlation_id: str, partition: int, *, reported: bool) -> None:
        self.total += 1
        self.unreported += not reported
        self._latest = (correlation_id, partition)
        self.flush()

    def flush(self) -> None:
        latest = self._latest
        if latest is None or not self._due():
            return
        logger.warning(
            "%d correlation(s) closed early since the last report, %d in all (%d of "
            "them with no verdict yet, so no incident): a partition held more than %d "
            "open (TRIAGE_MAX_OPEN_CORRELATIONS over %d partitions); latest "
            "correlation_id %s on partition %d; their incidents are final and marked "
            "closed_early",
            self._said(),
            self.total,
            self.unreported,
            self.cap,
            self.partitions,
            *latest,
        )
