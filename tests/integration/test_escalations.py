"""Escalations on the real broker: one per episode above the threshold, none below."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from .harness import (
    WorkerProcess,
    isolated_settings,
    latest_by,
    prepare_topics,
    read_topic,
    send,
    wait_for,
)


def relay_give_up(org: int, at: float, *, mode: str = "platform_managed") -> list[bytes]:
    """An accepted deploy whose outbox relay gives up, for tenant ``org``."""
    cid = f"esc-{org}-{int(at * 1000)}"
    base = {
        "correlation_id": cid,
        "org_id": f"org-{org}",
        "project_id": f"proj-{org}",
        "app_slug": "vllm-serve",
        "app_instance_id": f"ai-{org}",
        "actor_type": "user",
        "actor_id": "user-9",
        "operating_mode": mode,
        "control_plane_scope": "platform" if mode == "platform_managed" else "tenant",
        "runtime_backend": "kubernetes",
        "tenant_boundary_mode": "tenant",
        "event_id": f"evt-{cid}",
    }
    stamp = lambda t: datetime.fromtimestamp(t, tz=UTC).isoformat()  # noqa: E731
    return [
        orjson.dumps({**base, "ts": stamp(at), "service": "gpuaas-api", "level": "info",
                      "msg": "lifecycle action accepted", "action": "deploy",
                      "http_status": 202}),
        orjson.dumps({**base, "ts": stamp(at + 1), "service": "gpuaas-outbox-relay",
                      "level": "error", "msg": "publish failed, giving up",
                      "outbox_status": "failed", "attempt": 6,
                      "error": "shared broker quota exceeded"}),
    ]


def _escalations(settings) -> dict[str, dict]:
    return latest_by(read_topic(settings.effective_bootstrap,
                                settings.escalations_topic), "escalation_id")


def _incident_count(settings) -> int:
    records = read_topic(settings.effective_bootstrap, settings.incidents_topic)
    return len({r["incident_id"] for r in records})


@pytest.mark.timeout(180)
def test_one_escalation_per_episode_and_none_below_threshold(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Two orgs failing alike escalate nothing; a third opens exactly one escalation,
    a fourth updates it, and quiet resolves it."""
    # Tenants here fail a second apart: a short quiet window resolves quickly.
    settings = isolated_settings(kafka_bootstrap, tmp_path, escalation_quiet_seconds=5.0)
    prepare_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    now = time.time()

    try:
        send(settings, relay_give_up(1, now) + relay_give_up(2, now + 1))
        wait_for(lambda: _incident_count(settings) >= 2, timeout=90, worker=worker,
                 what="two incidents")
        below = read_topic(kafka_bootstrap, settings.escalations_topic)

        send(settings, relay_give_up(3, now + 2) + relay_give_up(4, now + 3))
        wait_for(
            lambda: any(e["status"] == "resolved" for e in _escalations(settings).values()),
            timeout=90, worker=worker, what="a resolved escalation",
        )
        events = read_topic(kafka_bootstrap, settings.escalations_topic)
    finally:
        worker.terminate()

    assert below == []
    assert len({e["escalation_id"] for e in events}) == 1
    statuses = [e["status"] for e in sorted(events, key=lambda e: e["version"])]
    assert statuses[0] == "opened" and statuses[-1] == "resolved"
    assert statuses.count("opened") == 1
    final = max(events, key=lambda e: e["version"])
    assert final["distinct_orgs"] == 4
    assert final["owner"] == "managed-service-owner:gpuaas-outbox-relay"
    assert final["shape"]["failure_class"] == "service_unavailable"
