"""What the on-call engineer does next, and where to look: recovery, queries, links."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from gpuaas_triage.classifiers.vocabulary import ADAPTER, LINEAGE

RECOVERY = {
    "iam_allowlist": "Correct the actor's project role or the service account's scope "
    "(same-project membership, allowlist entry, an active account with a freshly "
    "minted token), then retry the action.",
    "request_validation": "Retry with the server-supported app and runtime defaults: "
    "a project context, a valid operating_mode and control_plane_scope pair, a valid "
    "lifecycle action and service account reference.",
    "lifecycle_state": "Read the instance's current state and issue an action that "
    "state allows (a decommissioned instance is recreated, not upgraded).",
    "async_delivery": "Restore outbox relay, queue and runtime worker health first, "
    "then reissue the lifecycle action.",
    "runtime_backend_adapter": "Restore the runtime backend and its adapter path "
    "(endpoints, credentials, translation), then reissue the lifecycle action.",
    "platform_primitive_gap": "Stop and file a platform primitive gap with this "
    "evidence; do not add scheduler- or app-specific branching to core handlers.",
}

PROXIED_UI_RECOVERY = (
    "Follow the proxied app UI runbook (browser session, asset paths under the route "
    "prefix, launcher behaviour) before debugging the upstream app itself."
)

OPERATOR_RUNBOOK = "operator-incident"
PROXIED_UI_RUNBOOK = "proxied-app-ui"

SHARED_SERVICE_EVIDENCE = (
    "outbox relay error rate and publish latency across all tenants",
    "runtime worker queue depth and consumer lag",
    "shared broker and backend quotas, throttling and saturation",
    "open escalations of the same failure shape on the platform_managed plane",
)


def recovery_for(failure_class: str, category: str) -> str:
    if failure_class == "proxied_ui_bootstrap_failure":
        return PROXIED_UI_RECOVERY
    return RECOVERY[category]


def runbook_for(failure_class: str) -> str:
    if failure_class == "proxied_ui_bootstrap_failure":
        return PROXIED_UI_RUNBOOK
    return OPERATOR_RUNBOOK


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def logql_queries(
    correlation_id: str,
    services: Iterable[str],
    *,
    app_instance_id: str | None,
    app_slug: str | None,
    operator_service_account_id: str | None,
) -> dict[str, str]:
    """A ready LogQL query per service; adapters are pivoted by instance and app."""
    cid = _escape(correlation_id)
    queries: dict[str, str] = {}
    for service in [*LINEAGE, *sorted(set(services) - set(LINEAGE))]:
        if service == ADAPTER:
            pivots = [
                f'{name}="{_escape(value)}"'
                for name, value in (
                    ("app_instance_id", app_instance_id),
                    ("app_slug", app_slug),
                    ("operator_service_account_id", operator_service_account_id),
                )
                if value
            ]
            selector = " or ".join(pivots) or f'correlation_id="{cid}"'
            queries[service] = f'{{service="{service}"}} | json | {selector}'
        else:
            queries[service] = (
                f'{{service="{service}"}} | json | correlation_id="{cid}"'
            )
    return queries


def shared_service_queries() -> dict[str, str]:
    return {
        "outbox_relay_errors": '{service="gpuaas-outbox-relay"} | json | level="error"',
        "runtime_worker_errors": (
            '{service="gpuaas-app-runtime-worker"} | json | level="error"'
        ),
    }


def trace_url(template: str, trace_id: str | None) -> str | None:
    if not trace_id:
        return None
    return template.format(trace_id=quote(trace_id, safe=""))
