"""The failure shape: what a failure looks like with the tenant taken out."""

from __future__ import annotations

import hashlib

from gpuaas_triage.classifiers.verdict import Verdict
from gpuaas_triage.schemas.events import IncidentContext, Shape


def shape_of(verdict: Verdict, context: IncidentContext) -> Shape:
    parts = (
        verdict.failure_class,
        verdict.category,
        verdict.failing_service,
        verdict.error or "",
        context.action or "",
        context.runtime_backend or "",
        context.operating_mode or "",
    )
    digest = hashlib.sha1("\x1f".join(parts).encode(), usedforsecurity=False)
    return Shape(
        fingerprint=digest.hexdigest()[:16],
        failure_class=verdict.failure_class,
        category=verdict.category,
        service=verdict.failing_service,
        error=verdict.error,
        action=context.action,
        runtime_backend=context.runtime_backend,
        operating_mode=context.operating_mode,
    )
