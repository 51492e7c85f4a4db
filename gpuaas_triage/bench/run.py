"""``triage bench``: every figure of BENCHMARKS.md from one run.

On the broker (the configured one, or the local KRaft broker): the worker's
throughput at saturation over pre-loaded topics, a bare aiokafka loop over the same
records as the ceiling, and incident latency at half the measured throughput. Then,
with no broker: ``triage replay`` against a plain parse, and the state held per open
correlation. Each run uses topics and a consumer group of its own, deleted after.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gpuaas_triage.bench import in_memory
from gpuaas_triage.bench.kafka_load import (
    BenchError,
    IncidentWatch,
    Sender,
    baseline,
    paced,
    sentinels,
)
from gpuaas_triage.bench.traffic import TrafficGenerator, TrafficLine
from gpuaas_triage.bench.worker_process import WorkerProcess
from gpuaas_triage.settings import DEFAULT_INPUT_TOPICS, Settings
from gpuaas_triage.streams.broker import ensure_broker
from gpuaas_triage.streams.topics import ensure_topics

logger = logging.getLogger(__name__)

Store = Literal["memory", "rocksdb"]


@dataclass(frozen=True)
class Plan:
    """How much of everything a run does."""

    lines: int
    latency_seconds: float
    replay_lines: int
    state_lines: int
    catch_up_timeout: float
    seed: int = 7


QUICK = Plan(lines=4_000, latency_seconds=5.0, replay_lines=6_000, state_lines=3_000,
             catch_up_timeout=45.0)
FULL = Plan(lines=100_000, latency_seconds=60.0, replay_lines=60_000,
            state_lines=20_000, catch_up_timeout=420.0)
#: Longest wait for the incidents of the last paced lines after sending stops.
LATENCY_DRAIN_SECONDS = 15.0


def bench_settings(settings: Settings, bootstrap: str, tag: str, store: Store,
                   workdir: Path) -> Settings:
    """The run's own app id, topics and state dir; keyed input, so no repartition."""
    prefix = f"bench-{tag}"
    inputs = ",".join(f"{prefix}-{name}" for name in DEFAULT_INPUT_TOPICS.split(","))
    return settings.model_copy(update={
        "bootstrap_servers": bootstrap,
        "app_id": prefix,
        "input_topics": inputs,
        "input_keyed_by_correlation_id": True,
        "incidents_topic": f"{prefix}-incidents",
        "escalations_topic": f"{prefix}-escalations",
        "dead_letter_topic": f"{prefix}-dead-letters",
        "store": store,
        "data_dir": workdir / "worker-data",
    })


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def _create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def _delete_run_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
            logger.info("deleted %d topic(s) of this run", len(mine))
    finally:
        await admin.close()


async def _catch_up(watch: IncidentWatch, worker: WorkerProcess,
                    head: list[TrafficLine], tail: list[TrafficLine],
                    within: float) -> tuple[float, float, float | None]:
    """Wait for every tail sentinel's incident; the first head sentinel's incident
    and the last tail sentinel's incident bound the worker's work. Also the CPU
    seconds the worker used in between (sampled every 50 ms, so roughly)."""
    tail_ids = [s.incident_id for s in tail if s.incident_id]
    head_ids = [s.incident_id for s in head if s.incident_id]
    deadline = time.monotonic() + within
    cpu_at_start: float | None = None
    while not watch.seen_all(tail_ids):
        if cpu_at_start is None and any(i in watch.first_seen for i in head_ids):
            cpu_at_start = worker.cpu_seconds()
        if not worker.alive():
            raise BenchError(f"the worker exited during the load:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            seen = sum(1 for i in tail_ids if i in watch.first_seen)
            raise BenchError(
                f"the worker did not get through the load in {within:g}s ({seen} of "
                f"{len(tail_ids)} partitions done); log tail:\n{worker.log_tail()}"
            )
        await asyncio.sleep(0.05)
    started = min(watch.first_seen[i] for i in head_ids)
    ended = max(watch.first_seen[i] for i in tail_ids)
    cpu_at_end = worker.cpu_seconds()
    cpu = None
    if cpu_at_start is not None and cpu_at_end is not None:
        cpu = cpu_at_end - cpu_at_start
    return started, ended, cpu


async def _latency(watch: IncidentWatch, sender: Sender, lines: list[TrafficLine],
                   rate: float) -> dict[str, Any]:
    sent_at = await paced(sender, lines, rate)
    deadline = time.monotonic() + LATENCY_DRAIN_SECONDS
    # Polls the watcher's progress against a deadline; there is no event to wait on.
    while not watch.seen_all(sent_at) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    samples = sorted(
        (watch.first_seen[i] - t) * 1000 for i, t in sent_at.items()
        if i in watch.first_seen
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
    }


async def on_broker(settings: Settings, plan: Plan, workdir: Path,
                    profile_dir: Path | None) -> dict[str, Any]:
    """Throughput, the baseline and latency: the figures that need Kafka."""
    generator = TrafficGenerator(seed=plan.seed)
    load = generator.take(plan.lines)
    head = sentinels(settings, "head", orjson.loads(load[0].raw)["ts"])
    tail = sentinels(settings, "tail", orjson.loads(load[-1].raw)["ts"])
    everything = [*head, *load, *tail]
    bootstrap = settings.effective_bootstrap
    out_topic = f"{settings.app_id}-baseline-out"

    await ensure_topics(settings)
    await _create_topic(bootstrap, out_topic, settings.partitions)
    async with Sender(settings) as sender:
        started = time.perf_counter()
        await sender.send_all(everything)
        preload_seconds = time.perf_counter() - started
        logger.info("pre-loaded %d lines in %.1fs; baseline next", len(everything),
                    preload_seconds)

        base = await baseline(settings, len(everything), out_topic,
                              plan.catch_up_timeout)
        logger.info("baseline: %d lines in %.2fs", base.lines, base.seconds)

        watch = IncidentWatch(bootstrap, settings.incidents_topic, settings.partitions)
        watching = asyncio.create_task(watch.run())
        profile = profile_dir / "worker.prof" if profile_dir else None
        worker = WorkerProcess(settings, workdir / "worker.log", profile)
        try:
            began, ended, worker_cpu = await _catch_up(watch, worker, head, tail,
                                           plan.catch_up_timeout)
            worker_seconds = ended - began
            worker_rate = len(everything) / worker_seconds
            incidents_after_load = watch.records
            logger.info("worker: %d lines in %.2fs; latency run next at %.0f lines/s",
                        len(everything), worker_seconds, worker_rate / 2)

            rate = worker_rate / 2
            paced_lines = generator.take(max(200, int(rate * plan.latency_seconds)))
            latency = await _latency(watch, sender, paced_lines, rate)
            peak_rss = worker.peak_rss_bytes()
        finally:
            code = await asyncio.to_thread(worker.stop)
            watch.stop()
            await watching
        if code != 0:
            logger.warning("worker exited with %d; log tail:\n%s", code,
                           worker.log_tail())
        if profile_dir is not None:
            shutil.copyfile(worker.log_path, profile_dir / "worker.log")

    return {
        "lines": len(everything),
        "preload_seconds": round(preload_seconds, 2),
        "worker_seconds": round(worker_seconds, 3),
        "worker_lines_per_s": round(worker_rate, 1),
        "worker_cpu_seconds": None if worker_cpu is None else round(worker_cpu, 2),
        "baseline_seconds": round(base.seconds, 3),
        "baseline_lines_per_s": round(base.lines_per_s, 1),
        "ratio": round(worker_rate / base.lines_per_s, 4),
        "incident_records_after_load": incidents_after_load,
        "latency_rate_lines_per_s": round(rate, 1),
        "latency_lines": len(paced_lines),
        "latency_ms": latency,
        "peak_rss_bytes": peak_rss,
        "flows": dict(generator.flows),
        "bursts": generator.bursts,
    }


def off_broker(settings: Settings, plan: Plan, workdir: Path,
               profile_dir: Path | None) -> dict[str, Any]:
    """Replay speed and state size, from traffic of another seed."""
    # The core logs each escalation it opens; thousands of them would bury the
    # bench's own progress lines.
    core_log = logging.getLogger("gpuaas_triage.classifiers")
    level = core_log.level
    core_log.setLevel(logging.WARNING)
    try:
        return _off_broker(settings, plan, workdir, profile_dir)
    finally:
        core_log.setLevel(level)


def _off_broker(settings: Settings, plan: Plan, workdir: Path,
                profile_dir: Path | None) -> dict[str, Any]:
    generator = TrafficGenerator(seed=plan.seed + 1)
    path = workdir / "traffic.jsonl"
    path.write_bytes(b"".join(line.raw + b"\n" for line in
                              generator.take(plan.replay_lines)))
    if profile_dir is not None:
        profiler = cProfile.Profile()
        profiler.runcall(in_memory.replay_speed, path, settings)
        profiler.dump_stats(profile_dir / "replay.prof")
    speed = in_memory.replay_speed(path, settings)

    state_lines = [line.raw for line in TrafficGenerator(seed=plan.seed + 2)
                   .take(plan.state_lines)]
    size = in_memory.state_size(state_lines, settings)
    return {
        "replay_lines": speed.lines,
        "replay_lines_per_s": round(speed.replay_lines_per_s, 1),
        "parse_lines_per_s": round(speed.parse_lines_per_s, 1),
        "replay_ratio": round(speed.replay_lines_per_s / speed.parse_lines_per_s, 4),
        "open_correlations": size.correlations,
        "open_threads": size.open_threads,
        "bytes_per_open_correlation": round(size.bytes_per_open_correlation),
    }


def run(settings: Settings, *, quick: bool, as_json: bool, store: Store = "memory",
        lines: int | None = None, profile_dir: str | None = None) -> int:
    plan = QUICK if quick else FULL
    if lines is not None:
        # Give a bigger load the time it needs at a few hundred lines a second.
        plan = replace(plan, lines=max(lines, 100),
                       catch_up_timeout=max(plan.catch_up_timeout, lines / 100))
    bootstrap = ensure_broker(settings)
    tag = uuid.uuid4().hex[:8]
    profile = Path(profile_dir) if profile_dir else None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        workdir = Path(tmp)
        run_settings = bench_settings(settings, bootstrap, tag, store, workdir)
        logger.info("bench %s (%s) on %s, store %s", tag, "quick" if quick else "full",
                    bootstrap, store)
        try:
            result = asyncio.run(on_broker(run_settings, plan, workdir, profile))
        finally:
            asyncio.run(_delete_run_topics(bootstrap, run_settings.app_id))
        result |= off_broker(run_settings, plan, workdir, profile)

    result |= {
        "mode": "quick" if quick else "full",
        "store": store,
        "partitions": run_settings.partitions,
        "seed": plan.seed,
        "profiled": profile is not None,
        "cpus": os.cpu_count(),
        # Other work on the machine competes with the worker and the broker.
        "loadavg_1m_before": round(load_before, 2),
        "python": platform.python_version(),
        "total_seconds": round(time.monotonic() - started, 1),
    }
    _print(result, as_json)
    return 0


def _print(result: dict[str, Any], as_json: bool) -> None:
    out = sys.stdout
    if as_json:
        out.write(orjson.dumps(result).decode() + "\n")
        return
    lat = result["latency_ms"]
    rows = [
        ("worker lines/s", f"{result['worker_lines_per_s']:,.0f} "
         f"({result['lines']:,} lines in {result['worker_seconds']:.1f}s, "
         f"store {result['store']})"),
        ("baseline lines/s", f"{result['baseline_lines_per_s']:,.0f}"),
        ("ratio", f"{result['ratio']:.3f}"),
        ("latency ms", f"p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']} "
         f"({lat['samples']} incidents at {result['latency_rate_lines_per_s']:,.0f} "
         "lines/s)"),
        ("peak RSS", f"{(result['peak_rss_bytes'] or 0) / 2**20:,.0f} MiB"),
        ("bytes/open corr.", f"{result['bytes_per_open_correlation']:,}"),
        ("replay lines/s", f"{result['replay_lines_per_s']:,.0f} "
         f"(orjson parse {result['parse_lines_per_s']:,.0f})"),
        ("replay ratio", f"{result['replay_ratio']:.4f}"),
    ]
    for name, value in rows:
        out.write(f"{name:<18} {value}\n")
