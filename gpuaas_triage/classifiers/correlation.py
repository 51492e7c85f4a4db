"""Correlation state: every tenant's lines under one correlation_id, and when they
become incident versions.

Lines of different orgs or projects that share a correlation_id are kept apart, each
its own thread and its own incident. Time is event time, given by the caller as
``now``: this module reads no clock.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from gpuaas_triage.classifiers.checks import Finding, run_checks
from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.classifiers.guidance import (
    SHARED_SERVICE_EVIDENCE,
    logql_queries,
    recovery_for,
    runbook_for,
    shared_service_queries,
    trace_url,
)
from gpuaas_triage.classifiers.lineage import Lineage, trace
from gpuaas_triage.classifiers.redact import redact_text
from gpuaas_triage.classifiers.shape import shape_of
from gpuaas_triage.classifiers.signals import signal_for
from gpuaas_triage.classifiers.verdict import Verdict, decide
from gpuaas_triage.classifiers.vocabulary import LINEAGE
from gpuaas_triage.schemas.events import (
    CheckFinding,
    Evidence,
    Explanation,
    IncidentContext,
    IncidentEvent,
    LineageView,
    LineRef,
)
from gpuaas_triage.schemas.log_line import LogLine
from gpuaas_triage.schemas.source import SourceRef

logger = logging.getLogger(__name__)

_CONTEXT_FIELDS = tuple(
    name
    for name in IncidentContext.model_fields
    if name not in ("environment_boundary_candidate", "environment")
)
_ENVIRONMENT = re.compile(
    r"(?:^|[-_.])(dev|test|stage|staging|prod|production)(?:$|[-_.])"
)
_ENV_NAMES = {"staging": "stage", "production": "prod"}

# Services repeat a few messages and errors endlessly, and every incident version
# redacts each of its lines again: remember the answer for the texts seen lately.
_redact = lru_cache(maxsize=4096)(redact_text)


@dataclass(slots=True)
class Thread:
    """One tenant's evidence under a correlation_id: it becomes one incident."""

    incident_id: str
    org_id: str | None
    project_id: str | None
    lines: list[LogLine] = field(default_factory=list)
    refs: list[SourceRef] = field(default_factory=list)
    dropped: int = 0
    version: int = 0
    last_key: str | None = None
    closed: bool = False
    # Event time of the last judgement against the clock: new lines are weighed as
    # of then, so a deadline fires only on the clock, never on a line's arrival.
    judged_at: float = float("-inf")
    # A line that arrives behind the watermark hints that its siblings are late
    # too: the thread is not judged against the clock before this event time.
    hold_until: float = float("-inf")
    settled: bool = False
    # The last assessment, reused while nothing it depends on has changed; never
    # stored, and dropped when the thread closes.
    memo: _Memo | None = field(default=None, repr=False, compare=False)

    @property
    def last_t(self) -> float:
        return self.lines[-1].t


@dataclass(slots=True)
class CorrelationState:
    correlation_id: str
    threads: list[Thread] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "correlation_id": self.correlation_id,
            "threads": [
                {
                    "incident_id": t.incident_id,
                    "org_id": t.org_id,
                    "project_id": t.project_id,
                    "lines": [
                        ln.model_dump(mode="json", exclude_none=True) for ln in t.lines
                    ],
                    "refs": t.refs,
                    "dropped": t.dropped,
                    "version": t.version,
                    "last_key": t.last_key,
                    "closed": t.closed,
                    "judged_at": _finite(t.judged_at),
                    "hold_until": _finite(t.hold_until),
                    "settled": t.settled,
                }
                for t in self.threads
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CorrelationState:
        threads = [
            Thread(
                incident_id=t["incident_id"],
                org_id=t["org_id"],
                project_id=t["project_id"],
                lines=[LogLine.model_validate(ln) for ln in t["lines"]],
                refs=list(t["refs"]),
                dropped=t["dropped"],
                version=t["version"],
                last_key=t["last_key"],
                closed=t["closed"],
                judged_at=_unfinite(t.get("judged_at")),
                hold_until=_unfinite(t.get("hold_until")),
                settled=t.get("settled", False),
            )
            for t in data["threads"]
        ]
        return cls(data["correlation_id"], threads)


def _finite(value: float) -> float | None:
    # JSON has no infinities; None stands for "never".
    return None if value == float("-inf") else value


def _unfinite(value: float | None) -> float:
    return float("-inf") if value is None else value


def incident_id_for(
    correlation_id: str, org_id: str | None, project_id: str | None
) -> str:
    """Stable across replays and restarts, so consumers can deduplicate."""
    key = f"{correlation_id}\x1f{org_id or ''}\x1f{project_id or ''}"
    return "inc-" + hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:20]


def _same_action(thread: Thread, line: LogLine) -> bool:
    for other in thread.lines:
        for name in ("event_id", "app_instance_id", "trace_id"):
            mine = getattr(line, name)
            if mine is not None and mine == getattr(other, name):
                return True
    return False


def _thread_for(state: CorrelationState, line: LogLine) -> Thread:
    org, project = line.org_id, line.project_id
    threads = state.threads

    def fits(t: Thread) -> bool:
        return (org is None or t.org_id in (None, org)) and (
            project is None or t.project_id in (None, project)
        )

    candidates = [t for t in threads if fits(t)]
    exact = [t for t in candidates if t.org_id == org and t.project_id == project]
    chosen: Thread | None = None
    if exact:
        chosen = exact[0]
    elif len(candidates) == 1:
        chosen = candidates[0]
    elif candidates:
        chosen = next((t for t in candidates if _same_action(t, line)), candidates[0])

    if chosen is None:
        chosen = Thread(
            incident_id_for(state.correlation_id, org, project), org, project
        )
        threads.append(chosen)
    else:
        chosen.org_id = chosen.org_id or org
        chosen.project_id = chosen.project_id or project
        renamed = incident_id_for(
            state.correlation_id, chosen.org_id, chosen.project_id
        )
        if not chosen.version and all(t.incident_id != renamed for t in threads):
            # Until a version is published the id may follow the tenancy as it
            # fills in, so it does not depend on which service's line came first.
            chosen.incident_id = renamed
    return chosen


#: Distinct sets of field names shared between held lines, at most this many.
_FIELD_SETS_CAP = 512
_field_sets: dict[frozenset[str], set[str]] = {}


def _compact(line: LogLine) -> LogLine:
    """Let a line about to be held share what thousands of held lines repeat.

    The texts (service, level, message, tenancy, runtime metadata) are interned, and
    the set of field names present, which pydantic keeps per instance, is one
    object per distinct set: together more than half of what a held line costs.
    Values and equality are unchanged; a frozen line never changes either."""
    values = line.__dict__
    present = line.__pydantic_fields_set__
    for name in present:
        value = values.get(name)
        if type(value) is str:
            values[name] = sys.intern(value)
    key = frozenset(present)
    shared = _field_sets.get(key)
    if shared is None and len(_field_sets) < _FIELD_SETS_CAP:
        shared = _field_sets[key] = set(key)
    if shared is not None:
        object.__setattr__(line, "__pydantic_fields_set__", shared)
    return line


def _insert(thread: Thread, line: LogLine, ref: SourceRef, cap: int) -> None:
    line = _compact(line)
    times = [ln.t for ln in thread.lines]
    at = bisect.bisect_right(times, line.t)
    same_instant = bisect.bisect_left(times, line.t)
    if same_instant < at:
        # Lines of one instant are ordered by their content, not by arrival, so the
        # verdict of a set of lines does not depend on the order they came in.
        keys = [ln.model_dump_json() for ln in thread.lines[same_instant:at]]
        at = same_instant + bisect.bisect_right(keys, line.model_dump_json())
    thread.lines.insert(at, line)
    thread.refs.insert(at, ref)
    if len(thread.lines) <= cap:
        return

    # Over the cap: drop the oldest line that is neither failure evidence nor the
    # only line of its service, so the verdict and the lineage survive the cut.
    counts: dict[str, int] = {}
    for ln in thread.lines:
        counts[ln.service] = counts.get(ln.service, 0) + 1
    victim = next(
        (
            i
            for i, ln in enumerate(thread.lines)
            if counts[ln.service] > 1 and signal_for(ln, i) is None
        ),
        0,
    )
    del thread.lines[victim]
    del thread.refs[victim]
    thread.dropped += 1


def _tenancy(state: CorrelationState) -> Finding:
    tenants = sorted(
        {
            (t.org_id or "?", t.project_id or "?")
            for t in state.threads
            if t.org_id or t.project_id
        }
    )
    if len(tenants) > 1:
        named = ", ".join(f"{o}/{p}" for o, p in tenants)
        return Finding(
            "correlation_id_crosses_tenants",
            "failed",
            f"correlation_id {state.correlation_id} is used by {named}; kept apart",
        )
    return Finding("correlation_id_crosses_tenants", "passed", "one tenant")


@dataclass(frozen=True, slots=True)
class _Assessment:
    findings: list[Finding]
    lineage: Lineage
    verdict: Verdict | None

    @property
    def key(self) -> str | None:
        if self.verdict is None:
            return None
        failed = ",".join(sorted(f.id for f in self.findings if f.status == "failed"))
        return f"{self.verdict.key}/{failed}"


@dataclass(frozen=True, slots=True)
class _Memo:
    """A thread's checks depend only on its lines, and its verdict on the lines,
    the tenancy and the lineage: while those are unchanged, so is the assessment.
    A thread is assessed several times per line (on ingest, for its next deadline,
    on the clock), mostly with nothing changed."""

    lines: tuple[LogLine, ...]
    checks: list[Finding]
    tenancy: Finding
    lineage: Lineage
    assessment: _Assessment


def _assess(
    state: CorrelationState, thread: Thread, now: float, cfg: CoreConfig
) -> _Assessment:
    lines = thread.lines
    lineage = trace(lines, now=now, deadline=cfg.lineage_deadline)
    tenancy = _tenancy(state)
    memo = thread.memo
    if (
        memo is None
        or len(memo.lines) != len(lines)
        or any(
            mine is not theirs for mine, theirs in zip(memo.lines, lines, strict=True)
        )
    ):
        checks = run_checks(lines)
    elif memo.lineage == lineage and memo.tenancy == tenancy:
        return memo.assessment
    else:
        checks = memo.checks
    gap = Finding("lineage_gap", lineage.status, lineage.detail)
    findings = [*checks, tenancy, gap]
    assessment = _Assessment(findings, lineage, decide(lines, findings, lineage))
    thread.memo = _Memo(tuple(lines), checks, tenancy, lineage, assessment)
    return assessment


def _context(lines: list[LogLine]) -> IncidentContext:
    values: dict[str, Any] = {}
    for name in _CONTEXT_FIELDS:
        for line in lines:
            value = getattr(line, name)
            if value is not None:
                values[name] = value
                break
    candidate = (
        values.get("operating_mode") == "tenant_dedicated"
        and values.get("control_plane_scope") == "project"
    )
    environment = None
    if candidate and values.get("project_id"):
        found = _ENVIRONMENT.search(str(values["project_id"]).lower())
        if found:
            environment = _ENV_NAMES.get(found.group(1), found.group(1))
    return IncidentContext(
        **values, environment_boundary_candidate=candidate, environment=environment
    )


def _redacted(decided_by: dict[str, Any]) -> dict[str, Any]:
    return {k: _redact(v) if isinstance(v, str) else v for k, v in decided_by.items()}


def _summary(verdict: Verdict, context: IncidentContext, lineage: Lineage) -> str:
    what = f"{context.action or 'request'} of {context.app_slug or 'an app'}"
    where = f"{context.org_id or '?'}/{context.project_id or '?'}"
    text = (
        f"{what} in {where}: {verdict.failure_class} ({verdict.category}) at "
        f"{verdict.failing_service}, rule {verdict.rule}"
    )
    if lineage.hops_missing:
        text += f"; missing hops {', '.join(lineage.hops_missing)}"
    return text


def build_event(
    state: CorrelationState,
    thread: Thread,
    assessment: _Assessment,
    *,
    status: str,
    final: bool,
    cfg: CoreConfig,
    settled: bool = False,
) -> IncidentEvent:
    lines = thread.lines
    context = _context(lines)
    verdict = assessment.verdict
    lineage = assessment.lineage
    trace_id = next((ln.trace_id for ln in lines if ln.trace_id), None)
    platform_managed = context.operating_mode == "platform_managed"

    evidence = Evidence(
        log_lines=[
            LineRef(
                service=ln.service,
                ts=ln.ts.isoformat(),
                level=ln.level,
                msg=_redact(ln.msg) if ln.msg else None,
                source=ref,
            )
            for ln, ref in zip(lines, thread.refs, strict=True)
        ],
        logql=logql_queries(
            state.correlation_id,
            (ln.service for ln in lines),
            app_instance_id=context.app_instance_id,
            app_slug=context.app_slug,
            operator_service_account_id=context.operator_service_account_id,
        ),
        trace_url=trace_url(cfg.trace_url_template, trace_id),
        shared_service_evidence=list(SHARED_SERVICE_EVIDENCE)
        if platform_managed
        else [],
        shared_service_logql=shared_service_queries() if platform_managed else {},
    )
    checks = [
        CheckFinding(id=f.id, status=f.status, detail=f.detail)
        for f in assessment.findings
    ]
    return IncidentEvent(
        incident_id=thread.incident_id,
        version=thread.version,
        status=status,  # type: ignore[arg-type]  # one of the three, set by callers
        final=final,
        settled=settled,
        correlation_id=state.correlation_id,
        trace_id=trace_id,
        failure_class=verdict.failure_class if verdict else None,
        category=verdict.category if verdict else None,
        escalate=verdict.escalate if verdict else False,
        escalation_reason=verdict.escalation_reason if verdict else None,
        context=context,
        lineage=LineageView(
            expected=list(LINEAGE) if lineage.expected else [],
            services_seen=list(lineage.services_seen),
            hops_missing=list(lineage.hops_missing),
            status=lineage.status,
            detail=lineage.detail,
        ),
        checks=checks,
        checks_failed=[f.id for f in assessment.findings if f.status == "failed"],
        recovery=recovery_for(verdict.failure_class, verdict.category)
        if verdict
        else None,
        runbook=runbook_for(verdict.failure_class) if verdict else None,
        explanation=Explanation(
            rule=verdict.rule,
            decided_by=_redacted(verdict.decided_by),
            summary=_summary(verdict, context, lineage),
        )
        if verdict
        else None,
        evidence=evidence,
        shape=shape_of(verdict, context) if verdict else None,
        first_seen=lines[0].ts.isoformat(),
        last_seen=lines[-1].ts.isoformat(),
        lines_seen=len(lines) + thread.dropped,
        lines_dropped=thread.dropped,
    )


def _version(
    state: CorrelationState,
    thread: Thread,
    assessment: _Assessment,
    *,
    final: bool,
    cfg: CoreConfig,
    judged: bool = False,
) -> IncidentEvent:
    thread.version += 1
    thread.last_key = assessment.key
    if judged and assessment.verdict is not None:
        thread.settled = True
    if assessment.verdict is None:
        status = "recovered"
    else:
        status = "closed" if final else "open"
    return build_event(
        state,
        thread,
        assessment,
        status=status,
        final=final,
        cfg=cfg,
        settled=thread.settled,
    )


def _close_due(thread: Thread, assessment: _Assessment, cfg: CoreConfig) -> float:
    pending = assessment.lineage.next_deadline or float("-inf")
    return max(thread.last_t + cfg.quiet_gap, pending)


def ingest(
    state: CorrelationState | None,
    line: LogLine,
    ref: SourceRef,
    *,
    now: float,
    cfg: CoreConfig,
) -> tuple[CorrelationState, list[IncidentEvent]]:
    """Add one line; return the state and any incident versions it caused."""
    if state is None:
        state = CorrelationState(line.correlation_id)
    thread = _thread_for(state, line)
    reopened = thread.closed
    thread.closed = False
    thread.hold_until = max(thread.hold_until, now + cfg.allowed_lateness)
    _insert(thread, line, ref, cfg.max_lines_per_correlation)
    if reopened and thread.version:
        logger.info(
            "late line reopens incident %s of correlation_id %s (version %d)",
            thread.incident_id,
            state.correlation_id,
            thread.version,
        )

    events: list[IncidentEvent] = []
    for each in state.threads:
        if each.closed:
            continue
        assessment = _assess(state, each, each.judged_at, cfg)
        changed = assessment.key != each.last_key
        if (each is thread and reopened and each.version) or (
            changed and (assessment.verdict is not None or each.version)
        ):
            events.append(_version(state, each, assessment, final=False, cfg=cfg))
    return state, events


def advance(
    state: CorrelationState, *, now: float, cfg: CoreConfig
) -> tuple[CorrelationState | None, list[IncidentEvent]]:
    """Let event time reach ``now``: fire lineage deadlines, close quiet threads,
    forget closed ones past retention. Returns None when nothing is left to keep."""
    events: list[IncidentEvent] = []
    for thread in state.threads:
        if thread.closed or now < thread.hold_until:
            continue
        assessment = _assess(state, thread, now, cfg)
        thread.judged_at = now
        if now >= _close_due(thread, assessment, cfg):
            thread.closed = True
            thread.memo = None
            if assessment.verdict is not None or thread.version:
                events.append(
                    _version(
                        state, thread, assessment, final=True, cfg=cfg, judged=True
                    )
                )
        elif assessment.verdict is not None and (
            assessment.key != thread.last_key or not thread.settled
        ):
            # The first judgement past the lateness settles the verdict: a version
            # that escalation windows may count, even when nothing else changed.
            events.append(
                _version(state, thread, assessment, final=False, cfg=cfg, judged=True)
            )

    horizon = cfg.quiet_gap + cfg.closed_retention
    state.threads = [
        t for t in state.threads if not (t.closed and now >= t.last_t + horizon)
    ]
    return (state if state.threads else None), events


def next_due(state: CorrelationState, *, now: float, cfg: CoreConfig) -> float:
    """The earliest event time at which ``advance`` has something to do."""
    due = float("inf")
    for thread in state.threads:
        if thread.closed:
            due = min(due, thread.last_t + cfg.quiet_gap + cfg.closed_retention)
            continue
        assessment = _assess(state, thread, now, cfg)
        mine = _close_due(thread, assessment, cfg)
        if assessment.lineage.next_deadline is not None:
            mine = min(mine, assessment.lineage.next_deadline)
        if assessment.verdict is not None and not thread.settled:
            # Settle as soon as the hold allows, so that escalation windows count
            # the incident then rather than at close.
            mine = float("-inf")
        due = min(due, max(mine, thread.hold_until))
    return due
