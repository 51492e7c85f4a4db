"""A Kafka broker for the test session, topics on it, and the integration marker.

The broker, first found wins: ``TRIAGE_TEST_BOOTSTRAP_SERVERS`` (or
``TRIAGE_BOOTSTRAP_SERVERS``); a testcontainers Kafka when a Docker engine answers;
the project's own LocalBroker on ports 19192/19193, sharing the jar cache of the
broker home. With none, integration tests fail under CI=true and skip elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code

from gpuaas_triage.errors import BrokerError
from gpuaas_triage.settings import Settings
from gpuaas_triage.streams.broker import LocalBroker

INTEGRATION_DIR = (Path(__file__).parent / "integration").resolve()
# Overridable so that two test sessions on one machine do not share a broker.
# Below the ephemeral range, so that no client's own source port can ever take it.
TEST_BROKER_PORT = int(os.environ.get("TRIAGE_TEST_BROKER_PORT", "19192"))
TEST_CONTROLLER_PORT = TEST_BROKER_PORT + 1
# Confluent Platform 7.9 ships Kafka 3.9, the release the local broker runs.
CONTAINER_IMAGE = os.environ.get(
    "TRIAGE_TEST_KAFKA_IMAGE", "confluentinc/cp-kafka:7.9.0"
)

T = TypeVar("T")
TopicFactory = Callable[..., str]


class KafkaUnavailable(Exception):
    """No broker could be had; the message lists why each source failed."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.resolve().is_relative_to(INTEGRATION_DIR):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of the session's broker, stopped at the end if started here."""
    with ExitStack() as stack:
        try:
            bootstrap = stack.enter_context(_session_broker())
        except KafkaUnavailable as exc:
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI needs a Kafka broker and none could be had: {exc}")
            pytest.skip(f"no Kafka broker: {exc}")
        yield bootstrap


@pytest.fixture
def topic_factory(
    kafka_bootstrap: str, request: pytest.FixtureRequest
) -> Iterator[TopicFactory]:
    """Creates topics named after the test plus a uuid; deletes them afterwards."""
    test_name = re.sub(r"[^A-Za-z0-9._-]", "_", request.node.name)[:60]
    prefix = f"test-{test_name}-{uuid.uuid4().hex[:8]}"
    created: list[str] = []

    def create(name: str = "topic", partitions: int = 1) -> str:
        topic = f"{prefix}-{len(created)}-{name}"
        _run(_create_topic(kafka_bootstrap, topic, partitions))
        created.append(topic)
        return topic

    yield create
    if created:
        _run(_delete_topics(kafka_bootstrap, created))


@contextmanager
def _session_broker() -> Iterator[str]:
    configured = os.environ.get("TRIAGE_TEST_BOOTSTRAP_SERVERS") or os.environ.get(
        "TRIAGE_BOOTSTRAP_SERVERS"
    )
    if configured:
        yield configured
        return

    reasons: list[str] = []
    container = _start_container(reasons)
    if container is not None:
        try:
            yield container.get_bootstrap_server()
        finally:
            container.stop()
        return

    broker = LocalBroker(
        Settings(), port=TEST_BROKER_PORT, controller_port=TEST_CONTROLLER_PORT
    )
    try:
        bootstrap = broker.start(timeout=90)
    except BrokerError as exc:
        reasons.append(f"local broker: {exc}")
        raise KafkaUnavailable("; ".join(reasons)) from exc
    try:
        yield bootstrap
    finally:
        broker.stop()


def _start_container(reasons: list[str]) -> Any | None:
    """A started KafkaContainer, or None (and why) when Docker cannot give one."""
    if not _docker_answers(reasons):
        return None

    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        from testcontainers.kafka import KafkaContainer  # releases before community/

    container = KafkaContainer(CONTAINER_IMAGE).with_kraft()
    try:
        container.start(timeout=120)
    except Exception as exc:  # an image pull or a start failure: use LocalBroker
        reasons.append(f"{CONTAINER_IMAGE} did not start ({exc!r})")
        with suppress(Exception):
            container.stop()
        return None
    return container


def _docker_answers(reasons: list[str]) -> bool:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        # The Docker SDK leaks its socket when the engine is absent; look first.
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(2)
                probe.connect(host.removeprefix("unix://"))
        except OSError as exc:
            reasons.append(f"no Docker engine at {host} ({exc.strerror})")
            return False

    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # whatever the failure, there is no usable engine
        reasons.append(f"Docker engine at {host} does not answer ({exc!r})")
        return False
    return True


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run admin calls on their own loop, so async tests can call the factory too."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)]
        )
    finally:
        await admin.close()

    for _name, code, *_ in response.topic_errors:
        if code != 0:
            raise for_code(code)(f"creating topic {topic}")


async def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        await admin.start()
        await admin.delete_topics(topics)
    except KafkaError:
        # A leftover topic only costs disk on a throwaway broker.
        pass
    finally:
        await admin.close()
