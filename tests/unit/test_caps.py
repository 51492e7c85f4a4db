"""Bounded memory: the pipeline holds at most its cap of open correlations, closes
the oldest early and says so on the incident, accounts for every line, and its
memory does not grow with the length of a burst."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest

from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.classifiers.pipeline import OpenCorrelations, Output, Pipeline
from gpuaas_triage.schemas.dead_letter import DeadLetter
from gpuaas_triage.schemas.events import IncidentEvent
from gpuaas_triage.schemas.source import file_ref

CAP = 16
LINES = 100_000
EARLY = 20_000
#: Single allocations this large are not the pipeline's: the interpreter's table of
#: interned strings (held lines share their texts through it) is one such block, and
#: it is resized now and then, whatever the length of the burst.
BIG_BLOCK = 1 << 20
START = datetime(2026, 11, 20, tzinfo=UTC).timestamp()
STEP_SECONDS = 0.05
CFG = CoreConfig(
    quiet_gap=1.0,
    allowed_lateness=1.0,
    lineage_deadline=2.0,
    closed_retention=2.0,
    max_lines_per_correlation=6,
    escalation_window=60.0,
)


def generated_lines(count: int, *, slots: int = 12, seed: int = 7) -> Iterator[bytes]:
    """Failing API calls of one tenant among ten, ``slots`` correlations in flight
    at a time taking turns, three to eight lines each; every 97th line is not JSON.
    Event time moves on by ``STEP_SECONDS`` a line."""
    rnd = random.Random(seed)
    started = 0

    def fresh() -> list[int]:
        nonlocal started
        started += 1
        return [started, rnd.randint(3, 8), 0]

    flight = [fresh() for _ in range(slots)]
    for n in range(count):
        if n % 97 == 96:
            yield b'{"correlation_id": "cut-off'
            continue
        slot = flight[n % slots]
        number, length, done = slot
        org = f"org-{number % 10}"
        ts = datetime.fromtimestamp(START + n * STEP_SECONDS, tz=UTC).isoformat()
        yield orjson.dumps({
            "ts": ts, "service": "gpuaas-api", "correlation_id": f"burst-{number}",
            "org_id": org, "project_id": f"{org}-dev", "level": "error",
            "msg": f"request failed ({done + 1} of {length})", "http_status": 500,
        })
        slot[2] += 1
        if slot[2] == length:
            flight[n % slots] = fresh()


def held_bytes() -> int:
    """Traced memory in use now, without single blocks of ``BIG_BLOCK`` or more."""
    snapshot = tracemalloc.take_snapshot()
    return sum(trace.size for trace in snapshot.traces if trace.size < BIG_BLOCK)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_long_burst_stays_under_the_caps_and_every_line_is_accounted_for() -> None:
    """100,000 lines through a pipeline capped at 16 open correlations: never more
    are held, the early-closed incidents say so, lines_seen plus dead letters add up
    to the lines fed, and memory after 100,000 lines is what it was after 20,000."""
    pipeline = Pipeline(cfg=CFG, allowed_lateness=1.0, max_open_correlations=CAP)
    fed = dead = seen = dropped = most_held = 0
    finals: dict[bool, int] = {True: 0, False: 0}

    def account(outputs: list[Output]) -> None:
        nonlocal dead, seen, dropped
        for out in outputs:
            if isinstance(out, DeadLetter):
                dead += 1
            elif isinstance(out, IncidentEvent) and out.final:
                seen += out.lines_seen
                dropped += out.lines_dropped
                finals[out.closed_early] += 1
                assert out.closed_early == (
                    out.closed_early_reason == "open_correlation_cap"
                )

    tracemalloc.start()
    try:
        for number, raw in enumerate(generated_lines(LINES), start=1):
            account(pipeline.feed_raw(raw, file_ref("burst", number)))
            fed += 1
            most_held = max(most_held, len(pipeline.states))
            if number == EARLY:
                held_early = held_bytes()
                peak_early = tracemalloc.get_traced_memory()[1]
        held_late = held_bytes()
        account(pipeline.finish())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert most_held == CAP
    assert seen + dead == fed == LINES
    assert dead == LINES // 97
    assert finals[True] > 0 and finals[False] > 0, finals
    assert pipeline.closed_early >= finals[True]
    assert dropped > 0
    assert held_late < 1.25 * held_early + 256 * 1024, (held_early, held_late)
    assert peak < peak_early + 4 * BIG_BLOCK, (peak_early, peak)
    assert peak < 8 * BIG_BLOCK


def test_the_oldest_newest_line_is_chosen_and_the_fed_one_spared() -> None:
    """The correlation to close is the one whose newest line is the oldest, never
    the one just fed, and a newer line moves a correlation to the back."""
    held = OpenCorrelations(cap=2)
    held.hold("a", 10.0)
    held.hold("b", 20.0)
    held.hold("c", 30.0)
    held.hold("a", 40.0)

    assert held.over_cap()
    assert held.oldest() == "b"
    assert held.oldest(besides="b") == "c"
    held.release("b")
    assert not held.over_cap()
    assert held.oldest() == "c"


def test_the_index_of_held_correlations_stays_as_small_as_what_it_holds() -> None:
    """Holding the same few correlations again and again does not grow the index."""
    held = OpenCorrelations(cap=4)

    for n in range(10_000):
        held.hold(f"cid-{n % 4}", float(n))

    assert len(held) == 4
    assert len(held._heap) <= 2 * 4 + 64
