"""The record a line that cannot be triaged becomes, with its reason and bytes."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import BaseModel, ConfigDict

from gpuaas_triage.classifiers.redact import redact_bytes, redact_text
from gpuaas_triage.schemas.source import SourceRef

DeadLetterReason = Literal[
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "too_large",
    "missing_correlation_id",
    "missing_timestamp",
    "bad_timestamp",
    "wrong_type",
]

#: Bytes of the original line kept on the record; the size says how much there was.
RAW_KEEP_BYTES = 64 * 1024


class DeadLetter(BaseModel):
    """A log line the worker could not use, kept whole enough to fix and resend."""

    model_config = ConfigDict(frozen=True)

    type: Literal["dead_letter"] = "dead_letter"
    reason: DeadLetterReason
    detail: str
    source: SourceRef
    raw_size: int
    raw_truncated: bool
    raw_base64: str
    raw_text: str | None = None

    @classmethod
    def build(
        cls, reason: DeadLetterReason, detail: str, raw: bytes, source: SourceRef
    ) -> DeadLetter:
        kept = redact_bytes(raw[:RAW_KEEP_BYTES])
        try:
            text: str | None = kept.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return cls(
            reason=reason,
            detail=redact_text(detail)[:500],
            source=source,
            raw_size=len(raw),
            raw_truncated=len(raw) > RAW_KEEP_BYTES,
            raw_base64=base64.b64encode(kept).decode("ascii"),
            raw_text=text,
        )
