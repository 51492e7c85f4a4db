"""The session's broker carries records; LocalBroker reports a stopped broker."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from gpuaas_triage.streams.broker import LocalBroker

ROUND_TRIP_SECONDS = 60.0


@pytest.mark.timeout(120)
def test_broker_round_trips_a_record_through_a_consumer_group(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    """A record produced to a fresh topic comes back to a group member intact."""
    topic = topic_factory("round-trip")

    record = asyncio.run(
        asyncio.wait_for(_round_trip(kafka_bootstrap, topic), ROUND_TRIP_SECONDS)
    )

    assert record.topic == topic
    assert (record.key, record.value) == (b"correlation-1", b'{"level":"error"}')


@pytest.mark.timeout(30)
def test_status_of_a_broker_that_is_not_running(tmp_path: Path) -> None:
    """On a port with no broker, status says so and still names bootstrap and log."""
    port, controller_port = _unused_port(), _unused_port()
    broker = LocalBroker(home=tmp_path, port=port, controller_port=controller_port)

    status = broker.status()

    assert not status.running
    assert status.pid is None
    assert status.bootstrap == f"127.0.0.1:{port}"
    assert status.log_path == tmp_path / f"broker-{port}.log"
    assert not broker.is_running()


@pytest.mark.timeout(30)
def test_status_ignores_a_pidfile_whose_pid_is_not_the_broker(tmp_path: Path) -> None:
    """A pidfile naming a live process that is not this broker counts as stale."""
    port, controller_port = _unused_port(), _unused_port()
    broker = LocalBroker(home=tmp_path, port=port, controller_port=controller_port)
    broker.pid_path.write_text(f"{os.getpid()}\n")

    status = broker.status()

    assert not status.running
    assert not broker.pid_path.exists()


async def _round_trip(bootstrap: str, topic: str) -> ConsumerRecord[bytes, bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"level":"error"}', key=b"correlation-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        return await consumer.getone()
    finally:
        await consumer.stop()


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
