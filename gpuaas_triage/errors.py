"""The one root of the errors this project raises."""

from __future__ import annotations


class TriageError(Exception):
    """Base of every error raised by gpuaas-triage.

    ``retriable`` tells a caller whether trying the same thing again can succeed
    (a broker not up yet) or whether the input itself is at fault (dead-letter it).
    """

    retriable: bool = False


class ConfigError(TriageError):
    """A setting has a value the product cannot use; the message names the fix."""


class BrokerError(TriageError):
    """The local Kafka broker could not be assembled, started or reached."""

    retriable = True
