"""Back-off for aiokafka's reconnects while a broker is down.

aiokafka 0.14 retries a broker that refuses connections without waiting: its fetcher
asks for a metadata update, the update fails at once because no node answers, and
the fetcher asks again (aio-libs/aiokafka#496, reopened in 2025). A worker then dials
the broker thousands of times a second, logs an error for each attempt and keeps a
core busy until the broker is back. On loopback, with the broker's port inside the
ephemeral range, one of those attempts can even connect to itself and hold the port
the restarting broker needs.

``install`` wraps two methods of the client the way the Java client's
``reconnect.backoff.ms`` and ``reconnect.backoff.max.ms`` behave: after a failed
attempt a node is not dialled again for a delay that doubles with each failure up to
a ceiling, and a metadata update that reached no node waits that long before it
reports the failure. A success resets both.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from typing import Any

from aiokafka.client import AIOKafkaClient, ConnectionGroup

logger = logging.getLogger(__name__)

#: First delay after a failure; it doubles per failure up to the ceiling.
BASE_SECONDS = 0.1
CEILING_SECONDS = 1.0


@dataclass(slots=True)
class _Failures:
    count: int = 0
    not_before: float = 0.0

    def delay(self) -> float:
        return min(BASE_SECONDS * 2.0 ** max(self.count - 1, 0), CEILING_SECONDS)


_nodes: weakref.WeakKeyDictionary[Any, dict[Any, _Failures]] = (
    weakref.WeakKeyDictionary()
)
_metadata: weakref.WeakKeyDictionary[Any, _Failures] = weakref.WeakKeyDictionary()
_installed = False


def install() -> None:
    """Wrap ``AIOKafkaClient`` once per process; later calls do nothing."""
    global _installed
    if _installed:
        return

    get_conn = getattr(AIOKafkaClient, "_get_conn", None)
    metadata_update = getattr(AIOKafkaClient, "_metadata_update", None)
    if get_conn is None or metadata_update is None:
        logger.warning(
            "aiokafka has no _get_conn/_metadata_update to wrap; reconnects to a "
            "down broker go without back-off (check the pinned aiokafka version)"
        )
        return

    async def backed_off_get_conn(self: Any, node_id: Any, **kwargs: Any) -> Any:
        group = kwargs.get("group", ConnectionGroup.DEFAULT)
        live = self._conns.get((node_id, group))
        failures = _nodes.setdefault(self, {}).get(node_id)
        loop = asyncio.get_running_loop()
        if (
            (live is None or not live.connected())
            and failures is not None
            and loop.time() < failures.not_before
        ):
            return None

        conn = await get_conn(self, node_id, **kwargs)
        if conn is not None:
            _nodes[self].pop(node_id, None)
            return conn

        failures = _nodes[self].setdefault(node_id, _Failures())
        failures.count += 1
        failures.not_before = loop.time() + failures.delay()
        return None

    async def backed_off_metadata_update(
        self: Any, cluster_metadata: Any, topics: Any
    ) -> Any:
        updated = await metadata_update(self, cluster_metadata, topics)
        if updated:
            _metadata.pop(self, None)
            return updated

        failures = _metadata.setdefault(self, _Failures())
        failures.count += 1
        await asyncio.sleep(failures.delay())
        return updated

    AIOKafkaClient._get_conn = backed_off_get_conn
    AIOKafkaClient._metadata_update = backed_off_metadata_update
    _installed = True
