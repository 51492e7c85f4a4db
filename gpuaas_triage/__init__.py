"""gpuaas-triage: app-platform failures classified from service logs, runbook-style."""

from __future__ import annotations

__version__ = "0.1.0"
