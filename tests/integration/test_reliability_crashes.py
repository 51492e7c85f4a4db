"""Workers that die or stop mid-stream lose nothing: state comes back from the
changelog, and the incidents end as an uncrashed run would have them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .cases import all_lines
from .harness import isolated_settings, prepare_topics, send, wait_for
from .reliability import (
    FAST_GROUP,
    assert_same_as_reference,
    committed_offsets,
    end_offsets,
    has_all_finals,
    incident_records,
    indexed_after_assignment,
    log_count,
    reference,
    repeated_versions,
    workers,
)

ASSIGNED = "Executing _on_partitions_assigned"


def _changelog(settings_app_id: str) -> str:
    return f"{settings_app_id}-correlations-changelog"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_mid_stream_then_restart_recovers_state_from_the_changelog(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A rocksdb worker killed with SIGKILL after half the lines, restarted on the
    same data dir, ends with every final incident of an uncrashed run and nothing
    but extra versions of incidents that run knows."""
    settings = isolated_settings(
        kafka_bootstrap, tmp_path, store="rocksdb", **FAST_GROUP
    )
    lines = all_lines()
    half = len(lines) // 2
    expected = reference(lines, settings)
    prepare_topics(settings)
    changelog = _changelog(settings.app_id)

    with workers() as group:
        first = group.start(settings, tmp_path / "first.log")
        send(settings, lines[:half])
        wait_for(
            lambda: bool(incident_records(settings))
            and end_offsets(kafka_bootstrap, [changelog])[changelog] > 0,
            timeout=90, worker=first, what="first incidents and changelog records",
        )
        first.kill()

        second = group.start(settings, tmp_path / "second.log")
        send(settings, lines[half:])
        wait_for(lambda: has_all_finals(settings, expected), timeout=180,
                 worker=second, what=f"{len(expected.finals)} final incidents")
        code = second.terminate()

    assert_same_as_reference(incident_records(settings), expected)
    assert max(indexed_after_assignment(second.log_path), default=0) > 0, (
        "the restarted worker found no correlation state to resume"
    )
    assert code == 0, second.log_tail()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_surviving_worker_of_a_group_takes_over_a_killed_ones_partitions(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Of two workers sharing the load, one killed mid-stream leaves its partitions
    to the other, which restores their state and finishes every incident."""
    base = isolated_settings(kafka_bootstrap, tmp_path, store="rocksdb", **FAST_GROUP)
    first_settings = base.model_copy(update={"data_dir": tmp_path / "first-data"})
    second_settings = base.model_copy(update={"data_dir": tmp_path / "second-data"})
    lines = all_lines()
    half = len(lines) // 2
    expected = reference(lines, base)
    prepare_topics(base)

    with workers() as group:
        survivor = group.start(first_settings, tmp_path / "survivor.log")
        wait_for(lambda: log_count(survivor.log_path, "Worker ready") >= 1,
                 timeout=60, worker=survivor, what="the first worker to start")
        doomed = group.start(second_settings, tmp_path / "doomed.log")
        wait_for(
            lambda: log_count(doomed.log_path, ASSIGNED) >= 1
            and log_count(survivor.log_path, ASSIGNED) >= 2,
            timeout=60, worker=doomed, what="both workers to share the partitions",
        )

        send(base, lines[:half])
        wait_for(lambda: bool(incident_records(base)), timeout=90, worker=doomed,
                 what="first incidents")
        doomed.kill()
        wait_for(lambda: log_count(survivor.log_path, ASSIGNED) >= 3, timeout=60,
                 worker=survivor, what="the survivor to take the partitions over")

        send(base, lines[half:])
        wait_for(lambda: has_all_finals(base, expected), timeout=180,
                 worker=survivor, what=f"{len(expected.finals)} final incidents")
        code = survivor.terminate()

    assert indexed_after_assignment(doomed.log_path), "the killed worker did no work"
    assert_same_as_reference(incident_records(base), expected)
    assert code == 0, survivor.log_tail()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_commits_and_flushes_so_a_restart_repeats_little(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """SIGTERM mid-stream makes the worker exit 0 with its input offsets committed
    and its output on the topic; a restart with the same app id loses nothing and
    repeats at most a few versions."""
    settings = isolated_settings(
        kafka_bootstrap, tmp_path, store="rocksdb", **FAST_GROUP
    )
    lines = all_lines()
    half = len(lines) // 2
    expected = reference(lines, settings)
    prepare_topics(settings)
    inputs = settings.input_topic_list

    with workers() as group:
        first = group.start(settings, tmp_path / "first.log")
        send(settings, lines[:half])
        wait_for(lambda: bool(incident_records(settings)), timeout=90, worker=first,
                 what="first incidents")
        stopping = time.monotonic()
        first_code = first.terminate()
        stop_seconds = time.monotonic() - stopping
        committed = committed_offsets(settings, inputs)

        second = group.start(settings, tmp_path / "second.log")
        send(settings, lines[half:])
        wait_for(lambda: has_all_finals(settings, expected), timeout=180,
                 worker=second, what=f"{len(expected.finals)} final incidents")
        second_code = second.terminate()

    assert first_code == 0, first.log_tail()
    assert stop_seconds < 30
    assert 0 < sum(committed.values()) <= half, committed

    records = incident_records(settings)
    assert_same_as_reference(records, expected)
    versions: dict[str, set[int]] = {}
    for record in records:
        versions.setdefault(record["incident_id"], set()).add(record["version"])
    gaps = {i: v for i, v in versions.items() if v != set(range(1, max(v) + 1))}
    assert not gaps, f"versions lost on the way out: {gaps}"
    assert repeated_versions(records) <= 3
    assert second_code == 0, second.log_tail()
