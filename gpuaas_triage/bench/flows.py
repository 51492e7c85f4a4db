"""One request's log lines across the platform's services, per kind of outcome.

Each flow returns its lines as (seconds after the request, service, fields, failing):
``failing`` marks a line that carries failure evidence on its own, so the first such
line to arrive is the one that should open an incident.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gpuaas_triage.bench.tenants import App, Project
from gpuaas_triage.classifiers.vocabulary import ADAPTER, API, PROXY, RELAY, WORKER

LineSpec = tuple[float, str, dict[str, Any], bool]

LIFECYCLE = ("create", "deploy", "upgrade", "decommission")
PERMISSION_VARIANTS = (
    "missing_project_permission",
    "action_not_allowlisted",
    "foreign_project",
    "token_expired",
    "service_account_inactive",
)
INVALID_VARIANTS = (
    ("request failed: project context required", 400, None),
    ("request failed: unsupported operating_mode/control_plane_scope", 400, None),
    ("request failed: gpu_count must be a positive integer", 422, None),
    ("request failed: instance state does not allow the action", 409, "decommissioned"),
)
RELAY_ERRORS = (
    "broker connection refused",
    "publish timeout after 5000ms",
    "shared broker quota exceeded",
)
BACKEND_ERRORS = (
    "dial tcp 10.{a}.{b}.{c}:443: connect: connection refused",
    "context deadline exceeded",
    "no endpoints available for service gpu-scheduler-{c}",
    "503 service unavailable from cluster api",
)
DEFECT_EXCEPTIONS = (
    "KeyError: 'gpu_count'",
    "TypeError: 'NoneType' object is not subscriptable",
    "AttributeError: 'AppSpec' object has no attribute 'volumes'",
)
BOOTSTRAP_ERRORS = ("asset_path", "websocket_origin", "session_cookie")


@dataclass(slots=True)
class FlowContext:
    """Who asked what of which app: the fields the services repeat on their lines."""

    correlation_id: str
    trace_id: str
    project: Project
    app: App
    action: str
    event_id: str
    service_account: bool
    actor_id: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def fields(self, service: str) -> dict[str, Any]:
        p, app = self.project, self.app
        out: dict[str, Any] = {
            "correlation_id": self.correlation_id,
            "trace_id": self.trace_id,
            "org_id": p.org_id,
            "project_id": p.project_id,
            "app_slug": app.slug,
            "app_instance_id": app.instance_id,
            "operating_mode": p.operating_mode,
            "control_plane_scope": p.control_plane_scope,
            "runtime_backend": app.runtime_backend,
            "tenant_boundary_mode": p.tenant_boundary_mode,
        }
        if service in (API, PROXY):
            out["actor_type"] = "service_account" if self.service_account else "user"
            out["actor_id"] = self.actor_id
            if self.service_account:
                out["operator_service_account_id"] = self.actor_id
        if service == API:
            out["action"] = self.action
            out["route"] = f"/v1/apps/instances/{self.action}"
            out["handler"] = f"apps.lifecycle.{self.action}"
        if service in (RELAY, WORKER, ADAPTER):
            out["event_id"] = self.event_id
        return out


def _line(
    ctx: FlowContext,
    at: float,
    service: str,
    level: str,
    msg: str,
    *,
    failing: bool = False,
    **extra: Any,
) -> LineSpec:
    fields = ctx.fields(service)
    fields.update(level=level, msg=msg, **extra)
    return at, service, fields, failing


def _accepted(ctx: FlowContext, rng: random.Random) -> list[LineSpec]:
    lines = [_line(ctx, 0.0, API, "info", "request received")]
    if rng.random() < 0.5:
        allowed: dict[str, Any] = {"authz_decision": "allow"}
        if ctx.service_account:
            allowed |= {
                "allowlisted": True,
                "service_account_active": True,
                "service_account_project_id": ctx.project.project_id,
            }
        lines.append(
            _line(ctx, 0.004, API, "debug", "authorization allowed", **allowed)
        )
    lines.append(
        _line(
            ctx,
            0.012 + rng.random() * 0.03,
            API,
            "info",
            "lifecycle action accepted",
            http_status=202,
        )
    )
    return lines


def _picked_up(ctx: FlowContext, rng: random.Random) -> tuple[list[LineSpec], float]:
    relay_at = 0.05 + rng.random() * 0.8
    worker_at = relay_at + 0.1 + rng.random() * 1.5
    return [
        _line(
            ctx,
            relay_at,
            RELAY,
            "info",
            "event published",
            outbox_status="published",
            attempt=1,
        ),
        _line(
            ctx,
            worker_at,
            WORKER,
            "info",
            "lifecycle action picked up",
            lifecycle_state="running",
        ),
    ], worker_at


def healthy(ctx: FlowContext, rng: random.Random) -> list[LineSpec]:
    """A lifecycle action that goes through, or a read, or a proxied UI that loads."""
    roll = rng.random()
    if roll < 0.6:
        lines = _accepted(ctx, rng)
        hops, at = _picked_up(ctx, rng)
        lines += hops
        if len(lines) < 5 and rng.random() < 0.5:
            lines.append(
                _line(ctx, at + 0.2, ADAPTER, "info", "backend request accepted")
            )
        lines.append(
            _line(
                ctx,
                at + 3 + rng.random() * 40,
                WORKER,
                "info",
                f"{ctx.action} finished",
                lifecycle_state="succeeded",
            )
        )
        return lines
    if roll < 0.8:
        ctx.action = "get"
        return [
            _line(ctx, 0.0, API, "info", "request received"),
            _line(
                ctx,
                0.003,
                API,
                "debug",
                "authorization allowed",
                authz_decision="allow",
            ),
            _line(
                ctx,
                0.02 + rng.random() * 0.05,
                API,
                "info",
                "request completed",
                http_status=200,
            ),
        ]
    route = f"/apps/{ctx.app.instance_id}/"
    lines = [
        _line(
            ctx,
            0.0,
            PROXY,
            "info",
            "proxied route served",
            route=route,
            upstream_status=200,
        )
    ]
    for n in range(rng.randint(2, 4)):
        lines.append(
            _line(
                ctx,
                0.1 + 0.05 * n,
                PROXY,
                "debug",
                "asset served",
                route=f"{route}static/chunk-{n}.js",
                upstream_status=200,
            )
        )
    return lines


def permission_denied(
    ctx: FlowContext, rng: random.Random, variant: str | None = None
) -> list[LineSpec]:
    """The API refuses the actor: a role, an allowlist, a foreign or stale account."""
    reason = variant or rng.choice(PERMISSION_VARIANTS)
    if reason != "missing_project_permission":
        ctx.service_account = True
        ctx.actor_id = ctx.project.service_account_id
    deny: dict[str, Any] = {"authz_decision": "deny", "authz_reason": reason}
    status = 403
    if ctx.service_account:
        deny |= {
            "service_account_project_id": ctx.project.project_id,
            "service_account_active": True,
        }
        if reason == "action_not_allowlisted":
            deny["allowlisted"] = False
        elif reason == "foreign_project":
            deny["service_account_project_id"] = "proj-elsewhere-prod"
        elif reason == "token_expired":
            deny["token_expires_at"] = "2026-11-19T09:00:00Z"
            status = 401
        elif reason == "service_account_inactive":
            deny["service_account_active"] = False
    lines = [
        _line(ctx, 0.0, API, "info", "request received"),
        _line(ctx, 0.006, API, "warn", "authorization denied", failing=True, **deny),
        _line(
            ctx,
            0.01,
            API,
            "error",
            "request failed",
            failing=True,
            http_status=status,
            error_code="insufficient_permissions",
        ),
    ]
    if rng.random() < 0.3:
        lines.append(_line(ctx, 0.011, API, "info", "audit event recorded"))
    return lines


def invalid_request(ctx: FlowContext, rng: random.Random) -> list[LineSpec]:
    """A malformed request, or an action the instance's state does not allow."""
    msg, status, state = rng.choice(INVALID_VARIANTS)
    extra: dict[str, Any] = {"http_status": status, "error_code": "invalid_request"}
    if state:
        extra["instance_state"] = state
    return [
        _line(ctx, 0.0, API, "info", "request received"),
        _line(ctx, 0.002, API, "debug", "validating request"),
        _line(
            ctx, 0.004 + rng.random() * 0.01, API, "error", msg, failing=True, **extra
        ),
    ]


def relay_gave_up(
    ctx: FlowContext, rng: random.Random, error: str | None = None
) -> list[LineSpec]:
    """Accepted, then the outbox relay retries and gives up: the worker never hears."""
    error = error or rng.choice(RELAY_ERRORS)
    lines = _accepted(ctx, rng)[-1:]
    retries = rng.randint(1, 3)
    for attempt in range(1, retries + 1):
        lines.append(
            _line(
                ctx,
                attempt * 1.5,
                RELAY,
                "warn",
                "publish failed, retrying",
                outbox_status="retrying",
                attempt=attempt,
                error=error,
            )
        )
    lines.append(
        _line(
            ctx,
            (retries + 1) * 1.5 + rng.random(),
            RELAY,
            "error",
            "publish failed, giving up",
            failing=True,
            outbox_status="failed",
            attempt=5,
            error=error,
        )
    )
    return lines


def lineage_gap(ctx: FlowContext, rng: random.Random) -> list[LineSpec]:
    """Accepted (and maybe published) and then silence: only a deadline tells."""
    lines = _accepted(ctx, rng)
    if len(lines) < 3 or rng.random() < 0.6:
        lines.append(
            _line(
                ctx,
                0.05 + rng.random() * 0.5,
                RELAY,
                "info",
                "event published",
                outbox_status="published",
                attempt=1,
            )
        )
    return lines


def backend_unavailable(
    ctx: FlowContext, rng: random.Random, error: str | None = None
) -> list[LineSpec]:
    """The worker picks the action up; the runtime backend does not answer."""
    error = error or rng.choice(BACKEND_ERRORS)
    error = error.format(
        a=rng.randint(0, 255), b=rng.randint(0, 255), c=rng.randint(1, 254)
    )
    lines = _accepted(ctx, rng)[-1:]
    hops, at = _picked_up(ctx, rng)
    lines += hops
    if rng.random() < 0.4:
        lines.append(
            _line(
                ctx,
                at + 2,
                ADAPTER,
                "warn",
                "backend call failed, retrying",
                error=error,
            )
        )
    lines.append(
        _line(
            ctx,
            at + 5 + rng.random() * 25,
            WORKER,
            "error",
            "lifecycle action failed",
            failing=True,
            lifecycle_state="failed",
            error_code="service_unavailable",
            backend_error=error,
        )
    )
    return lines


def translation_defect(
    ctx: FlowContext, rng: random.Random, exception: str | None = None
) -> list[LineSpec]:
    """The worker crashes turning the app spec into backend objects."""
    lines = _accepted(ctx, rng)[-1:]
    hops, at = _picked_up(ctx, rng)
    lines += hops
    lines.append(
        _line(
            ctx,
            at + 0.1 + rng.random() * 0.3,
            WORKER,
            "error",
            "unhandled exception translating spec",
            failing=True,
            lifecycle_state="failed",
            error_code="internal_error",
            exception=exception or rng.choice(DEFECT_EXCEPTIONS),
        )
    )
    return lines


def proxied_ui(ctx: FlowContext, rng: random.Random) -> list[LineSpec]:
    """The proxied route answers but the app's UI cannot bootstrap in the browser."""
    route = f"/apps/{ctx.app.instance_id}/"
    lines = [
        _line(
            ctx,
            0.0,
            PROXY,
            "info",
            "proxied route served",
            route=route,
            upstream_status=200,
        )
    ]
    if rng.random() < 0.6:
        lines.append(
            _line(
                ctx,
                0.3,
                PROXY,
                "warn",
                "upstream asset not found",
                failing=True,
                route="/static/main.js",
                upstream_status=404,
            )
        )
    else:
        lines.append(
            _line(
                ctx,
                0.2,
                PROXY,
                "debug",
                "websocket upgrade requested",
                route=f"{route}api/kernels",
            )
        )
    lines.append(
        _line(
            ctx,
            0.4 + rng.random(),
            PROXY,
            "error",
            "ui bootstrap failed",
            failing=True,
            route=route,
            bootstrap_error=rng.choice(BOOTSTRAP_ERRORS),
        )
    )
    return lines


FlowBuilder = Callable[[FlowContext, random.Random], list[LineSpec]]

FLOWS: dict[str, FlowBuilder] = {
    "healthy": healthy,
    "permission_denied": permission_denied,
    "invalid_request": invalid_request,
    "relay_gave_up": relay_gave_up,
    "lineage_gap": lineage_gap,
    "backend_unavailable": backend_unavailable,
    "translation_defect": translation_defect,
    "proxied_ui": proxied_ui,
}
