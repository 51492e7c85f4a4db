"""The public scenario cases, read from the shared folder beside the repository."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

CASES_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "cases" / "public.jsonl"


def load_cases() -> list[dict[str, Any]]:
    if not CASES_PATH.is_file():
        raise FileNotFoundError(
            f"public scenario cases not found at {CASES_PATH}; the repository expects "
            "the shared folder beside it (../shared/cases/public.jsonl)"
        )
    return [orjson.loads(line) for line in CASES_PATH.read_bytes().splitlines() if line]


def all_lines() -> list[bytes]:
    """Every case's log lines, cases in file order, each case's lines in its order."""
    return [orjson.dumps(event) for case in load_cases() for event in case["events"]]
