"""Marker records that tell the bench how far the worker has got.

Line sentinels: one log line per input topic and partition that opens an incident on
its own, its correlation_id chosen to hash to that partition. A partition is read in
order, so once the incident of a partition's last sentinel is out, the worker has
read every line before it there.

Shape sentinels: per partition of the shapes topic, the settled incidents of three
orgs that share a failure shape of their own, enough to open a cross-tenant
escalation. Sent once the input is read, they queue behind every incident the load
handed to the pattern agent; their escalations show it has worked through them.
"""

from __future__ import annotations

import orjson
from aiokafka.partitioner import murmur2

from gpuaas_triage.bench.traffic import TrafficLine
from gpuaas_triage.classifiers.config import CoreConfig
from gpuaas_triage.classifiers.correlation import incident_id_for
from gpuaas_triage.classifiers.pipeline import Pipeline
from gpuaas_triage.errors import TriageError
from gpuaas_triage.schemas.events import EscalationEvent, IncidentEvent
from gpuaas_triage.schemas.source import file_ref
from gpuaas_triage.settings import Settings
from gpuaas_triage.streams.produce import TopicRouter

SENTINEL_ORG = "org-bench-sentinel"
SENTINEL_PROJECT = "proj-bench-sentinel-prod"
#: Keys tried per partition before giving up on finding one that hashes there.
MAX_KEY_TRIES = 10_000

#: A record for one partition of a topic: (partition, key, value).
Record = tuple[int, bytes, bytes]


class BenchError(TriageError):
    """A benchmark phase could not finish; the message says which and why."""


def partition_of(key: bytes, partitions: int) -> int:
    """The partition aiokafka's default partitioner gives ``key``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def line_sentinels(settings: Settings, label: str, ts: str) -> list[TrafficLine]:
    """One line per input topic and partition that opens an incident on its own."""
    router = TopicRouter(settings.input_topic_list)
    out: list[TrafficLine] = []
    for service in router.by_service:
        for partition in range(settings.partitions):
            cid = _key_for(f"bench-{label}-{service}", partition, settings.partitions)
            record = {
                "ts": ts,
                "service": service,
                "level": "error",
                "msg": "bench sentinel",
                "correlation_id": cid,
                "org_id": SENTINEL_ORG,
                "project_id": SENTINEL_PROJECT,
                "error_code": "internal_error",
                "bootstrap_error": "bench_sentinel",
            }
            incident_id = incident_id_for(cid, SENTINEL_ORG, SENTINEL_PROJECT)
            out.append(TrafficLine(service, cid, orjson.dumps(record), incident_id))
    return out


def shape_sentinels(
    settings: Settings, label: str, ts: str
) -> tuple[list[Record], list[str]]:
    """Records for the shapes topic, and the escalation_id each partition's group
    opens; the incidents and the ids come from the in-memory core, which the
    worker agrees with."""
    cfg = CoreConfig.from_settings(settings)
    pipeline = Pipeline(cfg=cfg, allowed_lateness=settings.allowed_lateness_seconds)
    outputs = []
    number = 0
    for partition in range(settings.partitions):
        for org in range(cfg.escalation_min_orgs):
            line = {
                "ts": ts,
                "service": "gpuaas-app-proxy",
                "level": "error",
                "msg": "bench sentinel",
                "correlation_id": f"bench-{label}-{partition}-{org}",
                "org_id": f"org-bench-{label}-{org}",
                "project_id": f"proj-bench-{label}-{org}",
                "bootstrap_error": f"bench_{label}_{partition}",
            }
            number += 1
            outputs += pipeline.feed_raw(orjson.dumps(line), file_ref("bench", number))
    outputs += pipeline.finish()

    records: list[Record] = []
    escalation_ids: list[str] = []
    fingerprints: list[str] = []
    for out in outputs:
        if isinstance(out, IncidentEvent) and out.settled and out.shape is not None:
            fingerprint = out.shape.fingerprint
            if fingerprint not in fingerprints:
                fingerprints.append(fingerprint)
            value = orjson.dumps({"incident": out.model_dump(mode="json")})
            records.append(
                (fingerprints.index(fingerprint), fingerprint.encode(), value)
            )
        elif isinstance(out, EscalationEvent) and out.status == "opened":
            escalation_ids.append(out.escalation_id)
    if len(escalation_ids) != settings.partitions:
        raise BenchError(
            f"shape sentinels opened {len(escalation_ids)} escalations, expected one "
            f"per partition ({settings.partitions}); check escalation_min_orgs"
        )
    return records, escalation_ids


def _key_for(prefix: str, partition: int, partitions: int) -> str:
    for n in range(MAX_KEY_TRIES):
        cid = f"{prefix}-{n}"
        if partition_of(cid.encode(), partitions) == partition:
            return cid
    raise BenchError(f"no key of {prefix}-N hashes to partition {partition}")
