"""The Kafka worker and `triage replay` give the same incidents for the same lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuaas_triage.classifiers.pipeline import Pipeline, latest
from gpuaas_triage.schemas.events import EscalationEvent, IncidentEvent
from gpuaas_triage.schemas.source import file_ref
from gpuaas_triage.settings import Settings

from .cases import all_lines
from .harness import (
    WorkerProcess,
    isolated_settings,
    latest_by,
    prepare_topics,
    read_topic,
    send,
    verdict_view,
    wait_for,
)


def replay_in_memory(lines: list[bytes], settings: Settings) -> list[IncidentEvent | EscalationEvent]:
    pipeline = Pipeline.from_settings(settings)
    outputs = []
    for number, raw in enumerate(lines, start=1):
        outputs.extend(pipeline.feed_raw(raw, file_ref("cases", number)))
    outputs.extend(pipeline.finish())
    return list(latest(outputs))


def _finals(settings: Settings) -> dict[str, dict]:
    records = read_topic(settings.effective_bootstrap, settings.incidents_topic)
    return {
        k: v for k, v in latest_by(records, "incident_id").items()
        if v["final"] and v["status"] != "recovered"
    }


@pytest.mark.timeout(240)
@pytest.mark.parametrize("keyed", [False, True], ids=["repartitioned", "pre-keyed"])
def test_worker_incidents_equal_replay(kafka_bootstrap: str, tmp_path: Path, keyed: bool) -> None:
    """Every public case's lines, produced to the input topics, end as the same final
    incidents and escalations on the output topics as replay prints for them."""
    settings = isolated_settings(
        kafka_bootstrap, tmp_path, input_keyed_by_correlation_id=keyed
    )
    lines = all_lines()
    expected = replay_in_memory(lines, settings)
    want_incidents = sorted(
        verdict_view(e.model_dump(mode="json")) for e in expected
        if isinstance(e, IncidentEvent)
    )
    want_escalations = sorted(
        (e.shape.fingerprint, e.kind, e.distinct_orgs) for e in expected
        if isinstance(e, EscalationEvent)
    )
    prepare_topics(settings)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()

    try:
        send(settings, lines, keyed=True)
        wait_for(lambda: len(_finals(settings)) >= len(want_incidents), timeout=150,
                 worker=worker, what=f"{len(want_incidents)} final incidents")
        escalations = latest_by(
            read_topic(kafka_bootstrap, settings.escalations_topic), "escalation_id"
        )
    finally:
        code = worker.terminate()

    got = sorted(verdict_view(v) for v in _finals(settings).values())
    assert got == want_incidents
    assert want_escalations, "the public cases hold a cross-tenant failure"
    assert sorted(
        (e["shape"]["fingerprint"], e["kind"], e["distinct_orgs"]) for e in escalations.values()
    ) == want_escalations
    assert code == 0, worker.log_tail()
