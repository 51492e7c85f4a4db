"""``triage replay``: the core over JSON-lines files, no broker."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import orjson

from gpuaas_triage.classifiers.pipeline import Output, Pipeline, latest
from gpuaas_triage.schemas.dead_letter import DeadLetter
from gpuaas_triage.schemas.source import file_ref
from gpuaas_triage.settings import Settings

logger = logging.getLogger(__name__)


def read_lines(paths: Iterable[str]) -> Iterator[tuple[bytes, str, int]]:
    """Raw lines with file name and 1-based line number; ``-`` reads stdin."""
    for path in paths:
        stream: BinaryIO
        if path == "-":
            stream, name = sys.stdin.buffer, "<stdin>"
        else:
            stream, name = Path(path).open("rb"), path  # noqa: SIM115  # closed below
        try:
            for number, raw in enumerate(stream, start=1):
                stripped = raw.rstrip(b"\r\n")
                if stripped.strip():
                    yield stripped, name, number
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()


def replay(
    paths: Iterable[str], settings: Settings
) -> tuple[list[Output], list[DeadLetter]]:
    pipeline = Pipeline.from_settings(settings)
    outputs: list[Output] = []
    for raw, name, number in read_lines(paths):
        outputs.extend(pipeline.feed_raw(raw, file_ref(name, number)))
    outputs.extend(pipeline.finish())
    dead = [o for o in outputs if isinstance(o, DeadLetter)]
    return outputs, dead


def run(paths: list[str], settings: Settings, dead_letter_path: str | None) -> int:
    outputs, dead = replay(paths, settings)
    write = sys.stdout.buffer.write
    for event in latest(outputs):
        write(orjson.dumps(event.model_dump(mode="json")) + b"\n")
    sys.stdout.flush()

    if dead:
        logger.warning(
            "%d line(s) could not be triaged and were dead-lettered%s",
            len(dead),
            f" to {dead_letter_path}"
            if dead_letter_path
            else " (pass --dead-letter FILE to keep them)",
        )
    if dead_letter_path:
        with open(dead_letter_path, "wb") as out:
            for record in dead:
                out.write(orjson.dumps(record.model_dump(mode="json")) + b"\n")
    return 0
