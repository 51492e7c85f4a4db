"""The public scenario cases through the in-memory Pipeline, and `triage replay`."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from factories import accepted, at, log_line, relay, to_raw

from gpuaas_triage.classifiers.pipeline import Pipeline, latest
from gpuaas_triage.schemas.events import EscalationEvent, IncidentEvent
from gpuaas_triage.schemas.source import file_ref

REPO = Path(__file__).resolve().parents[2]
CASES_PATH = REPO.parent / "shared" / "cases" / "public.jsonl"
TRIAGE = Path(sys.executable).parent / "triage"


def _load_cases() -> list[Any]:
    if not CASES_PATH.is_file():
        return [pytest.param(None, id="public-cases-missing")]
    lines = CASES_PATH.read_bytes().splitlines()
    cases = [orjson.loads(line) for line in lines if line]
    return [pytest.param(case, id=case["id"]) for case in cases]


def _run(case: dict[str, Any]) -> list[IncidentEvent | EscalationEvent]:
    pipeline = Pipeline()
    outputs: list[Any] = []
    for number, event in enumerate(case["events"], start=1):
        raw = orjson.dumps(event)
        outputs.extend(pipeline.feed_raw(raw, file_ref(case["id"], number)))
    outputs.extend(pipeline.finish())
    return list(latest(outputs))


def _failed(incident: IncidentEvent) -> set[str]:
    return {f.id for f in incident.checks if f.status == "failed"}


def _accepts(value: Any, want: Any) -> bool:
    return value in want if isinstance(want, list) else bool(value == want)


@pytest.mark.parametrize("case", _load_cases())
def test_public_case(case: dict[str, Any] | None) -> None:
    """Each public scenario gives the incidents, checks and escalations it expects,
    and no other incident."""
    if case is None:
        pytest.fail(
            f"public scenario cases not found at {CASES_PATH}: the repository expects "
            "the shared folder beside it (../shared/cases/public.jsonl)"
        )
    expected = case["expected"]

    outputs = _run(case)

    found = [o for o in outputs if isinstance(o, IncidentEvent)]
    left = list(found)
    for want in expected.get("incidents", []):
        match = next(
            (
                inc for inc in left
                if inc.correlation_id == want["correlation_id"]
                and _accepts(inc.failure_class, want["failure_class"])
            ),
            None,
        )
        got = [(i.correlation_id, i.failure_class, i.category) for i in found]
        assert match is not None, f"no {want} among {got}"
        left.remove(match)
        if "category" in want:
            assert _accepts(match.category, want["category"]), (want, match.category)
        assert set(want.get("checks_failed", [])) <= _failed(match)
        if "escalate" in want:
            assert match.escalate is want["escalate"]
    assert left == [], f"unexpected incidents: {[i.correlation_id for i in left]}"

    for check in expected.get("forbidden_checks", []):
        assert all(check not in _failed(i) for i in found), check
    for check in expected.get("checks_anywhere", []):
        assert any(check in _failed(i) for i in found), check

    published = [o for o in outputs if isinstance(o, EscalationEvent)]
    for want in expected.get("escalations", []):
        assert any(
            esc.shape.failure_class == want["failure_class"]
            and esc.distinct_orgs >= want.get("min_distinct_orgs", 0)
            and esc.shape.operating_mode == want.get(
                "operating_mode", esc.shape.operating_mode
            )
            for esc in published
        ), f"no escalation like {want} among {published}"


def test_replay_writes_dead_letters(tmp_path: Path) -> None:
    """`triage replay --dead-letter F` prints incidents and writes each line it could
    not use to F, with its reason, source and bytes."""
    assert TRIAGE.is_file(), f"no triage entry point at {TRIAGE}; pip install -e ."
    bad_json = b'{"correlation_id": "req-half", "ts": '
    no_ts = to_raw(log_line(ts=None, correlation_id="req-no-ts"))
    logs = tmp_path / "exported.jsonl"
    logs.write_bytes(
        b"\n".join(
            [
                to_raw(accepted(0, correlation_id="req-cli-1")),
                bad_json,
                to_raw(relay(2, "failed", level="error", correlation_id="req-cli-1")),
                no_ts,
                b"",
            ]
        )
    )
    letters = tmp_path / "dead.jsonl"

    result = subprocess.run(
        [str(TRIAGE), "replay", str(logs), "--dead-letter", str(letters)],
        capture_output=True, check=False, timeout=60, cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr.decode()
    printed = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [(p["type"], p["correlation_id"]) for p in printed] == [
        ("incident", "req-cli-1")
    ]
    dead = [orjson.loads(line) for line in letters.read_bytes().splitlines()]
    assert [(d["reason"], d["source"]) for d in dead] == [
        ("invalid_json", {"file": str(logs), "line": 2}),
        ("missing_timestamp", {"file": str(logs), "line": 4}),
    ]
    assert base64.b64decode(dead[0]["raw_base64"]) == bad_json
    assert base64.b64decode(dead[1]["raw_base64"]) == no_ts


def test_replay_prints_the_final_version_only(tmp_path: Path) -> None:
    """`triage replay` prints one line per incident: its final version."""
    assert TRIAGE.is_file(), f"no triage entry point at {TRIAGE}; pip install -e ."
    logs = tmp_path / "api.jsonl"
    logs.write_bytes(
        to_raw(log_line(0, level="error", http_status=503)) + b"\n"
        + to_raw(log_line(1, level="error", http_status=403, authz_decision="deny"))
        + b"\n"
    )

    result = subprocess.run(
        [str(TRIAGE), "replay", str(logs)],
        capture_output=True, check=False, timeout=60, cwd=tmp_path,
    )

    printed = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, result.stderr.decode()
    assert len(printed) == 1
    assert (printed[0]["final"], printed[0]["failure_class"]) == (
        True,
        "insufficient_permissions",
    )
    assert printed[0]["first_seen"] == at(0).replace("Z", "+00:00")
