"""A worker over its open-correlation cap closes the oldest correlations early,
marks their final versions, and says so in a few log lines."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from .cases import all_lines
from .harness import isolated_settings, latest_by, prepare_topics, send, wait_for
from .reliability import incident_records, workers

PARTITIONS = 4
_REPORTED = re.compile(
    rb"(\d+) correlation\(s\) closed early since the last report, (\d+) in all"
)


def _reports(log_path: Path) -> list[tuple[int, int]]:
    text = log_path.read_bytes() if log_path.exists() else b""
    return [(int(since), int(total)) for since, total in _REPORTED.findall(text)]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_worker_over_its_cap_closes_the_oldest_early_and_marks_them(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """With one open correlation allowed per partition, every incident of the public
    cases still ends with a final version; those closed early say why; the worker
    counts the early closes in fewer log lines than there were closes."""
    settings = isolated_settings(
        kafka_bootstrap, tmp_path, partitions=PARTITIONS,
        max_open_correlations=PARTITIONS,
    )
    prepare_topics(settings)
    polls: list[int] = []

    def all_final_and_quiet() -> bool:
        records = incident_records(settings)
        polls.append(len(records))
        newest = latest_by(records, "incident_id").values()
        return (
            len(polls) > 1 and polls[-1] == polls[-2] > 0
            and all(record["final"] for record in newest)
        )

    with workers() as group:
        worker = group.start(settings, tmp_path / "worker.log")
        started = time.monotonic()
        send(settings, all_lines())
        wait_for(all_final_and_quiet, timeout=150, every=3.0, worker=worker,
                 what="every incident final")
        # The first close is reported at once, the burst after it by the timer.
        wait_for(lambda: len(_reports(worker.log_path)) >= 2, timeout=40,
                 worker=worker, what="the early-close reports")
        elapsed = time.monotonic() - started
        code = worker.terminate()

    records = incident_records(settings)
    early: list[dict[str, Any]] = [r for r in records if r["closed_early"]]
    assert early, "one open correlation per partition must close some early"
    assert all(r["final"] for r in early)
    reasons = {r["closed_early_reason"] for r in records if r["closed_early"]}
    assert reasons == {"open_correlation_cap"}
    assert not any(r["closed_early_reason"] for r in records if not r["closed_early"])

    reports = _reports(worker.log_path)
    assert sum(since for since, _ in reports) == reports[-1][1]
    assert len(reports) <= 2 + elapsed / 10, reports
    assert reports[-1][1] > len(reports)
    assert code == 0, worker.log_tail()
