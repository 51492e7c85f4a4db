"""A broker that restarts mid-stream: the worker reconnects on its own, without
flooding, and every incident still ends as it should.

The test runs its own broker on other ports, so the session's broker and the
tests on it are not disturbed.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpuaas_triage.errors import BrokerError
from gpuaas_triage.settings import Settings
from gpuaas_triage.streams.broker import LocalBroker

from .cases import all_lines
from .harness import isolated_settings, prepare_topics, send, wait_for
from .reliability import (
    FAST_GROUP,
    assert_same_as_reference,
    has_all_finals,
    incident_records,
    reference,
    workers,
)

# Below the ephemeral range (32768-60999): a client retrying against the stopped
# broker can never self-connect on this port and keep the broker from restarting.
BROKER_PORT = 19292
CONTROLLER_PORT = 19293
OUTAGE_SECONDS = 5.0
#: Connection errors a worker may log per second of outage; without back-off
#: aiokafka logs thousands.
MAX_ERRORS_PER_SECOND = 20
_CONNECT_ERRORS = re.compile(rb"Unable connect to node|Unable to update metadata")


@pytest.fixture
def own_broker() -> Iterator[LocalBroker]:
    """A fresh broker of this test's own, stopped and wiped afterwards."""
    broker = LocalBroker(Settings(), port=BROKER_PORT, controller_port=CONTROLLER_PORT)
    if broker.is_running():
        # Maybe a run that was interrupted, maybe someone else's: not ours to stop.
        pytest.fail(
            f"a broker already runs on {broker.bootstrap} ({broker.pid_path}); this "
            f"test restarts a broker of its own there: stop that one with "
            f"`TRIAGE_BROKER_PORT={BROKER_PORT} "
            f"TRIAGE_BROKER_CONTROLLER_PORT={CONTROLLER_PORT} triage broker stop`"
        )
    shutil.rmtree(broker.data_dir, ignore_errors=True)
    try:
        broker.start(timeout=90)
    except BrokerError as exc:
        pytest.fail(f"the broker restart test needs its own broker: {exc}")
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(broker.data_dir, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_worker_reconnects_after_a_broker_restart_and_finishes_the_stream(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    """Stopping the broker after half the lines and starting it again leaves the
    worker running; it reconnects, takes the rest, and every final incident of an
    uncrashed run appears, while the outage costs a bounded number of log lines."""
    settings = isolated_settings(
        own_broker.bootstrap, tmp_path, store="rocksdb", **FAST_GROUP
    )
    lines = all_lines()
    half = len(lines) // 2
    expected = reference(lines, settings)
    prepare_topics(settings)

    with workers() as group:
        worker = group.start(settings, tmp_path / "worker.log")
        send(settings, lines[:half])
        wait_for(lambda: bool(incident_records(settings)), timeout=90, worker=worker,
                 what="first incidents")

        own_broker.stop()
        down = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        still_running = worker.alive()
        own_broker.start(timeout=90)
        outage = time.monotonic() - down

        send(settings, lines[half:])
        wait_for(lambda: has_all_finals(settings, expected), timeout=180,
                 worker=worker, what=f"{len(expected.finals)} final incidents")
        code = worker.terminate()

    assert still_running, worker.log_tail()
    assert_same_as_reference(incident_records(settings), expected)
    errors = len(_CONNECT_ERRORS.findall(worker.log_path.read_bytes()))
    assert errors <= MAX_ERRORS_PER_SECOND * outage, (errors, outage)
    assert code == 0, worker.log_tail()
