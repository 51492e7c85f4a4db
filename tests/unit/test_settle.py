"""An incident settles one lateness period after its line, not at close."""

from __future__ import annotations

from factories import log_line, ref, to_log_line

from gpuaas_triage.classifiers import correlation
from gpuaas_triage.classifiers.config import CoreConfig

CFG = CoreConfig(quiet_gap=120.0, allowed_lateness=10.0, lineage_deadline=60.0)


def test_a_failed_thread_is_due_when_its_hold_ends_not_at_close() -> None:
    """A relay give-up with nothing pending is due for its settling judgement at
    the end of its hold, long before the quiet gap closes it."""
    line = to_log_line(
        log_line(
            0,
            service="gpuaas-outbox-relay",
            level="error",
            outbox_status="failed",
            attempt=5,
            error="quota exceeded",
        )
    )
    now = line.t - CFG.allowed_lateness

    state, first = correlation.ingest(None, line, ref(1), now=now, cfg=CFG)
    due = correlation.next_due(state, now=now, cfg=CFG)
    kept, settled = correlation.advance(state, now=due, cfg=CFG)

    assert [e.settled for e in first] == [False]
    assert due == line.t
    assert [(e.settled, e.final) for e in settled] == [(True, False)]
    assert kept is not None
