"""Topic names and their creation, so a worker never races Kafka's auto-create."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gpuaas_triage.errors import BrokerError
from gpuaas_triage.settings import Settings
from gpuaas_triage.streams.kafka_auth import client_options

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicNames:
    inputs: tuple[str, ...]
    correlate: str
    shapes: str
    incidents: str
    escalations: str
    dead_letters: str

    @classmethod
    def from_settings(cls, settings: Settings) -> TopicNames:
        return cls(
            inputs=tuple(settings.input_topic_list),
            correlate=f"{settings.app_id}-correlate",
            shapes=f"{settings.app_id}-shapes",
            incidents=settings.incidents_topic,
            escalations=settings.escalations_topic,
            dead_letters=settings.dead_letter_topic,
        )

    @property
    def compacted(self) -> tuple[str, ...]:
        # Keyed by incident_id / escalation_id: a compacted topic keeps the latest.
        return (self.incidents, self.escalations)

    @property
    def all(self) -> tuple[str, ...]:
        return (
            *self.inputs,
            self.correlate,
            self.shapes,
            self.incidents,
            self.escalations,
            self.dead_letters,
        )


async def ensure_topics(settings: Settings, wait_seconds: float = 30.0) -> None:
    """Create the topics the worker reads and writes, if they are missing.

    Topics that exist are left as they are: input topics belong to the platform.
    """
    names = TopicNames.from_settings(settings)
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=15000)
    try:
        await asyncio.wait_for(admin.start(), wait_seconds)
    except (TimeoutError, OSError, Exception) as exc:  # aiokafka raises its own types
        raise BrokerError(
            f"cannot reach Kafka at {settings.effective_bootstrap}: {exc}; start one "
            "with `triage broker start` or set TRIAGE_BOOTSTRAP_SERVERS"
        ) from exc
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs={"cleanup.policy": "compact"}
                if name in names.compacted
                else {},
            )
            for name in dict.fromkeys(names.all)
            if name not in existing
        ]
        if wanted:
            await admin.create_topics(wanted)
            logger.info("created topics %s", ", ".join(t.name for t in wanted))
            await _wait_for_metadata(admin, {t.name for t in wanted}, wait_seconds)
    finally:
        await admin.close()


async def _wait_for_metadata(
    admin: AIOKafkaAdminClient, names: set[str], wait_seconds: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while loop.time() < deadline:
        if names <= set(await admin.list_topics()):
            return
        await asyncio.sleep(0.2)
    raise BrokerError(f"topics {sorted(names)} did not appear within {wait_seconds:g}s")
