"""Traffic onto the broker and records off it, with the times the bench needs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gpuaas_triage.bench.sentinels import BenchError
from gpuaas_triage.bench.traffic import TrafficLine
from gpuaas_triage.settings import Settings
from gpuaas_triage.streams.produce import TopicRouter

logger = logging.getLogger(__name__)


class Sender:
    """A started producer that sends TrafficLine to its service's topic, keyed by
    correlation_id, as the platform's log shippers would."""

    def __init__(self, settings: Settings) -> None:
        self.topics = TopicRouter(settings.input_topic_list).by_service
        self.fallback = settings.input_topic_list[0]
        self.producer = AIOKafkaProducer(
            bootstrap_servers=settings.effective_bootstrap,
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
        )

    async def __aenter__(self) -> Sender:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, line: TrafficLine) -> asyncio.Future[object]:
        topic = self.topics.get(line.service, self.fallback)
        future: asyncio.Future[object] = await self.producer.send(
            topic, line.raw, key=line.correlation_id.encode()
        )
        return future

    async def send_records(
        self, topic: str, records: Iterable[tuple[int, bytes, bytes]]
    ) -> None:
        """Send (partition, key, value) records to ``topic`` and wait for them."""
        futures = [
            await self.producer.send(topic, value, key=key, partition=partition)
            for partition, key, value in records
        ]
        await asyncio.gather(*futures)

    async def send_all(self, lines: Iterable[TrafficLine]) -> int:
        """Send and wait for every acknowledgement."""
        futures = [await self.send(line) for line in lines]
        await asyncio.gather(*futures)
        return len(futures)


async def paced(
    sender: Sender, lines: Sequence[TrafficLine], rate: float
) -> dict[str, float]:
    """Send ``lines`` at ``rate`` a second; return, per incident a line should open,
    the perf_counter time its line was handed to the producer."""
    sent_at: dict[str, float] = {}
    futures = []
    start = time.perf_counter()
    index = 0
    while index < len(lines):
        due = int((time.perf_counter() - start) * rate) + 1
        while index < min(due, len(lines)):
            line = lines[index]
            futures.append(await sender.send(line))
            if line.incident_id is not None:
                sent_at.setdefault(line.incident_id, time.perf_counter())
            index += 1
        await asyncio.sleep(0.002)
    await asyncio.gather(*futures)
    return sent_at


@dataclass
class KeyWatch:
    """Reads a topic from its start and keeps when each key was first seen: an
    incident_id on the incidents topic, an escalation_id on the escalations one."""

    bootstrap: str
    topic: str
    partitions: int
    first_seen: dict[str, float] = field(default_factory=dict)
    records: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        try:
            partitions = _partitions(self.topic, self.partitions)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=50, max_records=10_000)
                now = time.perf_counter()
                for records in batch.values():
                    self.records += len(records)
                    for record in records:
                        key = record.key.decode() if record.key else ""
                        self.first_seen.setdefault(key, now)
        finally:
            await consumer.stop()

    def stop(self) -> None:
        self._stop.set()

    def seen_all(self, keys: Iterable[str]) -> bool:
        return all(k in self.first_seen for k in keys)

    def seen_any(self, keys: Iterable[str]) -> bool:
        return any(k in self.first_seen for k in keys)


def _partitions(topic: str, count: int) -> list[TopicPartition]:
    # The bench created every topic it reads, with the run's partition count.
    return [TopicPartition(topic, p) for p in range(count)]


@dataclass(frozen=True)
class BaselineResult:
    lines: int
    seconds: float

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds


async def baseline(
    settings: Settings, expected: int, out_topic: str, within: float
) -> BaselineResult:
    """A bare aiokafka loop over the input topics: consume, parse with orjson,
    produce one record per line, as fast as it goes; timed from the first record
    received to the last acknowledgement."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.effective_bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.effective_bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await consumer.start()
    await producer.start()
    try:
        partitions = [
            tp
            for topic in settings.input_topic_list
            for tp in _partitions(topic, settings.partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + within
        futures: list[asyncio.Future[object]] = []
        start: float | None = None
        while len(futures) < expected:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"baseline read {len(futures)} of {expected} lines in {within:g}s"
                )
            batch = await consumer.getmany(timeout_ms=200, max_records=5_000)
            if start is None and batch:
                start = time.perf_counter()
            for records in batch.values():
                for record in records:
                    obj = orjson.loads(record.value)
                    value = orjson.dumps(
                        {
                            "correlation_id": obj.get("correlation_id"),
                            "service": obj.get("service"),
                        }
                    )
                    futures.append(
                        await producer.send(out_topic, value, key=record.key)
                    )
        await asyncio.gather(*futures)
        assert start is not None  # noqa: S101  # set with the first batch
        return BaselineResult(len(futures), time.perf_counter() - start)
    finally:
        await producer.stop()
        await consumer.stop()
