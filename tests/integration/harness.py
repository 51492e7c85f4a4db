"""Workers as real processes on the session's broker, and reading their output.

Each test gets its own app id and topics, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from gpuaas_triage.settings import Settings, settings_env
from gpuaas_triage.streams import produce
from gpuaas_triage.streams.topics import ensure_topics

#: Fast event-time settings so tests close correlations within seconds.
FAST = {
    "quiet_gap_seconds": 2.0,
    "lineage_deadline_seconds": 3.0,
    "allowed_lateness_seconds": 1.0,
    "tick_seconds": 0.5,
    "idle_source_seconds": 2.0,
    # Longer than the gaps between the public cases' tenants (10 s), so that one
    # burst stays one episode however the worker's clock and replay's differ.
    "escalation_quiet_seconds": 30.0,
}


def isolated_settings(bootstrap: str, tmp: Path, **overrides: Any) -> Settings:
    """Settings with an app id and topics of this test's own."""
    run = f"t{uuid.uuid4().hex[:8]}"
    topics = ",".join(
        f"{run}-{name}" for name in Settings().input_topic_list
    )
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "app_id": f"triage-{run}",
        "input_topics": topics,
        "incidents_topic": f"{run}-incidents",
        "escalations_topic": f"{run}-escalations",
        "dead_letter_topic": f"{run}-dead-letters",
        "store": "memory",
        "data_dir": tmp / "worker-data",
        "partitions": 4,
        **FAST,
        **overrides,
    }
    return Settings(**values)


def env_for(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings_env(settings)}


@dataclass
class WorkerProcess:
    """``triage worker`` as a child process, its output kept in a log file."""

    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gpuaas_triage.streams.cli", "worker"],
            env=env_for(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no commit, no flush, as a crash would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def prepare_topics(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))


def send(settings: Settings, lines: Iterable[bytes], *, keyed: bool = True) -> int:
    return asyncio.run(produce.produce(list(lines), settings, keyed=keyed))


def read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record now on ``topic``, decoded, in partition then offset order."""
    return asyncio.run(_read_topic(bootstrap, topic))


async def _read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    # Subscribing without a group makes start() fetch this topic's metadata.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return []
        ends = await consumer.end_offsets(assigned)
        records: list[dict[str, Any]] = []
        wanted = sum(ends.values())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            positions = [await consumer.position(tp) for tp in assigned]
            if all(pos >= ends[tp] for pos, tp in zip(positions, assigned, strict=True)):
                break
            batch = await consumer.getmany(timeout_ms=500)
            for tp, tp_records in batch.items():
                # Records written since the end offsets were read belong to the
                # next read: a worker may still be producing.
                records.extend(
                    orjson.loads(r.value) for r in tp_records if r.offset < ends[tp]
                )
        assert len(records) <= wanted
        return records
    finally:
        await consumer.stop()


def wait_for(
    predicate: Callable[[], bool], *, timeout: float, every: float = 1.0,
    worker: WorkerProcess | None = None, what: str = "condition",
) -> None:
    """Poll until ``predicate`` holds; fail with the worker's log tail if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if worker is not None and worker.process is not None and not worker.alive():
            raise AssertionError(
                f"worker exited ({worker.process.returncode}) waiting for {what}:\n"
                f"{worker.log_tail()}"
            )
        time.sleep(every)
    tail = worker.log_tail() if worker is not None else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}\n{tail}")


def latest_by(records: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """The highest version of each record, by ``key`` (incident_id, escalation_id)."""
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        held = latest.get(record[key])
        if held is None or record["version"] >= held["version"]:
            latest[record[key]] = record
    return latest


def verdict_view(incident: dict[str, Any]) -> tuple[Any, ...]:
    """What two drivers must agree on for an incident, leaving out where lines came
    from (file and line versus topic, partition and offset) and version counts."""
    ctx = incident["context"]
    return (
        incident["correlation_id"],
        ctx["org_id"],
        ctx["project_id"],
        incident["failure_class"],
        incident["category"],
        tuple(sorted(incident["checks_failed"])),
        incident["escalate"],
        tuple(incident["lineage"]["hops_missing"]),
        incident["lines_seen"],
    )
