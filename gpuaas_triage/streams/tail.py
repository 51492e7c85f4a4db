"""``triage tail``: incidents and escalations as they arrive."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from gpuaas_triage.settings import Settings
from gpuaas_triage.streams.kafka_auth import client_options

logger = logging.getLogger(__name__)


def human(event: dict[str, Any]) -> str:
    """One line a person can read at a glance."""
    if event.get("type") == "escalation":
        shape = event.get("shape", {})
        return (
            f"ESCALATION {event['status']:<8} {event['kind']} "
            f"{shape.get('failure_class')}/{shape.get('category')} at "
            f"{shape.get('service')}: {event['distinct_orgs']} org(s), "
            f"{event['distinct_projects']} project(s), owner {event['owner']}"
        )
    ctx = event.get("context", {})
    failed = ",".join(event.get("checks_failed", [])) or "-"
    mark = "final" if event.get("final") else "v" + str(event.get("version"))
    return (
        f"INCIDENT   {event.get('status', ''):<9} {mark:<5} {event['correlation_id']} "
        f"{ctx.get('org_id')}/{ctx.get('project_id')} {ctx.get('action') or '-'} "
        f"{ctx.get('app_slug') or '-'}: {event.get('failure_class')}/"
        f"{event.get('category')} failed checks [{failed}]"
        + (" ESCALATE" if event.get("escalate") else "")
    )


async def tail(
    settings: Settings,
    *,
    as_json: bool,
    from_beginning: bool,
    idle_exit: float | None,
    emit: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Print events until idle for ``idle_exit`` seconds (forever when None)."""
    write = emit or (lambda text: print(text, flush=True))  # noqa: T201  # the CLI's output
    consumer = AIOKafkaConsumer(
        settings.incidents_topic,
        settings.escalations_topic,
        **client_options(settings),
        group_id=f"{settings.app_id}-tail-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    shown = 0
    loop = asyncio.get_running_loop()
    last = loop.time()
    try:
        while not (stop is not None and stop.is_set()):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    event = orjson.loads(record.value)
                    write(orjson.dumps(event).decode() if as_json else human(event))
                    shown += 1
                    last = loop.time()
            if idle_exit is not None and loop.time() - last >= idle_exit:
                break
    finally:
        await consumer.stop()
    return shown


def run(
    settings: Settings, *, as_json: bool, from_beginning: bool, idle_exit: float | None
) -> int:
    try:
        asyncio.run(
            tail(
                settings,
                as_json=as_json,
                from_beginning=from_beginning,
                idle_exit=idle_exit,
            )
        )
    except KeyboardInterrupt:
        sys.stderr.write("\n")
    return 0
