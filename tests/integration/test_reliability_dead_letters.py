"""Lines that cannot be triaged land on the dead-letter topic whole, with their
reason and where they came from, and the worker goes on with the rest."""

from __future__ import annotations

import base64
import re
import time
from itertools import zip_longest
from pathlib import Path
from typing import Any

import orjson
import pytest

from gpuaas_triage.schemas.dead_letter import RAW_KEEP_BYTES

from .cases import all_lines
from .harness import isolated_settings, prepare_topics, read_topic, send, wait_for
from .reliability import (
    assert_same_as_reference,
    has_all_finals,
    incident_records,
    read_raw,
    reference,
    workers,
)

MAX_LINE_BYTES = 2048
TS = "2026-11-20T10:00:00Z"
#: Extra bad lines, so that a per-line log would show.
BURST = 40
_REPORTED = re.compile(rb"(\d+) line\(s\) dead-lettered since the last report")


def bad_lines() -> dict[bytes, str]:
    """Each bad line and the reason it must be dead-lettered with."""
    api = {"service": "gpuaas-api", "level": "error"}
    bad = {
        b'{"ts": "2026-11-20T10:00:00Z", "correlation_id": "dl-json", "msg": oops}':
            "invalid_json",
        b'["a", "list", "is", "not", "a", "log", "line"]': "not_an_object",
        b"42": "not_an_object",
        orjson.dumps({**api, "ts": TS, "correlation_id": "dl-type",
                      "http_status": "five hundred"}): "wrong_type",
        orjson.dumps({**api, "ts": TS, "msg": "no id under any alias",
                      "trace_id": "0af7651916cd43dd8448eb211c80319c"}):
            "missing_correlation_id",
        orjson.dumps({**api, "ts": "the day before yesterday",
                      "correlation_id": "dl-ts"}): "bad_timestamp",
        orjson.dumps({**api, "ts": TS, "correlation_id": "dl-big",
                      "msg": "x" * 3 * MAX_LINE_BYTES}): "too_large",
        orjson.dumps({**api, "ts": TS, "correlation_id": "dl-huge",
                      "msg": "y" * 2 * RAW_KEEP_BYTES}): "too_large",
        b'{"ts": "2026-11-20T10:00:00Z", "correlation_id": "dl-utf8", '
        b'"msg": "\xff\xfe"}': "invalid_utf8",
    }
    for n in range(BURST):
        bad[b'{"correlation_id": "dl-burst-%d", ' % n] = "invalid_json"
    return bad


def interleave(valid: list[bytes], bad: list[bytes]) -> list[bytes]:
    """A bad line after every valid one, the rest of the longer list at the end."""
    mixed = [line for pair in zip_longest(valid, bad) for line in pair if line]
    assert len(mixed) == len(valid) + len(bad)
    return mixed


def _reported(log_path: Path) -> list[int]:
    text = log_path.read_bytes() if log_path.exists() else b""
    return [int(n) for n in _REPORTED.findall(text)]


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("keyed", [False, True], ids=["repartitioned", "pre-keyed"])
def test_bad_lines_are_dead_lettered_whole_and_the_stream_goes_on(
    kafka_bootstrap: str, tmp_path: Path, keyed: bool
) -> None:
    """Each kind of bad line lands once on the dead-letter topic with its reason, its
    bytes and its topic/partition/offset, the valid lines around them still give
    every incident, and the worker reports the count a few times, not per line."""
    settings = isolated_settings(
        kafka_bootstrap, tmp_path, max_line_bytes=MAX_LINE_BYTES,
        input_keyed_by_correlation_id=keyed,
    )
    bad = bad_lines()
    lines = interleave(all_lines(), list(bad))
    expected = reference(lines, settings)
    assert expected.dead_letters == len(bad)
    prepare_topics(settings)

    def dead_letters() -> list[dict[str, Any]]:
        return read_topic(kafka_bootstrap, settings.dead_letter_topic)

    with workers() as group:
        worker = group.start(settings, tmp_path / "worker.log")
        started = time.monotonic()
        send(settings, lines)
        wait_for(
            lambda: len(dead_letters()) >= len(bad)
            and has_all_finals(settings, expected),
            timeout=150, worker=worker, what="dead letters and final incidents",
        )
        # What the first report left unsaid is said by the worker's report timer.
        wait_for(lambda: sum(_reported(worker.log_path)) >= len(bad), timeout=30,
                 worker=worker, what="the dead-letter count in the worker log")
        elapsed = time.monotonic() - started
        code = worker.terminate()

    records = dead_letters()
    originals = {
        (r.topic, r.partition, r.offset): r.value
        for topic in settings.input_topic_list
        for r in read_raw(kafka_bootstrap, topic)
    }
    seen: list[bytes] = []
    for record in records:
        source = record["source"]
        raw = originals[(source["topic"], source["partition"], source["offset"])]
        assert raw in bad, f"a valid line was dead-lettered: {raw[:200]!r}"
        assert record["reason"] == bad[raw], record["detail"]
        assert base64.b64decode(record["raw_base64"]) == raw[:RAW_KEEP_BYTES]
        assert record["raw_size"] == len(raw)
        assert record["raw_truncated"] == (len(raw) > RAW_KEEP_BYTES)
        seen.append(raw)
    assert sorted(seen) == sorted(bad)
    assert any(record["raw_truncated"] for record in records)

    assert_same_as_reference(incident_records(settings), expected)

    reports = _reported(worker.log_path)
    assert sum(reports) == len(bad)
    assert len(reports) <= 2 + elapsed / 10, reports
    assert code == 0, worker.log_tail()
