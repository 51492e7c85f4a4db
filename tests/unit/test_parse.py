"""parse_line: raw bytes become a LogLine, or a DeadLetter with its reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from factories import ADAPTER, API, PROXY, RELAY, WORKER, at, log_line, to_raw

from gpuaas_triage.schemas.dead_letter import RAW_KEEP_BYTES, DeadLetter
from gpuaas_triage.schemas.log_line import LogLine
from gpuaas_triage.schemas.parse import parse_line, service_for_topic
from gpuaas_triage.schemas.source import SourceRef, file_ref, kafka_ref

SOURCE: SourceRef = kafka_ref("gpuaas-api-logs", 3, 81_442)
MAX_BYTES = 16_384


def parse(raw: bytes, topic_service: str | None = None) -> LogLine | DeadLetter:
    return parse_line(raw, SOURCE, max_bytes=MAX_BYTES, topic_service=topic_service)


def parsed(raw: bytes) -> LogLine:
    result = parse(raw)
    assert isinstance(result, LogLine), f"dead-lettered: {result}"
    return result


def dead(raw: bytes) -> DeadLetter:
    result = parse(raw)
    assert isinstance(result, DeadLetter), f"parsed: {result}"
    return result


# Aliases --------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["request_id", "requestId", "x-request-id"])
def test_request_id_stands_for_correlation_id(alias: str) -> None:
    """A request id under any of its spellings becomes the correlation_id."""
    line = log_line(correlation_id=None) | {alias: "rq-0a9f"}

    result = parsed(to_raw(line))

    assert result.correlation_id == "rq-0a9f"


@pytest.mark.parametrize("alias", ["timestamp", "@timestamp", "time"])
def test_timestamp_aliases_stand_for_ts(alias: str) -> None:
    """The event time is read from timestamp, @timestamp or time when ts is absent."""
    line = log_line(ts=None) | {alias: "2027-05-11T22:04:31.250+02:00"}

    result = parsed(to_raw(line))

    expected = datetime(2027, 5, 11, 20, 4, 31, 250_000, tzinfo=UTC)
    assert result.ts == expected


def test_message_severity_and_status_code_aliases() -> None:
    """message, severity and status_code fill msg, level and http_status."""
    line = log_line(msg=None, level=None) | {
        "message": "upstream timed out",
        "severity": "WARNING",
        "status_code": 504,
    }

    result = parsed(to_raw(line))

    assert (result.msg, result.level, result.http_status) == (
        "upstream timed out",
        "warn",
        504,
    )


@pytest.mark.parametrize(
    ("written", "level"),
    [("ERROR", "error"), ("fatal", "error"), ("Warning", "warn"), ("trace", "debug")],
)
def test_levels_are_normalised(written: str, level: str) -> None:
    """Severity words of other logging libraries map onto debug/info/warn/error."""
    result = parsed(to_raw(log_line(level=written)))

    assert result.level == level


# Types ----------------------------------------------------------------------


def test_numbers_sent_as_strings_are_numbers() -> None:
    """http_status, upstream_status and attempt sent as strings are read as ints."""
    line = log_line(http_status="502", upstream_status="503", attempt="4")

    result = parsed(to_raw(line))

    assert (result.http_status, result.upstream_status, result.attempt) == (502, 503, 4)


def test_booleans_sent_as_strings_are_booleans() -> None:
    """allowlisted and service_account_active accept "false"/"true"."""
    line = log_line(allowlisted="false", service_account_active="true")

    result = parsed(to_raw(line))

    assert (result.allowlisted, result.service_account_active) == (False, True)


def test_ids_sent_as_numbers_are_strings() -> None:
    """Numeric ids (org, project, correlation) are kept as their decimal text."""
    line = log_line(correlation_id=771_204, org_id=42, project_id=4201)

    result = parsed(to_raw(line))

    assert (result.correlation_id, result.org_id, result.project_id) == (
        "771204",
        "42",
        "4201",
    )


def test_numeric_error_code_is_kept_as_text() -> None:
    """An error code written as a number (a gRPC or HTTP code) is still evidence."""
    line = log_line(level="error", error_code=14, msg=None) | {"message": 503}

    result = parsed(to_raw(line))

    assert (result.error_code, result.msg) == ("14", "503")


def test_nulls_read_as_absent() -> None:
    """A field sent as null is absent: optional ones are None, others take defaults."""
    line = log_line(service=None, level=None) | {
        "service": None,
        "level": None,
        "org_id": None,
        "http_status": None,
        "allowlisted": None,
    }

    result = parsed(to_raw(line))

    assert (result.service, result.level) == ("unknown", "info")
    assert (result.org_id, result.http_status, result.allowlisted) == (None, None, None)


def test_a_null_correlation_id_gives_way_to_its_alias() -> None:
    """correlation_id: null next to a request_id uses the request_id."""
    line = log_line() | {"correlation_id": None, "request_id": "rq-31c"}

    result = parsed(to_raw(line))

    assert result.correlation_id == "rq-31c"


def test_blank_ids_are_absent() -> None:
    """An id that is only whitespace is treated as not sent."""
    line = log_line(project_id="  ", app_instance_id="")

    result = parsed(to_raw(line))

    assert (result.project_id, result.app_instance_id) == (None, None)


def test_unknown_fields_are_ignored() -> None:
    """Fields the model does not know, nested or not, do not stop a line."""
    line = log_line(
        pod="gpuaas-api-6f7d9", k8s={"node": "gpu-a100-17"}, tags=["canary", 3]
    )

    result = parsed(to_raw(line))

    assert result.correlation_id == line["correlation_id"]
    assert "pod" not in result.model_dump()


# Timestamps -----------------------------------------------------------------


def test_epoch_milliseconds_timestamp() -> None:
    """An integer timestamp in milliseconds is read as milliseconds."""
    moment = datetime(2027, 1, 9, 3, 0, 7, 125_000, tzinfo=UTC)
    line = log_line(ts=int(moment.timestamp() * 1000))

    result = parsed(to_raw(line))

    assert result.ts == moment


def test_epoch_seconds_timestamp() -> None:
    """A float timestamp in seconds is read as seconds, in UTC."""
    moment = datetime(2027, 1, 9, 3, 0, 7, 500_000, tzinfo=UTC)
    line = log_line(ts=moment.timestamp())

    result = parsed(to_raw(line))

    assert result.ts == moment
    assert result.ts.utcoffset() == timedelta(0)


def test_timestamp_without_zone_is_utc() -> None:
    """A naive timestamp is read as UTC, as Loki reads it."""
    line = log_line(ts="2027-01-09T03:00:07")

    result = parsed(to_raw(line))

    assert result.ts == datetime(2027, 1, 9, 3, 0, 7, tzinfo=UTC)


def test_timestamp_zone_is_kept() -> None:
    """A timestamp's own zone survives parsing; the instant is unchanged."""
    line = log_line(ts="2027-01-09T08:30:07-05:00")

    result = parsed(to_raw(line))

    assert result.ts.utcoffset() == timezone(timedelta(hours=-5)).utcoffset(None)
    assert result.t == datetime(2027, 1, 9, 13, 30, 7, tzinfo=UTC).timestamp()


# Services -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "service"),
    [
        ("prod.gpuaas-api-logs", API),
        ("gpuaas-outbox-relay-logs", RELAY),
        ("eu1-runtime-worker", WORKER),
        ("slurm-adapter-logs", ADAPTER),
        ("app-proxy-access", PROXY),
        ("platform-logs", None),
    ],
)
def test_service_named_by_topic(topic: str, service: str | None) -> None:
    """A per-service topic names its service; a shared topic names none."""
    found = service_for_topic(topic)

    assert found == service


def test_topic_service_fills_a_missing_service() -> None:
    """A line without a service takes the one its topic carries."""
    raw = to_raw(log_line(service=None))

    result = parse(raw, topic_service=RELAY)

    assert isinstance(result, LogLine)
    assert result.service == RELAY


def test_line_service_wins_over_topic_service() -> None:
    """A line that names its own service keeps it whatever the topic says."""
    raw = to_raw(log_line(service=WORKER))

    result = parse(raw, topic_service=RELAY)

    assert isinstance(result, LogLine)
    assert result.service == WORKER


# Dead letters ---------------------------------------------------------------

DEAD_LETTER_CASES = [
    pytest.param(b'{"msg": "caf\xe9"}', "invalid_utf8", id="invalid_utf8"),
    pytest.param(b'{"ts": "2027-01-01T00:00:00Z",', "invalid_json", id="invalid_json"),
    pytest.param(b'["req-1", "2027-01-01T00:00:00Z"]', "not_an_object", id="array"),
    pytest.param(b'"request failed"', "not_an_object", id="string"),
    pytest.param(b"404", "not_an_object", id="number"),
    pytest.param(
        to_raw(log_line(correlation_id=None)), "missing_correlation_id", id="no_corr"
    ),
    pytest.param(
        to_raw(log_line(correlation_id="   ")),
        "missing_correlation_id",
        id="blank_corr",
    ),
    pytest.param(to_raw(log_line(ts=None)), "missing_timestamp", id="no_ts"),
    pytest.param(
        to_raw(log_line(ts="last tuesday")), "bad_timestamp", id="ts_not_a_date"
    ),
    pytest.param(
        to_raw(log_line(ts="2027-02-30T10:00:00Z")),
        "bad_timestamp",
        id="ts_no_such_day",
    ),
    pytest.param(
        to_raw(log_line(token_expires_at="in an hour")), "bad_timestamp", id="expiry"
    ),
    pytest.param(to_raw(log_line(http_status="teapot")), "wrong_type", id="status"),
    pytest.param(to_raw(log_line(attempt=[1, 2])), "wrong_type", id="attempt_list"),
    pytest.param(to_raw(log_line(msg={"text": "x"})), "wrong_type", id="msg_object"),
]


@pytest.mark.parametrize(("raw", "reason"), DEAD_LETTER_CASES)
def test_dead_letter_reason(raw: bytes, reason: str) -> None:
    """Each kind of unusable line is dead-lettered with its own reason."""
    letter = dead(raw)

    assert letter.reason == reason
    assert letter.detail


def test_too_large_line_is_dead_lettered_before_decoding() -> None:
    """A line over max_bytes is too_large, even if it would also be invalid."""
    raw = b"\xff" + b"x" * MAX_BYTES

    letter = dead(raw)

    assert letter.reason == "too_large"
    assert str(MAX_BYTES) in letter.detail


@pytest.mark.parametrize(("raw", "reason"), DEAD_LETTER_CASES)
def test_dead_letter_keeps_original_bytes_and_source(raw: bytes, reason: str) -> None:
    """The original bytes (base64) and the source reference travel with the record."""
    letter = dead(raw)

    assert base64.b64decode(letter.raw_base64) == raw
    assert letter.source == SOURCE
    assert (letter.raw_size, letter.raw_truncated) == (len(raw), False)


def test_dead_letter_of_a_file_line_names_file_and_line() -> None:
    """A line read from a file is traced back to the file and its line number."""
    source = file_ref("exports/api-2027-03-02.jsonl", 1207)

    letter = parse_line(b"not json", source, max_bytes=MAX_BYTES)

    assert isinstance(letter, DeadLetter)
    assert letter.source == {"file": "exports/api-2027-03-02.jsonl", "line": 1207}


def test_dead_letter_keeps_text_only_when_utf8() -> None:
    """raw_text mirrors the bytes for UTF-8 input and is None otherwise."""
    text_letter = dead(b"{oops")
    binary_letter = dead(b"\x80\x81 binary")

    assert text_letter.raw_text == "{oops"
    assert binary_letter.raw_text is None


def test_huge_line_is_kept_truncated() -> None:
    """Past the keep limit the record holds the head of the line and says so."""
    raw = b'{"correlation_id": "' + b"a" * (2 * RAW_KEEP_BYTES) + b'"'

    letter = parse_line(raw, SOURCE, max_bytes=len(raw) - 1)

    assert isinstance(letter, DeadLetter)
    assert letter.raw_truncated
    assert letter.raw_size == len(raw)
    assert base64.b64decode(letter.raw_base64) == raw[:RAW_KEEP_BYTES]


SECRET_LINES = [
    pytest.param(
        log_line(ts="soon", msg="retry with Authorization: Bearer sk_live_8fQ2kLr91"),
        "sk_live_8fQ2kLr91",
        id="bearer_in_msg",
    ),
    pytest.param(
        log_line(correlation_id=None, client_secret="Zr4!qq-long-secret"),
        "Zr4!qq-long-secret",
        id="json_field",
    ),
    pytest.param(
        log_line(http_status="x", error="dial postgres://svc:Pa55w0rd@db:5432"),
        "Pa55w0rd",
        id="url_credentials",
    ),
]


@pytest.mark.parametrize(("line", "secret"), SECRET_LINES)
def test_dead_letter_redacts_secrets(line: dict[str, object], secret: str) -> None:
    """A secret in a dead-lettered line appears in none of the record's fields."""
    raw = to_raw(line)

    letter = dead(raw)

    record = orjson.dumps(letter.model_dump(mode="json")).decode()
    assert secret not in record
    assert secret.encode() not in base64.b64decode(letter.raw_base64)
    assert "[REDACTED]" in (letter.raw_text or "")


def test_dead_letter_detail_redacts_secrets_in_the_bad_value() -> None:
    """The detail quotes the bad value, but never a secret inside it."""
    raw = orjson.dumps({"ts": at(0), "api_key": "ak-9f8e7d6c5b4a", "svc": "x"})

    letter = dead(raw)

    assert letter.reason == "missing_correlation_id"
    assert "ak-9f8e7d6c5b4a" not in letter.detail


@pytest.mark.parametrize(
    "ts",
    [10**30, 1e20, -1e20, 2**62, 9_000_000_000_000_000],
    ids=["int_1e30", "float_1e20", "negative", "int_2e62", "year_287k"],
)
def test_epoch_out_of_range_is_a_bad_timestamp(ts: float) -> None:
    """An epoch number no calendar can hold is dead-lettered, never raised."""
    raw = b'{"correlation_id": "rq-1", "ts": ' + str(ts).encode() + b"}"

    letter = dead(raw)

    assert letter.reason == "bad_timestamp"


def test_timestamp_outside_the_utc_calendar_is_a_bad_timestamp() -> None:
    """A zoned time that falls past year 9999 in UTC is refused, not kept."""
    raw = to_raw(log_line(ts="9999-12-31T23:30:00-05:00"))

    letter = dead(raw)

    assert letter.reason == "bad_timestamp"
