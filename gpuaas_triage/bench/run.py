"""``triage bench``: every figure of BENCHMARKS.md from one run.

On the broker (the configured one, or the local KRaft broker): the worker's
throughput at saturation, a bare aiokafka loop over the same records as the
ceiling, and incident latency at half that throughput (see ``on_broker``). Then,
with no broker: ``triage replay`` against a plain parse, and the state held per open
correlation. Every topic a run creates starts with ``bench-<run id>`` and is deleted
at the end.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
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

from gpuaas_triage.bench import in_memory, on_broker
from gpuaas_triage.bench.traffic import TrafficGenerator
from gpuaas_triage.settings import Settings
from gpuaas_triage.streams.broker import ensure_broker

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


QUICK = Plan(
    lines=4_000,
    latency_seconds=5.0,
    replay_lines=6_000,
    state_lines=3_000,
    catch_up_timeout=45.0,
)
FULL = Plan(
    lines=100_000,
    latency_seconds=60.0,
    replay_lines=60_000,
    state_lines=20_000,
    catch_up_timeout=420.0,
)


async def _on_broker(
    settings: Settings,
    bootstrap: str,
    tag: str,
    store: Store,
    plan: Plan,
    workdir: Path,
    profile_dir: Path | None,
) -> dict[str, Any]:
    prefix = f"bench-{tag}"
    try:
        first = on_broker.bench_settings(
            settings, bootstrap, f"{prefix}-t", store, workdir
        )
        generator = TrafficGenerator(seed=plan.seed)
        profile = profile_dir / "worker.prof" if profile_dir else None
        load = generator.take(plan.lines)
        run = await on_broker.throughput(
            first, load, workdir, plan.catch_up_timeout, profile
        )
        logger.info(
            "worker: %d lines in %.2fs (input read after %.2fs); latency run next",
            run.lines,
            run.seconds,
            run.input_read_seconds,
        )

        second = on_broker.bench_settings(
            settings, bootstrap, f"{prefix}-l", store, workdir
        )
        paced = TrafficGenerator(seed=plan.seed + 3)
        latency = await on_broker.latency(
            second, paced, run.lines_per_s / 2, plan.latency_seconds, workdir
        )
    finally:
        await on_broker.delete_topics(bootstrap, prefix)

    return {
        "lines": run.lines,
        "preload_seconds": round(run.preload_seconds, 2),
        "worker_seconds": round(run.seconds, 3),
        "worker_input_read_seconds": round(run.input_read_seconds, 3),
        "worker_lines_per_s": round(run.lines_per_s, 1),
        "worker_cpu_seconds": None
        if run.cpu_seconds is None
        else round(run.cpu_seconds, 2),
        "baseline_seconds": round(run.baseline_seconds, 3),
        "baseline_lines_per_s": round(run.baseline_lines_per_s, 1),
        "ratio": round(run.lines_per_s / run.baseline_lines_per_s, 4),
        "incident_records": run.incident_records,
        "latency_ms": latency,
        "peak_rss_bytes": run.peak_rss_bytes,
        "flows": dict(generator.flows),
        "bursts": generator.bursts,
    }


def off_broker(
    settings: Settings, plan: Plan, workdir: Path, profile_dir: Path | None
) -> dict[str, Any]:
    """Replay speed and state size, from traffic of other seeds."""
    with in_memory.quiet_core():
        generator = TrafficGenerator(seed=plan.seed + 1)
        path = workdir / "traffic.jsonl"
        path.write_bytes(
            b"".join(line.raw + b"\n" for line in generator.take(plan.replay_lines))
        )
        if profile_dir is not None:
            profiler = cProfile.Profile()
            profiler.runcall(in_memory.replay_speed, path, settings)
            profiler.dump_stats(profile_dir / "replay.prof")
        speed = in_memory.replay_speed(path, settings)

        state_lines = [
            line.raw
            for line in TrafficGenerator(seed=plan.seed + 2).take(plan.state_lines)
        ]
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


def run(
    settings: Settings,
    *,
    quick: bool,
    as_json: bool,
    store: Store = "memory",
    lines: int | None = None,
    profile_dir: str | None = None,
) -> int:
    plan = QUICK if quick else FULL
    if lines is not None:
        # Give a bigger load the time it needs at a few hundred lines a second.
        plan = replace(
            plan,
            lines=max(lines, 100),
            catch_up_timeout=max(plan.catch_up_timeout, lines / 100),
        )
    bootstrap = ensure_broker(settings)
    tag = uuid.uuid4().hex[:8]
    profile = Path(profile_dir) if profile_dir else None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    load_before = os.getloadavg()[0]
    logger.info(
        "bench %s (%s) on %s, store %s",
        tag,
        "quick" if quick else "full",
        bootstrap,
        store,
    )
    with tempfile.TemporaryDirectory(prefix="triage-bench-") as tmp:
        workdir = Path(tmp)
        try:
            result = asyncio.run(
                _on_broker(settings, bootstrap, tag, store, plan, workdir, profile)
            )
        finally:
            if profile is not None:
                for log in workdir.glob("*.log"):
                    shutil.copyfile(log, profile / log.name)
        result |= off_broker(settings, plan, workdir, profile)

    result |= {
        "mode": "quick" if quick else "full",
        "store": store,
        "partitions": settings.partitions,
        "seed": plan.seed,
        "profiled": profile is not None,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        # Other work on the machine competes with the worker and the broker.
        "loadavg_1m_before": round(load_before, 2),
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
        (
            "worker lines/s",
            f"{result['worker_lines_per_s']:,.0f} "
            f"({result['lines']:,} lines in {result['worker_seconds']:.1f}s, "
            f"store {result['store']})",
        ),
        ("bare loop lines/s", f"{result['baseline_lines_per_s']:,.0f}"),
        ("ratio", f"{result['ratio']:.3f}"),
        (
            "latency ms",
            f"p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']} "
            f"({lat['samples']} incidents at {lat['rate_lines_per_s']:,.0f} lines/s)",
        ),
        ("peak RSS", f"{(result['peak_rss_bytes'] or 0) / 2**20:,.0f} MiB"),
        ("bytes/open corr.", f"{result['bytes_per_open_correlation']:,}"),
        (
            "replay lines/s",
            f"{result['replay_lines_per_s']:,.0f} "
            f"(orjson parse {result['parse_lines_per_s']:,.0f})",
        ),
        ("replay ratio", f"{result['replay_ratio']:.4f}"),
    ]
    for name, value in rows:
        out.write(f"{name:<18} {value}\n")
