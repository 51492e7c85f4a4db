"""Properties of the core over generated input: the parser never raises, the pipeline
never raises and loses no line, and a verdict does not depend on arrival order."""

from __future__ import annotations

import base64
from typing import Any, get_args

from factories import ADAPTER, API, PROXY, RELAY, WORKER, at, log_line, ref, to_raw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuaas_triage.classifiers.pipeline import Output, Pipeline, latest
from gpuaas_triage.schemas.dead_letter import DeadLetter, DeadLetterReason
from gpuaas_triage.schemas.events import IncidentEvent
from gpuaas_triage.schemas.log_line import LogLine
from gpuaas_triage.schemas.parse import parse_line

REASONS = set(get_args(DeadLetterReason))


def examples(count: int) -> settings:
    """Deterministic runs: the same examples every time, no example database."""
    return settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def optional(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


TENANTS = [
    ("org-lyra", "prj-lyra-dev"),
    ("org-lyra", "prj-lyra-prod"),
    ("org-vega", "prj-vega-ml"),
    ("org-orion", "prj-orion-stage"),
]

FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "service": st.sampled_from([API, RELAY, WORKER, ADAPTER, PROXY]),
    "level": st.sampled_from(["debug", "info", "warn", "error"]),
    "msg": optional(st.sampled_from([
        "request received", "lifecycle action accepted", "error budget fine",
        "upstream timed out", "no endpoints available", "invalid spec: must be > 0",
        "instance state does not allow it", "connection refused",
    ])),
    "action": optional(st.sampled_from(["deploy", "scale", "rollback", "get", "stop"])),
    "actor_type": optional(st.sampled_from(["user", "service_account"])),
    "app_slug": optional(st.sampled_from(["comfyui", "ray-cluster", "triton"])),
    "operating_mode": optional(
        st.sampled_from(["tenant_dedicated", "platform_managed", "hybrid"])
    ),
    "control_plane_scope": optional(st.sampled_from(["project", "tenant", "platform"])),
    "http_status": optional(
        st.sampled_from([200, 202, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503])
    ),
    "error_code": optional(st.sampled_from([
        "invalid_request", "insufficient_permissions", "PERMISSION_DENIED",
        "service_unavailable", "internal_error", "BACKEND_FORBIDDEN", "conflict",
        "E_WEIRD",
    ])),
    "handler": optional(st.sampled_from(["core.allocations.create", "apps.ray.scale"])),
    "authz_decision": optional(st.sampled_from(["allow", "deny"])),
    "allowlisted": optional(st.booleans()),
    "service_account_active": optional(st.booleans()),
    "service_account_project_id": optional(st.sampled_from(["prj-lyra-dev", "prj-x"])),
    "instance_state": optional(st.sampled_from(["running", "decommissioned"])),
    "event_id": optional(st.sampled_from(["evt-1", "evt-2"])),
    "outbox_status": optional(
        st.sampled_from(["pending", "retrying", "published", "failed"])
    ),
    "attempt": optional(st.integers(1, 9)),
    "lifecycle_state": optional(
        st.sampled_from(["running", "failed", "succeeded", "ready"])
    ),
    "backend_error": optional(st.sampled_from([
        "dial tcp 10.0.0.9:443: connection refused", "quota exceeded",
        "validation failed: gpus must be > 0",
    ])),
    "exception": optional(st.sampled_from(["KeyError: 'gpu'", "ValidationError: x"])),
    "upstream_status": optional(st.sampled_from([200, 401, 403, 404, 502])),
    "bootstrap_error": optional(st.sampled_from(["asset_path", "session_cookie"])),
}


@st.composite
def valid_lines(
    draw: st.DrawFn, seconds: st.SearchStrategy[float] | None = None
) -> dict[str, Any]:
    """A parseable log line of one of a few tenants and correlation ids."""
    fields = {name: draw(strategy) for name, strategy in FIELDS.items()}
    org, project = draw(st.sampled_from(TENANTS))
    when = draw(seconds if seconds is not None else st.integers(0, 240))
    expires = draw(optional(st.integers(-600, 600)))
    return log_line(
        when,
        correlation_id=draw(st.sampled_from(["req-a1", "req-b2", "req-c3"])),
        org_id=org,
        project_id=project,
        token_expires_at=None if expires is None else at(when + expires),
        **fields,
    )


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
KEYS = st.sampled_from(
    [*LogLine.model_fields, "request_id", "@timestamp", "timestamp", "message",
     "severity", "status_code", "password", "unknown_field"]
)


@st.composite
def mutated_lines(draw: st.DrawFn) -> bytes:
    """A valid line with one field, or its bytes, damaged."""
    line = draw(valid_lines())
    how = draw(st.sampled_from(["set", "drop", "truncate", "flip", "insert"]))
    if how == "set":
        line[draw(KEYS)] = draw(JSON)
    elif how == "drop":
        line.pop(draw(st.sampled_from(sorted(line))))
    raw = to_raw(line)
    at_byte = draw(st.integers(0, len(raw)))
    if how == "truncate":
        return raw[:at_byte]
    if how == "flip":
        at_byte = min(at_byte, len(raw) - 1)
        return raw[:at_byte] + bytes([raw[at_byte] ^ draw(st.integers(1, 255))]) + (
            raw[at_byte + 1:]
        )
    if how == "insert":
        return raw[:at_byte] + draw(st.binary(min_size=1, max_size=8)) + raw[at_byte:]
    return raw


def _parse(raw: bytes) -> LogLine | DeadLetter:
    return parse_line(raw, ref(1), max_bytes=4096)


def _well_formed(result: LogLine | DeadLetter, raw: bytes) -> None:
    assert isinstance(result, LogLine | DeadLetter)
    if isinstance(result, DeadLetter):
        assert result.reason in REASONS
        assert result.raw_size == len(raw)
        base64.b64decode(result.raw_base64, validate=True)


@examples(1200)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(raw: bytes) -> None:
    """Any bytes give a LogLine or a DeadLetter with a known reason."""
    result = _parse(raw)

    _well_formed(result, raw)


@examples(1200)
@given(mutated_lines())
def test_mutated_lines_never_raise(raw: bytes) -> None:
    """A damaged valid line gives a LogLine or a DeadLetter with a known reason."""
    result = _parse(raw)

    _well_formed(result, raw)


@examples(400)
@given(valid_lines())
def test_valid_lines_parse(line: dict[str, Any]) -> None:
    """Every generated valid line parses, keeping its correlation_id and time."""
    result = _parse(to_raw(line))

    assert isinstance(result, LogLine), result
    assert result.correlation_id == line["correlation_id"]
    assert result.ts.isoformat().replace("+00:00", "Z") == line["ts"]


def _replay(
    lines: list[dict[str, Any]]
) -> tuple[Pipeline, list[Output], dict[str, int]]:
    """Feed lines; return the pipeline, its outputs, and the lines each thread held
    before the end of input."""
    pipeline = Pipeline()
    outputs: list[Output] = []
    for number, line in enumerate(lines, start=1):
        outputs.extend(pipeline.feed_raw(to_raw(line), ref(number)))
    held: dict[str, int] = {}
    for state in pipeline.states.values():
        for thread in state.threads:
            assert thread.incident_id not in held, "two threads share an incident_id"
            held[thread.incident_id] = len(thread.lines) + thread.dropped
    outputs.extend(pipeline.finish())
    return pipeline, outputs, held


@examples(250)
@given(st.lists(valid_lines(), min_size=1, max_size=14))
def test_pipeline_never_raises_and_accounts_for_every_line(
    lines: list[dict[str, Any]]
) -> None:
    """Valid lines in any mix never make the pipeline raise; every line is held by
    exactly one thread, and each reported incident counts all of its thread's lines."""
    _, outputs, held = _replay(lines)

    assert not [o for o in outputs if isinstance(o, DeadLetter)]
    assert sum(held.values()) == len(lines)
    for incident in latest(outputs):
        if isinstance(incident, IncidentEvent):
            assert incident.lines_seen == held[incident.incident_id]
            assert incident.final


def _verdicts(outputs: list[Output]) -> dict[str, tuple[str | None, str | None]]:
    return {
        out.incident_id: (out.failure_class, out.category)
        for out in latest(outputs)
        if isinstance(out, IncidentEvent)
    }


@examples(300)
@given(
    st.lists(valid_lines(st.integers(0, 40)), min_size=1, max_size=10).flatmap(
        lambda lines: st.tuples(st.just(lines), st.permutations(lines))
    )
)
def test_verdict_does_not_depend_on_arrival_order(
    pair: tuple[list[dict[str, Any]], list[dict[str, Any]]]
) -> None:
    """The same lines in another order give every incident the same final class
    and category."""
    lines, shuffled = pair

    _, in_order, _ = _replay(lines)
    _, out_of_order, _ = _replay(shuffled)

    assert _verdicts(out_of_order) == _verdicts(in_order)
