"""Escalation detection delay: from the failing line of the tenant that crosses the
threshold to the escalation on the topic, on a real broker and a real worker.

The worker runs with the default event-time settings (10 s allowed lateness, 5 s
idle source): an incident counts toward its shape only once settled, so on a quiet
stream the delay is about lateness + idle time; steady traffic moves event time on
sooner.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from gpuaas_triage.bench.worker_process import WorkerProcess
from gpuaas_triage.settings import Settings
from gpuaas_triage.streams import produce
from gpuaas_triage.streams.kafka_auth import client_options
from gpuaas_triage.streams.topics import ensure_topics

logger = logging.getLogger(__name__)


def _failing_line(org: int, episode: str) -> bytes:
    """An outbox relay give-up for tenant ``org``, stamped now."""
    return orjson.dumps(
        {
            "ts": datetime.now(tz=UTC).isoformat(),
            "service": "gpuaas-outbox-relay",
            "level": "error",
            "msg": "publish failed, giving up",
            "correlation_id": f"{episode}-{org}",
            "org_id": f"org-{episode}-{org}",
            "project_id": f"proj-{episode}-{org}",
            "action": "deploy",
            "operating_mode": "platform_managed",
            "control_plane_scope": "platform",
            "runtime_backend": "kubernetes",
            "outbox_status": "failed",
            "attempt": 5,
            "error": f"quota exceeded on shared broker {episode}",
        }
    )


async def _episode(
    settings: Settings, consumer: AIOKafkaConsumer, episode: str, wait_seconds: float
) -> float:
    """Seconds from the crossing tenant's line to its escalation being read."""
    async with produce.LineSender(settings) as sender:
        for org in range(settings.escalation_min_orgs - 1):
            await (await sender.send(_failing_line(org, episode)))
        await asyncio.sleep(1.0)
        sent_at = time.monotonic()
        await (await sender.send(_failing_line(settings.escalation_min_orgs, episode)))

    deadline = sent_at + wait_seconds
    while time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=100)
        for records in batch.values():
            for record in records:
                event = orjson.loads(record.value)
                error = event.get("shape", {}).get("error") or ""
                if event.get("status") == "opened" and episode in error:
                    return time.monotonic() - sent_at
    raise TimeoutError(f"no escalation for episode {episode} within {wait_seconds:g}s")


async def _measure(
    settings: Settings, episodes: int, wait_seconds: float
) -> list[float]:
    consumer = AIOKafkaConsumer(
        settings.escalations_topic,
        **client_options(settings),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        return [
            await _episode(
                settings, consumer, f"ep{i}{uuid.uuid4().hex[:6]}", wait_seconds
            )
            for i in range(episodes)
        ]
    finally:
        await consumer.stop()


def measure(
    settings: Settings, *, episodes: int = 3, wait_seconds: float = 90.0
) -> dict[str, Any]:
    """Run a worker on topics of its own and time ``episodes`` escalations."""
    run = f"bench-esc-{uuid.uuid4().hex[:6]}"
    settings = settings.model_copy(
        update={
            "app_id": run,
            "input_topics": f"{run}-gpuaas-outbox-relay-logs",
            "incidents_topic": f"{run}-incidents",
            "escalations_topic": f"{run}-escalations",
            "dead_letter_topic": f"{run}-dead-letters",
            "store": "memory",
            "data_dir": Path(tempfile.mkdtemp(prefix=f"{run}-")),
        }
    )
    asyncio.run(ensure_topics(settings))
    worker = WorkerProcess(settings, settings.data_dir / "worker.log")
    try:
        delays = asyncio.run(_measure(settings, episodes, wait_seconds))
    finally:
        worker.process.terminate()
        worker.process.wait(timeout=60)
    return {
        "escalation_delay_ms": {
            "runs": [round(d * 1000) for d in delays],
            "median": round(statistics.median(delays) * 1000),
            "max": round(max(delays) * 1000),
        },
        "allowed_lateness_seconds": settings.allowed_lateness_seconds,
        "idle_source_seconds": settings.idle_source_seconds,
    }
