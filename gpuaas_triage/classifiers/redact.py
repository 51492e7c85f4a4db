"""Secrets found in log text are masked before anything leaves the worker."""

from __future__ import annotations

import re

MASK = "[REDACTED]"

# Each pattern keeps its group 1 (the key, the scheme, the word "Bearer") and masks
# the rest, so a redacted JSON line stays readable and, where it was, valid JSON.
# A key counts whatever word it ends (DB_PASSWORD, github_token, x-api-key).
_SECRET_KEYS = (
    r"[\"']?\b\w*?(?:password|passwd|pwd|secret|client_secret|api[_-]?key|apikey|"
    r"access[_-]?key|secret[_-]?key|private[_-]?key|auth[_-]?token|access[_-]?token|"
    r"refresh[_-]?token|token|authorization|cookie)[\"']?\s*[:=]\s*"
)

_PATTERNS = [
    r"(?i)\b((?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{6,}",
    r"()\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
    # A quoted value is masked to its closing quote: spaces, commas and escaped
    # quotes inside it are part of the secret.
    r"(?i)(" + _SECRET_KEYS + r'")(?:[^"\\]|\\.)+(?=")',
    r"(?i)(" + _SECRET_KEYS + r"')(?:[^'\\]|\\.)+(?=')",
    r"(?i)(" + _SECRET_KEYS + r"[\"']?)[^\s\"',;&}]{3,}",
    # Bounded runs: unbounded ones backtrack quadratically on long lines of
    # dotted or dashed words, stalling the worker on one bad line.
    r"(?i)\b([a-z][a-z0-9+.-]{0,31}://[^/\s:@]{1,256}:)[^@\s/]{1,256}(?=@)",
    r"()\bAKIA[0-9A-Z]{16}\b",
]

_TEXT_RE = [re.compile(p) for p in _PATTERNS]
_BYTES_RE = [re.compile(p.encode()) for p in _PATTERNS]
_MASK_BYTES = MASK.encode()


def redact_text(text: str) -> str:
    """Return ``text`` with bearer tokens, passwords, API keys and the like masked."""
    for pattern in _TEXT_RE:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


def redact_bytes(raw: bytes) -> bytes:
    """Mask secrets in raw bytes without decoding them (they may not be UTF-8)."""
    for pattern in _BYTES_RE:
        raw = pattern.sub(lambda m: m.group(1) + _MASK_BYTES, raw)
    return raw
