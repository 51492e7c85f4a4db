"""The Faust app: topics, tables, agents and the tick timer around the pure core.

Data flow: input log topics -> ``ingest`` (parse, dead-letter, key by correlation_id)
-> ``<app>-correlate`` -> ``correlate`` (table of correlation state, incident
versions) -> incidents topic, and ``<app>-shapes`` keyed by failure shape ->
``patterns`` (table of shape windows) -> escalations topic. When the input is
already keyed by correlation_id, ``correlate`` reads the input topics directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

import faust
import orjson

from gpuaas_triage.classifiers import correlation, patterns
from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.classifiers.pipeline import (
    OpenCorrelations,
    close_early,
    newest_line,
)
from gpuaas_triage.schemas import codec
from gpuaas_triage.schemas.dead_letter import DeadLetter
from gpuaas_triage.schemas.events import EscalationEvent, IncidentEvent
from gpuaas_triage.schemas.log_line import LogLine
from gpuaas_triage.schemas.parse import parse_line, service_for_topic
from gpuaas_triage.schemas.source import SourceRef, kafka_ref
from gpuaas_triage.settings import Settings
from gpuaas_triage.streams import kafka_backoff
from gpuaas_triage.streams.kafka_auth import faust_credentials
from gpuaas_triage.streams.partition_clock import DueIndex, PartitionClock
from gpuaas_triage.streams.reports import (
    RATE_LIMIT_SECONDS,
    DeadLetterLog,
    EarlyCloseLog,
)
from gpuaas_triage.streams.topics import TopicNames

logger = logging.getLogger(__name__)

_TICK = b'{"tick":true}'


class TriageStreams:
    """Owns the app, its topics and tables, and the in-memory indices over them."""

    def __init__(self, settings: Settings) -> None:
        codec.register()
        kafka_backoff.install()
        self.settings = settings
        self.cfg = CoreConfig.from_settings(settings)
        self.names = TopicNames.from_settings(settings)
        self.dead = DeadLetterLog()
        self.clock = PartitionClock(
            settings.allowed_lateness_seconds, settings.idle_source_seconds
        )
        self.due = DueIndex(settle=settings.idle_source_seconds)
        self.shape_clock = PartitionClock(0.0, settings.idle_source_seconds)
        self.shape_due = DueIndex()
        self._indexed = False
        self._shapes_indexed = False
        # The cap holds per partition, so that it holds whichever partitions a
        # worker is given.
        cap, partitions = settings.max_open_correlations, settings.partitions
        self.open_cap = max(1, -(-cap // partitions))
        self.open: dict[int, OpenCorrelations] = {}
        self.early = EarlyCloseLog(self.open_cap, settings.partitions)

        self.app = faust.App(
            settings.app_id,
            broker=f"kafka://{settings.effective_bootstrap}",
            broker_credentials=faust_credentials(settings),
            store="rocksdb://" if settings.store == "rocksdb" else "memory://",
            datadir=str(settings.data_dir),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            web_enabled=settings.web_enabled,
            web_port=settings.web_port,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.broker_session_timeout_seconds,
            broker_heartbeat_interval=settings.broker_heartbeat_interval_seconds,
            producer_acks=-1,
            # No linger: the correlate agent waits for each incident's ack before
            # it stores the state, so a linger would be paid on every incident.
            # Records still share a request while the one before is in flight.
            producer_linger=0.0,
            producer_max_batch_size=256 * 1024,
            autodiscover=False,
            table_cleanup_interval=30.0,
        )
        raw: faust.Schema[bytes, bytes] = faust.Schema(
            key_serializer="raw", value_serializer="raw"
        )
        json_out: faust.Schema[bytes, Any] = faust.Schema(
            key_serializer="raw", value_serializer="orjson"
        )
        self.inputs = self.app.topic(*self.names.inputs, schema=raw)
        self.correlate_topic = self.app.topic(
            self.names.correlate, partitions=settings.partitions, schema=raw
        )
        self.shapes_topic = self.app.topic(
            self.names.shapes, partitions=settings.partitions, schema=raw
        )
        self.incidents = self.app.topic(self.names.incidents, schema=json_out)
        self.escalations = self.app.topic(self.names.escalations, schema=json_out)
        self.dead_letters = self.app.topic(self.names.dead_letters, schema=json_out)

        # The store encodes and decodes keys by key_type, not by the schema: without
        # bytes here, a rocksdb store (or a changelog being restored) reads the raw
        # keys back as JSON and fails on every restart and rebalance.
        table_schema: faust.Schema[bytes, Any] = faust.Schema(
            key_serializer="raw", value_serializer="orjson"
        )
        self.correlations = self.app.Table(
            "correlations",
            partitions=settings.partitions,
            schema=table_schema,
            key_type=bytes,
        )
        self.windows = self.app.Table(
            "shape-windows",
            partitions=settings.partitions,
            schema=table_schema,
            key_type=bytes,
        )
        self._wire()

    # -- wiring ------------------------------------------------------------------

    def _wire(self) -> None:
        app = self.app
        keyed = self.settings.input_keyed_by_correlation_id
        correlate_channel = (
            app.topic(
                self.names.correlate,
                *self.names.inputs,
                key_serializer="raw",
                value_serializer="raw",
            )
            if keyed
            else self.correlate_topic
        )

        if not keyed:

            @app.agent(self.inputs, name="ingest")
            async def ingest(stream: faust.StreamT[bytes]) -> None:
                async for event in stream.events():
                    await self.on_input(event)

        @app.agent(correlate_channel, name="correlate")
        async def correlate(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                await self.on_correlate(event)

        @app.agent(self.shapes_topic, name="patterns")
        async def shapes(stream: faust.StreamT[bytes]) -> None:
            async for event in stream.events():
                await self.on_shape(event)

        @app.timer(  # type: ignore[untyped-decorator]  # faust's decorators are untyped
            self.settings.tick_seconds, on_leader=True
        )
        async def tick() -> None:
            for partition in range(self.settings.partitions):
                await self.correlate_topic.send(value=_TICK, partition=partition)
                await self.shapes_topic.send(value=_TICK, partition=partition)

        @app.timer(RATE_LIMIT_SECONDS)  # type: ignore[untyped-decorator]  # as above
        async def report() -> None:
            self.dead.flush()
            self.early.flush()

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust's stub
        # expects a keyword-only signal argument its own dispatcher does not pass
        async def reassigned(app: faust.App, assigned: Any, **_: Any) -> None:
            # Another worker may have changed the state of what comes back: rebuild
            # the due indices from the tables on the next message.
            self._indexed = self._shapes_indexed = False
            self.clock.forget()
            self.due.forget()
            self.shape_clock.forget()
            self.shape_due.forget()
            self.open.clear()

    # -- ingest --------------------------------------------------------------------

    def _parse(self, event: faust.EventT[bytes]) -> tuple[LogLine, SourceRef] | None:
        msg = event.message
        ref = kafka_ref(msg.topic, msg.partition, msg.offset)
        value = event.value if isinstance(event.value, bytes) else b""
        parsed = parse_line(
            value,
            ref,
            max_bytes=self.settings.max_line_bytes,
            topic_service=service_for_topic(msg.topic),
        )
        if isinstance(parsed, DeadLetter):
            self.dead.count(parsed)
            return None
        return parsed, ref

    async def _dead_letter(self, event: faust.EventT[bytes]) -> None:
        msg = event.message
        value = event.value if isinstance(event.value, bytes) else b""
        record = parse_line(
            value,
            kafka_ref(msg.topic, msg.partition, msg.offset),
            max_bytes=self.settings.max_line_bytes,
        )
        if isinstance(record, DeadLetter):
            await self.dead_letters.send(value=record.model_dump(mode="json"))

    async def on_input(self, event: faust.EventT[bytes]) -> None:
        parsed = self._parse(event)
        if parsed is None:
            await self._dead_letter(event)
            return
        line, ref = parsed
        envelope = orjson.dumps(
            {"l": line.model_dump(mode="json", exclude_none=True), "r": ref}
        )
        await self.correlate_topic.send(
            key=line.correlation_id.encode(), value=envelope
        )

    # -- correlate -----------------------------------------------------------------

    def _index(self) -> None:
        if self._indexed:
            return
        wall = time.time()
        for key, data in self.correlations.items():
            partition = data["partition"]
            state = correlation.CorrelationState.from_dict(data)
            due = correlation.next_due(state, now=float("-inf"), cfg=self.cfg)
            self.due.set(partition, _text(key), due)
            newest = newest_line(state)
            self.clock.seed(partition, newest, wall)
            self._open_in(partition).hold(_text(key), newest)
        self._indexed = True
        logger.info(
            "indexed %d open correlation(s) after assignment",
            sum(self.due.size(p) for p in range(self.settings.partitions)),
        )

    async def on_correlate(self, event: faust.EventT[bytes]) -> None:
        self._index()
        msg = event.message
        partition = msg.partition
        wall = time.time()

        if msg.topic == self.names.correlate:
            envelope = orjson.loads(event.value)
            if "tick" in envelope:
                await self._advance(partition, self.clock.now(partition, wall), wall)
                return
            line = LogLine.model_validate(envelope["l"])
            ref: SourceRef = envelope["r"]
        else:
            parsed = self._parse(event)
            if parsed is None:
                await self._dead_letter(event)
                return
            line, ref = parsed

        self.clock.observe(
            partition, f"{ref.get('topic')}:{ref.get('partition')}", line.t, wall
        )
        now = self.clock.now(partition, wall)
        key = line.correlation_id.encode()
        stored = self.correlations.get(key)
        if stored and _holds(stored, ref):
            # Redelivered after a crash (offsets are committed after the state is
            # written): counting the line twice would change the verdict.
            return
        state = correlation.CorrelationState.from_dict(stored) if stored else None
        state, incidents = correlation.ingest(state, line, ref, now=now, cfg=self.cfg)
        await self._publish(incidents)
        self._store(partition, key, state, now)
        self.due.touch(line.correlation_id, wall)
        await self._enforce_cap(partition, now, keep=line.correlation_id)
        await self._advance(partition, now, wall)

    def _open_in(self, partition: int) -> OpenCorrelations:
        held = self.open.get(partition)
        if held is None:
            held = self.open[partition] = OpenCorrelations(self.open_cap)
        return held

    async def _enforce_cap(self, partition: int, now: float, *, keep: str) -> None:
        held = self._open_in(partition)
        closed: list[bytes] = []
        incidents: list[IncidentEvent] = []
        while held.over_cap():
            cid = held.oldest(besides=keep)
            if cid is None:
                break
            held.release(cid)
            key = cid.encode()
            stored = self.correlations.get(key)
            if stored is None:
                continue
            state = correlation.CorrelationState.from_dict(stored)
            final = close_early(state, now=now, cfg=self.cfg)
            incidents.extend(final)
            closed.append(key)
            self.early.count(cid, partition, reported=bool(final))
        await self._publish(incidents)
        for key in closed:
            self._store(partition, key, None, now)

    def _store(
        self,
        partition: int,
        key: bytes,
        state: correlation.CorrelationState | None,
        now: float,
    ) -> None:
        if state is None:
            self.correlations.pop(key, None)
            self.due.set(partition, key.decode(), None)
            self._open_in(partition).release(key.decode())
            return
        data = state.to_dict()
        data["partition"] = partition
        self.correlations[key] = data
        self._open_in(partition).hold(key.decode(), newest_line(state))
        self.due.set(
            partition, key.decode(), correlation.next_due(state, now=now, cfg=self.cfg)
        )

    async def _advance(self, partition: int, now: float, wall: float) -> None:
        changed: list[tuple[bytes, correlation.CorrelationState | None]] = []
        incidents: list[IncidentEvent] = []
        for cid in self.due.pop_due(partition, now, wall):
            key = cid.encode()
            stored = self.correlations.get(key)
            if stored is None:
                continue
            state = correlation.CorrelationState.from_dict(stored)
            kept, published = correlation.advance(state, now=now, cfg=self.cfg)
            changed.append((key, kept))
            incidents.extend(published)
        await self._publish(incidents)
        for key, kept in changed:
            self._store(partition, key, kept, now)

    async def _publish(self, incidents: list[IncidentEvent]) -> None:
        """Send incident versions and wait until Kafka has them.

        Callers store the state that follows from these versions only afterwards: a
        worker killed in between then publishes them again from the older state,
        where the other order would leave state that says they were sent.
        """
        sent: list[Awaitable[Any]] = []
        for incident in incidents:
            value = incident.model_dump(mode="json")
            key = incident.incident_id.encode()
            sent.append(await self.incidents.send(key=key, value=value))
            if (
                incident.shape is not None
                and incident.settled
                and incident.status != "recovered"
            ):
                envelope = orjson.dumps({"incident": value})
                if patterns.is_tenantless(incident):
                    # Shared-service evidence may belong to an episode of any shape:
                    # every shape partition gets it.
                    for partition in range(self.settings.partitions):
                        sent.append(
                            await self.shapes_topic.send(
                                value=envelope, partition=partition
                            )
                        )
                else:
                    sent.append(
                        await self.shapes_topic.send(
                            key=incident.shape.fingerprint.encode(), value=envelope
                        )
                    )
            logger.debug(
                "incident %s v%d %s %s/%s",
                incident.incident_id,
                incident.version,
                incident.status,
                incident.failure_class,
                incident.category,
            )
        if sent:
            await asyncio.gather(*sent)

    # -- patterns ------------------------------------------------------------------

    def _index_shapes(self) -> None:
        if self._shapes_indexed:
            return
        wall = time.time()
        for key, data in self.windows.items():
            partition = data["partition"]
            window = patterns.ShapeWindow.from_dict(data)
            self.shape_due.set(
                partition, _text(key), patterns.next_due(window, self.cfg)
            )
            newest = max((h[0] for h in window.hits), default=None)
            if newest is not None:
                self.shape_clock.seed(partition, newest, wall)
        self._shapes_indexed = True

    async def on_shape(self, event: faust.EventT[bytes]) -> None:
        self._index_shapes()
        partition = event.message.partition
        wall = time.time()
        envelope = orjson.loads(event.value)
        if "tick" in envelope:
            await self._expire_shapes(partition, self.shape_clock.now(partition, wall))
            return

        incident = IncidentEvent.model_validate(envelope["incident"])
        assert incident.shape is not None  # noqa: S101  # only shaped ones are sent
        if patterns.is_tenantless(incident):
            await self._attach_shared(partition, incident)
            return
        first = correlation_time(incident.first_seen)
        self.shape_clock.observe(partition, "incidents", first, wall)
        now = self.shape_clock.now(partition, wall)
        key = incident.shape.fingerprint.encode()
        stored = self.windows.get(key)
        window = patterns.ShapeWindow.from_dict(stored) if stored else None
        window, escalations = patterns.observe(window, incident, self.cfg)
        await self._publish_escalations(escalations)
        self._store_window(partition, key, window)
        await self._expire_shapes(partition, now)

    async def _attach_shared(self, partition: int, incident: IncidentEvent) -> None:
        for fingerprint in self.shape_due.keys(partition):
            key = fingerprint.encode()
            stored = self.windows.get(key)
            if stored is None:
                continue
            window = patterns.ShapeWindow.from_dict(stored)
            escalations = patterns.attach_shared(window, incident, self.cfg)
            if escalations:
                await self._publish_escalations(escalations)
                self._store_window(partition, key, window)

    def _store_window(
        self, partition: int, key: bytes, window: patterns.ShapeWindow | None
    ) -> None:
        if window is None:
            self.windows.pop(key, None)
            self.shape_due.set(partition, key.decode(), None)
            return
        data = window.to_dict()
        data["partition"] = partition
        self.windows[key] = data
        self.shape_due.set(partition, key.decode(), patterns.next_due(window, self.cfg))

    async def _expire_shapes(self, partition: int, now: float) -> None:
        for fingerprint in self.shape_due.pop_due(partition, now):
            key = fingerprint.encode()
            stored = self.windows.get(key)
            if stored is None:
                continue
            window = patterns.ShapeWindow.from_dict(stored)
            kept, escalations = patterns.expire(window, now=now, cfg=self.cfg)
            await self._publish_escalations(escalations)
            self._store_window(partition, key, kept)

    async def _publish_escalations(self, escalations: list[EscalationEvent]) -> None:
        """Send escalation states and wait until Kafka has them, as ``_publish``."""
        sent: list[Awaitable[Any]] = []
        for escalation in escalations:
            sent.append(
                await self.escalations.send(
                    key=escalation.escalation_id.encode(),
                    value=escalation.model_dump(mode="json"),
                )
            )
            logger.info(
                "escalation %s %s: %s, %d org(s), owner %s",
                escalation.escalation_id,
                escalation.status,
                escalation.kind,
                escalation.distinct_orgs,
                escalation.owner,
            )
        if sent:
            await asyncio.gather(*sent)


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


def _holds(stored: dict[str, Any], ref: SourceRef) -> bool:
    """Whether a stored correlation already has the line ``ref`` points at."""
    return any(ref in thread["refs"] for thread in stored["threads"])


def correlation_time(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def create_app(settings: Settings) -> faust.App:
    return TriageStreams(settings).app
