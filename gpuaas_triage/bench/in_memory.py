"""Measurements that need no broker: ``triage replay`` speed and state size."""

from __future__ import annotations

import gc
import io
import logging
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.classifiers.pipeline import Pipeline, latest
from gpuaas_triage.schemas.source import file_ref
from gpuaas_triage.settings import Settings
from gpuaas_triage.streams import replay


@contextmanager
def quiet_core() -> Iterator[None]:
    """The core logs each escalation it opens; run in the bench's own process,
    thousands of them would bury its progress lines."""
    core_log = logging.getLogger("gpuaas_triage.classifiers")
    level = core_log.level
    core_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        core_log.setLevel(level)


@dataclass(frozen=True)
class ReplayResult:
    lines: int
    replay_seconds: float
    parse_seconds: float
    outputs: int

    @property
    def replay_lines_per_s(self) -> float:
        return self.lines / self.replay_seconds

    @property
    def parse_lines_per_s(self) -> float:
        return self.lines / self.parse_seconds


def replay_speed(path: Path, settings: Settings) -> ReplayResult:
    """What ``triage replay FILE`` does (read, triage, write the latest version of
    each incident and escalation), against reading the same file and parsing each
    line with orjson. Both in this process, so interpreter start-up is not counted."""
    started = time.perf_counter()
    lines = 0
    for raw, _, _ in replay.read_lines([str(path)]):
        orjson.loads(raw)
        lines += 1
    parse_seconds = time.perf_counter() - started

    sink = io.BytesIO()
    started = time.perf_counter()
    outputs, _ = replay.replay([str(path)], settings)
    written = 0
    for event in latest(outputs):
        sink.write(orjson.dumps(event.model_dump(mode="json")) + b"\n")
        written += 1
    replay_seconds = time.perf_counter() - started
    return ReplayResult(lines, replay_seconds, parse_seconds, written)


@dataclass(frozen=True)
class StateSize:
    correlations: int
    open_threads: int
    traced_bytes: int

    @property
    def bytes_per_open_correlation(self) -> float:
        return self.traced_bytes / max(self.correlations, 1)


def state_size(lines: Sequence[bytes], settings: Settings) -> StateSize:
    """Memory the in-memory Pipeline holds after ``lines``, by tracemalloc, over the
    correlations it holds. The outputs are dropped as they come, so only the state
    (correlations, due heaps, shape windows) is counted."""
    pipeline = Pipeline(
        cfg=CoreConfig.from_settings(settings),
        allowed_lateness=settings.allowed_lateness_seconds,
        max_line_bytes=settings.max_line_bytes,
    )
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number, raw in enumerate(lines, start=1):
            pipeline.feed_raw(raw, file_ref("bench", number))
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    open_threads = sum(
        1 for state in pipeline.states.values() for t in state.threads if not t.closed
    )
    return StateSize(len(pipeline.states), open_threads, held)
