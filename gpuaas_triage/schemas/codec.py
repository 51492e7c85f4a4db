"""orjson as a Faust codec: events are plain JSON, for consumers in any language."""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs


class OrjsonCodec(codecs.Codec):
    """Encode dicts and lists with orjson; decode to plain Python objects."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


def register() -> None:
    """Make ``value_serializer="orjson"`` available to topics and tables."""
    codecs.register("orjson", OrjsonCodec())
