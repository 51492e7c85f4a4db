"""``triage bench --quick --json`` runs end to end on the session's broker."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
import pytest

POSITIVE = (
    "worker_lines_per_s", "baseline_lines_per_s", "ratio",
    "bytes_per_open_correlation", "replay_lines_per_s", "replay_ratio", "lines",
    "worker_seconds", "peak_rss_bytes",
)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_quick_bench_prints_every_figure(kafka_bootstrap: str) -> None:
    """The quick bench prints one JSON object holding every figure, each a positive
    number, and latency percentiles in order; timings themselves are not judged."""
    env = {**os.environ, "TRIAGE_BOOTSTRAP_SERVERS": kafka_bootstrap}

    done = subprocess.run(
        [sys.executable, "-m", "gpuaas_triage.streams.cli", "bench", "--quick",
         "--json"],
        env=env, capture_output=True, timeout=170, check=False,
    )

    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    result: dict[str, Any] = orjson.loads(done.stdout)
    for key in POSITIVE:
        assert isinstance(result[key], int | float), key
        assert result[key] > 0, key
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert latency["samples"] > 0
    assert result["ratio"] == pytest.approx(
        result["worker_lines_per_s"] / result["baseline_lines_per_s"], abs=1e-3
    )
    assert result["mode"] == "quick"
    assert result["store"] == "memory"
