"""``triage produce``: send JSON-lines log files to the input topics.

Each line goes to the topic of its service (per-service topics), or to the one topic
when there is one. A line that is not valid JSON is sent as it is, to the first
topic: the worker dead-letters it, which is what a test of bad input wants.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer

from gpuaas_triage.schemas.parse import service_for_topic
from gpuaas_triage.settings import Settings
from gpuaas_triage.streams.kafka_auth import client_options

logger = logging.getLogger(__name__)


def case_events(raw: bytes) -> list[bytes]:
    """A scenario case line (with ``events``) expands to its log lines."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [raw]
    if isinstance(obj, dict) and isinstance(obj.get("events"), list):
        return [orjson.dumps(event) for event in obj["events"]]
    return [raw]


class TopicRouter:
    def __init__(self, topics: list[str]) -> None:
        self.topics = topics
        self.by_service = {
            service: topic
            for topic in topics
            if (service := service_for_topic(topic)) is not None
        }

    def route(self, raw: bytes) -> tuple[str, bytes | None]:
        """The topic for a raw line and its key (the correlation_id, when known)."""
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.topics[0], None
        if not isinstance(obj, dict):
            return self.topics[0], None
        service = obj.get("service")
        topic = (
            self.by_service.get(service, self.topics[0])
            if isinstance(service, str)
            else self.topics[0]
        )
        cid = obj.get("correlation_id") or obj.get("request_id")
        return topic, str(cid).encode() if cid is not None else None


class LineSender:
    """A started producer that routes raw lines to the input topics."""

    def __init__(self, settings: Settings, *, keyed: bool = True) -> None:
        self.router = TopicRouter(settings.input_topic_list)
        self.keyed = keyed
        self.sent = 0
        self.producer = AIOKafkaProducer(
            **client_options(settings),
            acks="all",
            linger_ms=5,
            max_request_size=max(2 * settings.max_line_bytes, 1_048_576),
        )

    async def __aenter__(self) -> LineSender:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(self, raw: bytes) -> asyncio.Future[object]:
        topic, key = self.router.route(raw)
        self.sent += 1
        sent: asyncio.Future[object] = await self.producer.send(
            topic, raw, key=key if self.keyed else None
        )
        return sent


async def produce(
    lines: Iterable[bytes], settings: Settings, *, keyed: bool = True
) -> int:
    """Send every line, wait for every acknowledgement, return how many were sent."""
    async with LineSender(settings, keyed=keyed) as sender:
        futures = [await sender.send(raw) for raw in lines]
        await asyncio.gather(*futures)
    logger.info("sent %d line(s) to %s", sender.sent, ", ".join(sender.router.topics))
    return sender.sent


def restamp(raw: bytes, shift: float) -> bytes:
    """Move a line's ts by ``shift`` seconds (the demo plays old cases as live)."""
    obj = orjson.loads(raw)
    ts = datetime.fromisoformat(str(obj["ts"]).replace("Z", "+00:00"))
    obj["ts"] = datetime.fromtimestamp(ts.timestamp() + shift, tz=UTC).isoformat()
    return orjson.dumps(obj)
