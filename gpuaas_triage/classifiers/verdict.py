"""Weigh one tenant's lines into a verdict: failure class, category, and why.

The verdict depends on the set of lines, not on the order they arrived in, so the
worker and a replay of the same lines agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gpuaas_triage.classifiers.checks import Finding
from gpuaas_triage.classifiers.lineage import Lineage
from gpuaas_triage.classifiers.signals import Signal, is_hop_success, signal_for
from gpuaas_triage.classifiers.vocabulary import Category, FailureClass
from gpuaas_triage.schemas.log_line import LogLine


@dataclass(frozen=True, slots=True)
class Verdict:
    failure_class: FailureClass
    category: Category
    rule: str
    failing_service: str
    error: str | None
    escalate: bool = False
    escalation_reason: str | None = None
    decided_by: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What a new incident version must differ in."""
        return f"{self.failure_class}/{self.category}/{self.escalate}"


def live_signals(lines: Sequence[LogLine]) -> list[Signal]:
    """Failure signals not superseded by a later success on the same hop: retries
    that recovered are not failures."""
    signals = [s for i, ln in enumerate(lines) if (s := signal_for(ln, i)) is not None]
    if not signals:
        return []
    last_success: dict[str, float] = {}
    for line in lines:
        if is_hop_success(line):
            last_success[line.service] = max(
                last_success.get(line.service, line.t), line.t
            )
    return [s for s in signals if last_success.get(s.service, float("-inf")) <= s.t]


def decide(
    lines: Sequence[LogLine], findings: Sequence[Finding], lineage: Lineage
) -> Verdict | None:
    """The verdict for one tenant's lines (sorted by event time), or None."""
    failed = {f.id: f for f in findings if f.status == "failed"}
    signals = live_signals(lines)

    if not signals:
        if lineage.status != "failed":
            return None
        return Verdict(
            "service_unavailable",
            "async_delivery",
            "lineage_deadline",
            lineage.hops_missing[0],
            "lineage_gap",
            decided_by={
                "lineage": lineage.detail,
                "hops_missing": lineage.hops_missing,
            },
        )

    top = max(signals, key=lambda s: (s.strength, -s.t))
    decided_by: dict[str, Any] = {
        "service": top.service,
        "line": top.index,
        **top.fields,
    }
    failure_class: FailureClass = top.failure_class
    category: Category = top.category
    rule = top.rule

    if "scheduler_via_core_handler" in failed and failure_class != (
        "proxied_ui_bootstrap_failure"
    ):
        detail = failed["scheduler_via_core_handler"].detail
        return Verdict(
            failure_class,
            "platform_primitive_gap",
            "scheduler_via_core_handler",
            top.service,
            top.error,
            True,
            f"platform defect: {detail}; making it work would need scheduler-specific "
            "branching in core handlers",
            decided_by,
        )

    if failure_class == "invalid_request" and "runtime_metadata_incoherent" in failed:
        category, rule = "request_validation", "runtime_metadata_incoherent"
    if failure_class == "service_unavailable" and lineage.status == "failed":
        if top.service not in ("gpuaas-app-runtime-worker", "gpuaas-app-adapter"):
            category = "async_delivery"
    return Verdict(
        failure_class, category, rule, top.service, top.error, decided_by=decided_by
    )
