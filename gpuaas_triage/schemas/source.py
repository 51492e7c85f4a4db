"""Where a log line came from: a Kafka record or a line of a file."""

from __future__ import annotations

from typing_extensions import TypedDict


class SourceRef(TypedDict, total=False):
    """A reference an engineer can follow back to the original line."""

    topic: str
    partition: int
    offset: int
    file: str
    line: int


def kafka_ref(topic: str, partition: int, offset: int) -> SourceRef:
    return {"topic": topic, "partition": partition, "offset": offset}


def file_ref(file: str, line: int) -> SourceRef:
    return {"file": file, "line": line}


def describe(ref: SourceRef) -> str:
    """``topic[partition]@offset`` or ``file:line``, for log messages."""
    if "topic" in ref:
        return f"{ref['topic']}[{ref.get('partition')}]@{ref.get('offset')}"
    return f"{ref.get('file')}:{ref.get('line')}"
