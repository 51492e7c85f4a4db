"""Log lines for the unit tests: one flat dict with sensible defaults, any field
overridden, and the few conversions the tests need (LogLine, raw bytes, a replay).

A field overridden with None is left out of the line, as the services do with
fields a line does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.classifiers.pipeline import Output, Pipeline, latest
from gpuaas_triage.schemas.events import EscalationEvent, IncidentEvent
from gpuaas_triage.schemas.log_line import LogLine
from gpuaas_triage.schemas.source import SourceRef, file_ref

API = "gpuaas-api"
RELAY = "gpuaas-outbox-relay"
WORKER = "gpuaas-app-runtime-worker"
ADAPTER = "gpuaas-app-adapter"
PROXY = "gpuaas-app-proxy"

#: Event time zero of every factory line: seconds are counted from here.
T0 = datetime(2027, 3, 2, 8, 15, tzinfo=UTC)

Line = dict[str, Any]


def at(seconds: float) -> str:
    """RFC 3339 (with a Z zone) of ``seconds`` after T0."""
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def epoch(seconds: float) -> float:
    """Epoch seconds of ``seconds`` after T0."""
    return (T0 + timedelta(seconds=seconds)).timestamp()


def log_line(seconds: float = 0.0, **overrides: Any) -> Line:
    """A healthy gpuaas-api line of one tenant, ``seconds`` after T0."""
    line: Line = {
        "ts": at(seconds),
        "service": API,
        "level": "info",
        "msg": "request received",
        "correlation_id": "req-7c1e",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "org_id": "org-halcyon",
        "project_id": "prj-halcyon-batch",
        "app_slug": "comfyui",
        "app_instance_id": "inst-52d0",
        "actor_type": "user",
        "actor_id": "u-ops-7",
        "action": "scale",
        "operating_mode": "tenant_dedicated",
        "control_plane_scope": "tenant",
        "runtime_backend": "kubernetes",
        "tenant_boundary_mode": "tenant",
    }
    line.update(overrides)
    return {name: value for name, value in line.items() if value is not None}


def service_account(**overrides: Any) -> dict[str, Any]:
    """Fields of a healthy same-project operator service account acting."""
    fields: dict[str, Any] = {
        "actor_type": "service_account",
        "actor_id": "sa-rollout-bot",
        "operator_service_account_id": "sa-rollout-bot",
        "service_account_project_id": "prj-halcyon-batch",
        "service_account_active": True,
        "allowlisted": True,
    }
    fields.update(overrides)
    return fields


def accepted(seconds: float = 0.0, **overrides: Any) -> Line:
    """The API accepting a lifecycle action onto the outbox."""
    fields: dict[str, Any] = {
        "msg": "lifecycle action accepted",
        "http_status": 202,
        "event_id": "evt-91aa",
    }
    return log_line(seconds, **(fields | overrides))


def relay(seconds: float, status: str = "published", **overrides: Any) -> Line:
    """An outbox relay line about the action's event."""
    fields: dict[str, Any] = {
        "service": RELAY,
        "msg": f"outbox event {status}",
        "event_id": "evt-91aa",
        "outbox_status": status,
        "attempt": 1,
        "action": None,
    }
    return log_line(seconds, **(fields | overrides))


def worker(seconds: float, state: str = "running", **overrides: Any) -> Line:
    """A runtime worker line about the action's progress."""
    fields: dict[str, Any] = {
        "service": WORKER,
        "msg": f"lifecycle {state}",
        "event_id": "evt-91aa",
        "lifecycle_state": state,
        "action": None,
    }
    return log_line(seconds, **(fields | overrides))


def healthy_action(start: float = 0.0, **overrides: Any) -> list[Line]:
    """A lifecycle action that travels API -> relay -> worker and succeeds."""
    return [
        accepted(start, **overrides),
        relay(start + 0.4, **overrides),
        worker(start + 0.9, **overrides),
        worker(start + 25.0, "succeeded", **overrides),
    ]


def to_log_line(line: Line) -> LogLine:
    """The LogLine the parser makes of ``line``."""
    return LogLine.model_validate(line)


def to_log_lines(lines: Iterable[Line]) -> list[LogLine]:
    """LogLines in event-time order, as the correlator keeps them."""
    return sorted((to_log_line(line) for line in lines), key=lambda ln: ln.t)


def to_raw(line: Line) -> bytes:
    """The bytes a service writes for ``line``."""
    return orjson.dumps(line)


def ref(number: int) -> SourceRef:
    return file_ref("unit.jsonl", number)


def replay(
    lines: Sequence[Line], *, cfg: CoreConfig | None = None, finish: bool = True
) -> list[Output]:
    """Every output of a fresh Pipeline fed ``lines`` in order (and finished)."""
    pipeline = Pipeline(cfg=cfg or CoreConfig())
    outputs: list[Output] = []
    for number, line in enumerate(lines, start=1):
        outputs.extend(pipeline.feed_raw(to_raw(line), ref(number)))
    if finish:
        outputs.extend(pipeline.finish())
    return outputs


def incidents(outputs: Iterable[Output]) -> list[IncidentEvent]:
    """Every incident version, in the order published."""
    return [out for out in outputs if isinstance(out, IncidentEvent)]


def final_incidents(outputs: list[Output]) -> list[IncidentEvent]:
    """The newest version of each reported incident, as ``triage replay`` prints."""
    return [out for out in latest(outputs) if isinstance(out, IncidentEvent)]


def escalations(outputs: Iterable[Output]) -> list[EscalationEvent]:
    """Every escalation event, in the order published."""
    return [out for out in outputs if isinstance(out, EscalationEvent)]


def only_incident(
    lines: Sequence[Line], cfg: CoreConfig | None = None
) -> IncidentEvent:
    """The one incident a replay of ``lines`` reports; fails if there is not one."""
    found = final_incidents(replay(lines, cfg=cfg))
    assert len(found) == 1, f"expected one incident, got {len(found)}: {found}"
    return found[0]


def failed_checks(incident: IncidentEvent) -> set[str]:
    return {finding.id for finding in incident.checks if finding.status == "failed"}


def check_status(incident: IncidentEvent, check_id: str) -> str | None:
    """The status of one check on the incident, or None when it did not run."""
    return next((f.status for f in incident.checks if f.id == check_id), None)
