"""``triage demo``: a broker, a worker, the public scenario cases played live, and
each incident shown as it arrives.

Every run uses its own topics and consumer group, so a second run shows only its
own incidents. The cases' lines are re-stamped onto the wall clock, keeping their
relative timing within a case (gaps longer than ``max_gap`` are shortened).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import orjson

from gpuaas_triage.errors import ConfigError
from gpuaas_triage.settings import Settings, settings_env
from gpuaas_triage.streams import produce, tail
from gpuaas_triage.streams.worker import prepare

logger = logging.getLogger(__name__)

CASES_CANDIDATES = (
    "../shared/cases/public.jsonl",
    "shared/cases/public.jsonl",
    "/cases/public.jsonl",
)


def find_cases(explicit: str | None) -> Path:
    candidates = (
        [explicit]
        if explicit
        else [os.environ.get("TRIAGE_DEMO_CASES", ""), *CASES_CANDIDATES]
    )
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ConfigError(
        f"no scenario cases file found (tried {', '.join(filter(None, candidates))}); "
        "pass --cases PATH or set TRIAGE_DEMO_CASES"
    )


def load_cases(path: Path) -> list[list[bytes]]:
    cases = []
    for raw in path.read_bytes().splitlines():
        if raw.strip():
            cases.append(produce.case_events(raw))
    return cases


def _ts(raw: bytes) -> float:
    value = str(orjson.loads(raw)["ts"]).replace("Z", "+00:00")
    return datetime.fromisoformat(value).timestamp()


async def play(cases: list[list[bytes]], settings: Settings, max_gap: float) -> int:
    """Send each case's lines at their relative times, cases one after another."""
    async with produce.LineSender(settings) as sender:
        for events in cases:
            await _play_case(sender, events, max_gap)
    return sender.sent


def compressed_offsets(times: list[float], max_gap: float) -> dict[float, float]:
    """Seconds from a case's first line to each line, gaps capped at ``max_gap``."""
    offsets: dict[float, float] = {}
    clock, previous = 0.0, None
    for t in sorted(set(times)):
        if previous is not None:
            clock += min(t - previous, max_gap)
        offsets[t] = clock
        previous = t
    return offsets


async def _play_case(
    sender: produce.LineSender, events: list[bytes], max_gap: float
) -> None:
    """Lines go out in their arrival order, each stamped and sent at its offset
    (a line that arrives out of order keeps its earlier stamp)."""
    times = [_ts(raw) for raw in events]
    offsets = compressed_offsets(times, max_gap)
    start_wall = time.time()
    sent_at = 0.0
    for raw, t in zip(events, times, strict=True):
        sent_at = max(sent_at, offsets[t])
        delay = start_wall + sent_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        shifted = produce.restamp(raw, start_wall + offsets[t] - t)
        await (await sender.send(shifted))
    await asyncio.sleep(0.5)


def demo_settings(settings: Settings) -> Settings:
    run = uuid.uuid4().hex[:6]
    prefix = f"demo-{run}"
    topics = ",".join(f"{prefix}-{t}" for t in settings.input_topic_list)
    return settings.model_copy(
        update={
            "app_id": f"gpuaas-triage-{prefix}",
            "input_topics": topics,
            "incidents_topic": f"{prefix}-incidents",
            "escalations_topic": f"{prefix}-escalations",
            "dead_letter_topic": f"{prefix}-dead-letters",
            "store": "memory",
            "data_dir": Path(tempfile.mkdtemp(prefix="triage-demo-")),
            "quiet_gap_seconds": 4.0,
            "lineage_deadline_seconds": 5.0,
            "allowed_lateness_seconds": 1.0,
            "tick_seconds": 0.5,
        }
    )


def _worker_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings_env(settings)}


async def _run(
    settings: Settings,
    cases_path: Path,
    with_worker: bool,
    idle_exit: float,
    max_gap: float,
) -> int:
    cases = load_cases(cases_path)
    worker: subprocess.Popen[bytes] | None = None
    if with_worker:
        worker = subprocess.Popen(  # noqa: ASYNC220  # a long-lived child, not awaited
            [sys.executable, "-m", "gpuaas_triage.streams.cli", "worker"],
            env=_worker_env(settings),
        )
        logger.info(
            "worker started (pid %d); playing %d case(s) from %s",
            worker.pid,
            len(cases),
            cases_path,
        )

    stop = asyncio.Event()
    shown: list[str] = []

    def emit(text: str) -> None:
        shown.append(text)
        print(text, flush=True)  # noqa: T201  # the demo's output

    tailing = asyncio.create_task(
        tail.tail(
            settings,
            as_json=False,
            from_beginning=True,
            idle_exit=None,
            emit=emit,
            stop=stop,
        )
    )
    try:
        sent = await play(cases, settings, max_gap)
        logger.info("sent %d line(s); waiting for the last incidents", sent)
        loop = asyncio.get_running_loop()
        last_count, last_change = len(shown), loop.time()
        while loop.time() - last_change < idle_exit:
            await asyncio.sleep(0.5)
            if len(shown) != last_count:
                last_count, last_change = len(shown), loop.time()
            if worker is not None and worker.poll() is not None:
                logger.error("worker exited with %s", worker.returncode)
                return 1
    finally:
        stop.set()
        await tailing
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
    incidents = sum(1 for s in shown if s.startswith("INCIDENT"))
    escalations = sum(1 for s in shown if s.startswith("ESCALATION"))
    print(  # noqa: T201  # the demo's closing line
        f"demo done: {sent} log lines in, {incidents} incident versions and "
        f"{escalations} escalation events out",
        flush=True,
    )
    return 0 if incidents else 1


def run(
    settings: Settings,
    *,
    cases: str | None,
    with_worker: bool,
    idle_exit: float,
    max_gap: float,
) -> int:
    path = find_cases(cases)
    if with_worker:
        settings = demo_settings(settings)
    settings = prepare(settings)
    return asyncio.run(_run(settings, path, with_worker, idle_exit, max_gap))
