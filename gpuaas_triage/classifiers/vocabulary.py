"""The stable identifiers downstream systems key on, and the platform's names."""

from __future__ import annotations

from typing import Literal

FailureClass = Literal[
    "insufficient_permissions",
    "invalid_request",
    "service_unavailable",
    "internal_error",
    "proxied_ui_bootstrap_failure",
]

Category = Literal[
    "iam_allowlist",
    "lifecycle_state",
    "async_delivery",
    "runtime_backend_adapter",
    "platform_primitive_gap",
    "request_validation",
]

CheckId = Literal[
    "instance_project_mismatch",
    "service_account_foreign_project",
    "service_account_inactive",
    "service_account_token_expired",
    "action_not_allowlisted",
    "runtime_metadata_incoherent",
    "scheduler_via_core_handler",
    "tenant_boundary_not_explicit",
    "correlation_id_crosses_tenants",
    "lineage_gap",
]

CheckStatus = Literal["passed", "failed", "unknown"]

API = "gpuaas-api"
RELAY = "gpuaas-outbox-relay"
WORKER = "gpuaas-app-runtime-worker"
ADAPTER = "gpuaas-app-adapter"
PROXY = "gpuaas-app-proxy"

#: The path a lifecycle action is expected to travel, in order.
LINEAGE = (API, RELAY, WORKER)

#: Where each service sits on that path; services off the path come after it.
HOP_ORDER = {API: 0, RELAY: 1, WORKER: 2, ADAPTER: 3, PROXY: 4}

#: Actions that mutate an instance and so travel the asynchronous path.
LIFECYCLE_ACTIONS = frozenset(
    {
        "create",
        "deploy",
        "upgrade",
        "decommission",
        "delete",
        "restart",
        "scale",
        "start",
        "stop",
        "rollback",
        "update",
    }
)

#: Valid pairs of operating_mode and control_plane_scope.
COHERENT_SCOPES = {
    "tenant_dedicated": frozenset({"project", "tenant"}),
    "platform_managed": frozenset({"platform"}),
}
