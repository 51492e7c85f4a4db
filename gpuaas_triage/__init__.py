"""gpuaas-triage: classify app-platform failures from service logs, as the runbook would."""

from __future__ import annotations

__version__ = "0.1.0"
