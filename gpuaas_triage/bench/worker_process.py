"""``triage worker`` as a child process of the bench, and what /proc says about it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from gpuaas_triage.settings import Settings, settings_env

logger = logging.getLogger(__name__)


class WorkerProcess:
    """One worker of the bench's own consumer group, its output in a log file."""

    def __init__(
        self, settings: Settings, log_path: Path, profile_path: Path | None = None
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        command = [sys.executable]
        if profile_path is not None:
            command += ["-m", "cProfile", "-o", str(profile_path)]
        command += ["-m", "gpuaas_triage.streams.cli", "worker"]
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env={**os.environ, **settings_env(settings)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        logger.info(
            "started worker pid %d (store %s); log %s",
            self.process.pid,
            settings.store,
            log_path,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def peak_rss_bytes(self) -> int | None:
        """VmHWM: the most resident memory the process has had, or None when gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for row in status.splitlines():
            if row.startswith("VmHWM:"):
                return int(row.split()[1]) * 1024
        return None

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time the process has used so far."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
        except OSError:
            return None
        # After the command name: state is field 3, utime and stime are 14 and 15.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then SIGKILL to its process group after ``timeout``."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            logger.warning(
                "worker pid %d ignored SIGTERM for %.0fs; killing it", self.pid, timeout
            )
            os.killpg(self.pid, signal.SIGKILL)
            return self.process.wait(timeout=30)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
