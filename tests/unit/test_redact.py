"""Secrets in log text are masked before anything leaves the worker."""

from __future__ import annotations

import time

import orjson
import pytest

from gpuaas_triage.classifiers.redact import MASK, redact_bytes, redact_text

SECRETS = [
    pytest.param("Authorization: Bearer tk_9Hq2LmN0pQ", "tk_9Hq2LmN0pQ", id="bearer"),
    pytest.param("proxy sent Basic c3ZjOmh1bnRlcjI=", "c3ZjOmh1bnRlcjI=", id="basic"),
    pytest.param(
        "cookie eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJlLXg seen",
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJlLXg",
        id="jwt",
    ),
    pytest.param("login failed: passwd=Tr0ub4dor&3", "Tr0ub4dor", id="passwd"),
    pytest.param("X-Api-Key: 5f0c9a2e71d4", "5f0c9a2e71d4", id="api_key_header"),
    pytest.param("refresh_token=rt.77aa.bb", "rt.77aa.bb", id="refresh_token"),
    pytest.param("amqp://relay:s3cretpw@mq.internal:5672/", "s3cretpw", id="url"),
    pytest.param("using AKIAZ3EXAMPLE7QWERTY now", "AKIAZ3EXAMPLE7QWERTY", id="aws"),
    pytest.param('{"db_password": "hunter2xx"}', "hunter2xx", id="prefixed_password"),
    pytest.param("GITLAB_TOKEN=glpat-x7Yq2", "glpat-x7Yq2", id="prefixed_token"),
    pytest.param("aws_secret_access_key=wJalr/K7MDENG", "wJalr/K7MDENG", id="aws_key"),
    pytest.param('{"authorization": "sk-9a8b7c6d"}', "sk-9a8b7c6d", id="authorization"),
    pytest.param("set-cookie: sid=8f2e41c0; Path=/", "8f2e41c0", id="cookie"),
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_secret_is_masked_in_text(text: str, secret: str) -> None:
    """Each kind of credential is replaced by the mask."""
    redacted = redact_text(text)

    assert secret not in redacted
    assert MASK in redacted


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_secret_is_masked_in_bytes(text: str, secret: str) -> None:
    """The bytes form masks the same credentials as the text form."""
    redacted = redact_bytes(text.encode())

    assert redacted.decode() == redact_text(text)
    assert secret.encode() not in redacted


def test_key_name_stays_readable() -> None:
    """The key before a secret is kept, so an engineer sees what was hidden."""
    redacted = redact_text("password=hunter22 user=ops")

    assert redacted == f"password={MASK} user=ops"


@pytest.mark.parametrize(
    "text",
    [
        "deploy finished; 0 tokens refreshed, token count 3",
        "tokens=3 passwords_rotated=2",
        "GET /v1/apps/instances?page=2 200",
        "dial tcp 10.0.0.7:443: connect: connection refused",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    """Ordinary log text, including words like token, passes through untouched."""
    redacted = redact_text(text)

    assert redacted == text


def test_redacted_json_stays_valid_json() -> None:
    """Masking secret values of a JSON line leaves a line that still parses."""
    raw = orjson.dumps({"access_token": "at-" + "x" * 30, "secret": "s-123", "n": 3})

    redacted = orjson.loads(redact_bytes(raw))

    assert redacted == {"access_token": MASK, "secret": MASK, "n": 3}


@pytest.mark.parametrize(
    "value",
    ["correct horse battery", "a,b;c&d}e", 'with \\"quoted\\" part'],
    ids=["spaces", "punctuation", "escaped_quote"],
)
def test_quoted_secret_is_masked_whole(value: str) -> None:
    """A quoted secret value is masked to its closing quote, leaking no tail."""
    raw = b'{"password": "' + value.encode() + b'", "level": "warn"}'

    redacted = redact_bytes(raw)

    assert orjson.loads(redacted) == {"password": MASK, "level": "warn"}


def test_single_quoted_secret_is_masked_whole() -> None:
    """A secret in a Python repr (as dead-letter details quote it) is masked whole."""
    text = "got {'client_secret': 'two words, one comma', 'svc': 'api'}"

    redacted = redact_text(text)

    assert redacted == f"got {{'client_secret': '{MASK}', 'svc': 'api'}}"


def test_bytes_that_are_not_utf8_are_redacted() -> None:
    """Redaction works on raw bytes that do not decode, keeping the other bytes."""
    raw = b"\xff\xfe token=abcd1234 \x80"

    redacted = redact_bytes(raw)

    assert redacted == b"\xff\xfe token=" + MASK.encode() + b" \x80"


def test_redaction_is_idempotent() -> None:
    """Redacting twice gives what redacting once gave."""
    text = 'Bearer abcdef123456 and {"api_key": "k 1,2"} and pwd=zz9zz'

    once = redact_text(text)

    assert redact_text(once) == once


@pytest.mark.parametrize(
    "line",
    [b"a-" * 32_768, b"v1.2." * 13_107, b"x://" * 16_384],
    ids=["dashed", "dotted", "schemes"],
)
def test_redaction_of_a_long_line_stays_linear(line: bytes) -> None:
    """A 64 KiB line of dashed or dotted words is redacted in well under a second,
    so one odd line cannot stall the worker."""
    started = time.perf_counter()

    redact_bytes(line)

    assert time.perf_counter() - started < 2.0
