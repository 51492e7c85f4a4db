"""What the reliability tests share: the uncrashed reference, the incidents a run
left on its topic, raw input records, and workers that are always stopped."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from gpuaas_triage.classifiers.pipeline import Pipeline
from gpuaas_triage.schemas.dead_letter import DeadLetter
from gpuaas_triage.schemas.events import IncidentEvent
from gpuaas_triage.schemas.source import file_ref
from gpuaas_triage.settings import Settings

from .harness import WorkerProcess, latest_by, read_topic, verdict_view

#: A group that notices a dead worker within seconds: the broker's lowest session
#: timeout, so the kill tests do not wait out the production default.
FAST_GROUP = {
    "broker_session_timeout_seconds": 6.0,
    "broker_heartbeat_interval_seconds": 1.0,
}

_INDEXED = re.compile(r"indexed (\d+) open correlation\(s\) after assignment")


@dataclass(frozen=True)
class Reference:
    """What the in-memory pipeline makes of the lines, run once without a crash."""

    finals: dict[str, tuple[Any, ...]]
    incident_ids: frozenset[str]
    dead_letters: int


def reference(lines: list[bytes], settings: Settings) -> Reference:
    pipeline = Pipeline.from_settings(settings)
    outputs = []
    for number, raw in enumerate(lines, start=1):
        outputs.extend(pipeline.feed_raw(raw, file_ref("lines", number)))
    outputs.extend(pipeline.finish())

    incidents = [o for o in outputs if isinstance(o, IncidentEvent)]
    newest = {i.incident_id: i for i in incidents}
    return Reference(
        finals={
            incident_id: verdict_view(incident.model_dump(mode="json"))
            for incident_id, incident in newest.items()
            if incident.final and incident.status != "recovered"
        },
        incident_ids=frozenset(newest),
        dead_letters=sum(1 for o in outputs if isinstance(o, DeadLetter)),
    )


def incident_records(settings: Settings) -> list[dict[str, Any]]:
    return read_topic(settings.effective_bootstrap, settings.incidents_topic)


def finals_of(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest version of each incident, where that version is a final one."""
    return {
        incident_id: record
        for incident_id, record in latest_by(records, "incident_id").items()
        if record["final"] and record["status"] != "recovered"
    }


def has_all_finals(settings: Settings, expected: Reference) -> bool:
    finals = finals_of(incident_records(settings))
    return all(
        incident_id in finals and verdict_view(finals[incident_id]) == view
        for incident_id, view in expected.finals.items()
    )


def assert_same_as_reference(
    records: list[dict[str, Any]], expected: Reference
) -> None:
    """Every final incident of the reference, with its verdict; anything more is
    another version of an incident the reference knows."""
    finals = finals_of(records)
    got = {i: verdict_view(finals[i]) for i in expected.finals if i in finals}
    assert got == expected.finals

    unknown = {r["incident_id"] for r in records} - expected.incident_ids
    assert not unknown, f"incidents the uncrashed run does not know: {unknown}"


def repeated_versions(records: list[dict[str, Any]]) -> int:
    """Records that repeat an (incident_id, version) already on the topic."""
    pairs = [(r["incident_id"], r["version"]) for r in records]
    return len(pairs) - len(set(pairs))


def indexed_after_assignment(log_path: Path) -> list[int]:
    """How many correlations a worker found in its table at each assignment."""
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return [int(n) for n in _INDEXED.findall(text)]


def log_count(log_path: Path, needle: str) -> int:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return text.count(needle)


@dataclass
class Workers:
    """Workers started in a test; each is killed at the end if still running."""

    started: list[WorkerProcess] = field(default_factory=list)

    def start(self, settings: Settings, log_path: Path) -> WorkerProcess:
        worker = WorkerProcess(settings, log_path).start()
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            if worker.alive():
                worker.kill()


@contextmanager
def workers() -> Iterator[Workers]:
    group = Workers()
    try:
        yield group
    finally:
        group.stop_all()


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    value: bytes


def read_raw(bootstrap: str, topic: str) -> list[RawRecord]:
    """Every record on ``topic`` as bytes, with where it is."""
    return asyncio.run(_read_raw(bootstrap, topic))


async def _read_raw(bootstrap: str, topic: str) -> list[RawRecord]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(assigned) if assigned else {}
        records: list[RawRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            positions = {tp: await consumer.position(tp) for tp in assigned}
            if all(positions[tp] >= ends[tp] for tp in assigned):
                break
            batch = await consumer.getmany(timeout_ms=500)
            for tp, tp_records in batch.items():
                records.extend(
                    RawRecord(r.topic, r.partition, r.offset, r.value)
                    for r in tp_records
                    if r.offset < ends[tp]
                )
        return records
    finally:
        await consumer.stop()


def committed_offsets(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Per topic, the sum of the offsets the worker group has committed."""
    return asyncio.run(_committed(settings, topics))


async def _committed(settings: Settings, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.effective_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
    finally:
        await admin.close()
    totals = dict.fromkeys(topics, 0)
    for tp, meta in offsets.items():
        if tp.topic in totals and meta.offset >= 0:
            totals[tp.topic] += meta.offset
    return totals


def end_offsets(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Per topic, the sum of its partitions' end offsets."""
    return asyncio.run(_ends(bootstrap, topics))


async def _ends(bootstrap: str, topics: list[str]) -> dict[str, int]:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        totals = {}
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in partitions]
            ends = await consumer.end_offsets(tps) if tps else {}
            totals[topic] = sum(ends.values())
        return totals
    finally:
        await consumer.stop()
