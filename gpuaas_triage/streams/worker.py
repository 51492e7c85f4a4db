"""``triage worker``: one member of the consumer group."""

from __future__ import annotations

import asyncio
import logging

from gpuaas_triage.settings import Settings
from gpuaas_triage.streams.broker import ensure_broker
from gpuaas_triage.streams.topics import ensure_topics

logger = logging.getLogger(__name__)


def prepare(settings: Settings) -> Settings:
    """Point at the configured broker, or start the local one; create the topics."""
    bootstrap = ensure_broker(settings)
    if not settings.bootstrap_servers:
        logger.info(
            "no TRIAGE_BOOTSTRAP_SERVERS: using the local broker at %s", bootstrap
        )
        settings = settings.model_copy(update={"bootstrap_servers": bootstrap})
    asyncio.run(ensure_topics(settings))
    return settings


def run(settings: Settings, loglevel: str = "info") -> None:
    """Run until SIGTERM or SIGINT; Faust commits offsets and flushes on the way out."""
    import faust

    from gpuaas_triage.streams.app import create_app

    settings = prepare(settings)
    app = create_app(settings)
    logger.info(
        "worker %s consuming %s from %s (store %s)",
        settings.app_id,
        ", ".join(settings.input_topic_list),
        settings.effective_bootstrap,
        settings.store,
    )
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
