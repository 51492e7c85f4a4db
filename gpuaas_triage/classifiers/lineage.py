"""Whether a lifecycle action travelled API -> outbox relay -> runtime worker in time.

Deadlines are measured in event time from the hop before, so a replay of old logs
finds the same stuck actions a live worker found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpuaas_triage.classifiers.signals import (
    is_hop_success,
    is_outbox_delivery,
    is_outbox_failure,
)
from gpuaas_triage.classifiers.vocabulary import (
    API,
    HOP_ORDER,
    LIFECYCLE_ACTIONS,
    RELAY,
    WORKER,
    CheckStatus,
)
from gpuaas_triage.schemas.log_line import LogLine


@dataclass(frozen=True, slots=True)
class Lineage:
    """The hops seen in order, the hops missing, and when the next deadline falls."""

    services_seen: tuple[str, ...]
    hops_missing: tuple[str, ...]
    status: CheckStatus
    detail: str
    next_deadline: float | None
    expected: bool


def _accepted(line: LogLine) -> bool:
    if line.service != API or not is_hop_success(line):
        return False
    action = (line.action or "").lower()
    lifecycle = action in LIFECYCLE_ACTIONS or (not action and bool(line.event_id))
    accepted = (
        line.http_status == 202
        or bool(line.event_id)
        or "accept" in (line.msg or "").lower()
    )
    return lifecycle and accepted


def trace(lines: Sequence[LogLine], *, now: float, deadline: float) -> Lineage:
    """Follow one tenant's lines (sorted by event time) along the expected path."""
    seen: list[str] = []
    for line in lines:
        if line.service not in seen:
            seen.append(line.service)
    seen.sort(key=lambda s: HOP_ORDER.get(s, len(HOP_ORDER)))

    accepted_at = next((ln.t for ln in lines if _accepted(ln)), None)
    relay_lines = [ln for ln in lines if ln.service == RELAY]
    worker_seen = any(ln.service == WORKER for ln in lines)
    expected = accepted_at is not None or bool(relay_lines)

    if not expected:
        return Lineage(
            tuple(seen),
            (),
            "unknown",
            "no accepted lifecycle action on these lines",
            None,
            False,
        )
    if worker_seen:
        return Lineage(
            tuple(seen),
            (),
            "passed",
            "the runtime worker picked the action up",
            None,
            True,
        )

    delivered_at = next((ln.t for ln in relay_lines if is_outbox_delivery(ln)), None)
    gave_up = [ln for ln in relay_lines if is_outbox_failure(ln)]
    if gave_up and (delivered_at is None or delivered_at < gave_up[-1].t):
        return Lineage(
            tuple(seen),
            (WORKER,),
            "failed",
            f"the outbox relay gave up on event {gave_up[-1].event_id or '?'} "
            f"after {gave_up[-1].attempt or '?'} attempts: "
            "the worker never received it",
            None,
            True,
        )

    start = accepted_at if accepted_at is not None else relay_lines[0].t
    relay_due = start + deadline
    worker_due = (delivered_at if delivered_at is not None else relay_due) + deadline

    if not relay_lines and now >= relay_due:
        return Lineage(
            tuple(seen),
            (RELAY, WORKER),
            "failed",
            f"accepted but no outbox relay line within {deadline:g}s",
            None,
            True,
        )
    if relay_lines and now >= worker_due:
        return Lineage(
            tuple(seen),
            (WORKER,),
            "failed",
            f"no runtime worker line within {deadline:g}s of the outbox relay",
            None,
            True,
        )

    pending = relay_due if not relay_lines else worker_due
    return Lineage(
        tuple(seen), (), "unknown", "waiting for the next hop", pending, True
    )
