"""The figures that need Kafka: throughput, the bare-loop ceiling, and latency.

Two workers, one after the other, each with topics and a consumer group of its own:

- throughput: the load is pre-loaded, the bare aiokafka loop reads it once, then a
  worker starts and works through it at saturation;
- latency: a fresh worker, traffic paced at half that throughput. A fresh one,
  because the first worker still owes the closing of every correlation the load
  left open, a backlog no live stream of that rate would have.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gpuaas_triage.bench import in_memory
from gpuaas_triage.bench.kafka_load import KeyWatch, Sender, baseline, paced
from gpuaas_triage.bench.sentinels import BenchError, line_sentinels, shape_sentinels
from gpuaas_triage.bench.traffic import TrafficGenerator, TrafficLine
from gpuaas_triage.bench.worker_process import WorkerProcess
from gpuaas_triage.settings import DEFAULT_INPUT_TOPICS, Settings
from gpuaas_triage.streams.topics import TopicNames, ensure_topics

logger = logging.getLogger(__name__)

#: Longest wait for the incidents of the last paced lines after sending stops.
LATENCY_DRAIN_SECONDS = 15.0
#: Longest wait for a fresh worker to answer its first sentinel.
WORKER_READY_SECONDS = 90.0


def bench_settings(
    settings: Settings, bootstrap: str, prefix: str, store: str, workdir: Path
) -> Settings:
    """A run's own app id, topics and state dir; keyed input, so no repartition."""
    inputs = ",".join(f"{prefix}-{name}" for name in DEFAULT_INPUT_TOPICS.split(","))
    return settings.model_copy(
        update={
            "bootstrap_servers": bootstrap,
            "app_id": prefix,
            "input_topics": inputs,
            "input_keyed_by_correlation_id": True,
            "incidents_topic": f"{prefix}-incidents",
            "escalations_topic": f"{prefix}-escalations",
            "dead_letter_topic": f"{prefix}-dead-letters",
            "store": store,
            "data_dir": workdir / prefix,
        }
    )


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix``: the run's own."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
            logger.info("deleted %d topic(s) of this run", len(mine))
    finally:
        await admin.close()


async def _wait_keys(
    watch: KeyWatch,
    keys: list[str],
    worker: WorkerProcess,
    deadline: float,
    what: str,
    *,
    every: bool = True,
) -> float:
    """Poll until every key (or, with ``every`` false, any key) is on the watched
    topic; the time the last (or the first) of them came."""
    while not (watch.seen_all(keys) if every else watch.seen_any(keys)):
        if not worker.alive():
            raise BenchError(
                f"the worker exited waiting for {what}:\n{worker.log_tail()}"
            )
        if time.monotonic() > deadline:
            count = sum(1 for k in keys if k in watch.first_seen)
            raise BenchError(
                f"timed out waiting for {what} ({count} of {len(keys)}); log tail:\n"
                f"{worker.log_tail()}"
            )
        await asyncio.sleep(0.02)
    times = [watch.first_seen[k] for k in keys if k in watch.first_seen]
    return max(times) if every else min(times)


@dataclass
class Throughput:
    lines: int
    seconds: float
    input_read_seconds: float
    cpu_seconds: float | None
    baseline_lines: int
    baseline_seconds: float
    preload_seconds: float
    incident_records: int
    peak_rss_bytes: int | None

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds

    @property
    def baseline_lines_per_s(self) -> float:
        return self.baseline_lines / self.baseline_seconds


async def throughput(
    settings: Settings,
    load: list[TrafficLine],
    workdir: Path,
    within: float,
    profile: Path | None,
) -> Throughput:
    """Pre-load, run the bare loop over the load, then time the worker over it.

    The worker's time runs from its first head sentinel's incident to the
    escalations of the shape sentinels, which are sent once every tail sentinel's
    incident is out: by then it has read every line and the pattern agent has
    counted every incident that reading produced."""
    end_ts = orjson.loads(load[-1].raw)["ts"]
    head = line_sentinels(settings, "head", orjson.loads(load[0].raw)["ts"])
    tail = line_sentinels(settings, "tail", end_ts)
    everything = [*head, *load, *tail]
    bootstrap = settings.effective_bootstrap
    out_topic = f"{settings.app_id}-baseline-out"
    await ensure_topics(settings)
    await create_topic(bootstrap, out_topic, settings.partitions)

    async with Sender(settings) as sender:
        started = time.perf_counter()
        await sender.send_all(everything)
        preload_seconds = time.perf_counter() - started
        logger.info(
            "pre-loaded %d lines in %.1fs; bare loop next",
            len(everything),
            preload_seconds,
        )
        base = await baseline(settings, len(everything), out_topic, within)
        logger.info(
            "bare loop: %d lines in %.2fs; worker next", base.lines, base.seconds
        )

        incidents = KeyWatch(bootstrap, settings.incidents_topic, settings.partitions)
        escalations = KeyWatch(
            bootstrap, settings.escalations_topic, settings.partitions
        )
        watching = [asyncio.create_task(w.run()) for w in (incidents, escalations)]
        worker = WorkerProcess(settings, workdir / f"{settings.app_id}.log", profile)
        deadline = time.monotonic() + within
        try:
            head_ids = [s.incident_id for s in head if s.incident_id]
            began = await _wait_keys(
                incidents,
                head_ids,
                worker,
                deadline,
                "the first head sentinel's incident",
                every=False,
            )
            cpu_at_start = worker.cpu_seconds()

            tail_ids = [s.incident_id for s in tail if s.incident_id]
            input_read = await _wait_keys(
                incidents, tail_ids, worker, deadline, "the tail sentinels' incidents"
            )
            with in_memory.quiet_core():
                records, escalation_ids = shape_sentinels(settings, "end", end_ts)
            await sender.send_records(
                TopicNames.from_settings(settings).shapes, records
            )
            done = await _wait_keys(
                escalations,
                escalation_ids,
                worker,
                deadline,
                "the shape sentinels' escalations",
            )
            cpu_at_end = worker.cpu_seconds()
            peak_rss = worker.peak_rss_bytes()
        finally:
            await _stop(worker, watching, incidents, escalations)

    cpu = None
    if cpu_at_start is not None and cpu_at_end is not None:
        cpu = cpu_at_end - cpu_at_start
    return Throughput(
        lines=len(everything),
        seconds=done - began,
        input_read_seconds=input_read - began,
        cpu_seconds=cpu,
        baseline_lines=base.lines,
        baseline_seconds=base.seconds,
        preload_seconds=preload_seconds,
        incident_records=incidents.records,
        peak_rss_bytes=peak_rss,
    )


async def latency(
    settings: Settings,
    generator: TrafficGenerator,
    rate: float,
    seconds: float,
    workdir: Path,
) -> dict[str, Any]:
    """From handing a failing line to the producer to reading the first version of
    its incident, for every line that opens one, at ``rate`` lines a second."""
    await ensure_topics(settings)
    bootstrap = settings.effective_bootstrap
    lines = generator.take(max(200, int(rate * seconds)))
    ready = line_sentinels(settings, "ready", orjson.loads(lines[0].raw)["ts"])[:1]

    async with Sender(settings) as sender:
        incidents = KeyWatch(bootstrap, settings.incidents_topic, settings.partitions)
        watching = [asyncio.create_task(incidents.run())]
        worker = WorkerProcess(settings, workdir / f"{settings.app_id}.log")
        try:
            await sender.send_all(ready)
            await _wait_keys(
                incidents,
                [s.incident_id for s in ready if s.incident_id],
                worker,
                time.monotonic() + WORKER_READY_SECONDS,
                "a fresh worker's first incident",
            )
            logger.info("paced run: %d lines at %.0f lines/s", len(lines), rate)
            sent_at = await paced(sender, lines, rate)
            deadline = time.monotonic() + LATENCY_DRAIN_SECONDS
            # Polls the watcher against a deadline; there is no event to wait on.
            while not incidents.seen_all(sent_at):  # noqa: ASYNC110
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            peak_rss = worker.peak_rss_bytes()
        finally:
            await _stop(worker, watching, incidents)

    samples = sorted(
        (incidents.first_seen[i] - t) * 1000
        for i, t in sent_at.items()
        if i in incidents.first_seen
    )
    if not samples:
        raise BenchError("no incident of the paced lines came back")
    return {
        "p50": round(percentile(samples, 50), 1),
        "p95": round(percentile(samples, 95), 1),
        "p99": round(percentile(samples, 99), 1),
        "max": round(samples[-1], 1),
        "samples": len(samples),
        "missing": len(sent_at) - len(samples),
        "rate_lines_per_s": round(rate, 1),
        "lines": len(lines),
        "peak_rss_bytes": peak_rss,
    }


async def _stop(
    worker: WorkerProcess, watching: list[asyncio.Task[None]], *watches: KeyWatch
) -> None:
    code = await asyncio.to_thread(worker.stop)
    for watch in watches:
        watch.stop()
    await asyncio.gather(*watching)
    if code != 0:
        logger.warning("worker exited with %d; log tail:\n%s", code, worker.log_tail())
