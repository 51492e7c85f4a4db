"""A single-node Kafka broker (KRaft) run from Maven jars, for machines without Docker.

Layout under the broker home: the jars of one Kafka release are shared by every port
(``kafka-<version>/libs``); storage, config, log and pidfile belong to one port
(``data-<port>``, ``broker-<port>.properties``, ``broker-<port>.log``,
``broker-<port>.pid``). Nothing happens on import.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from gpuaas_triage.errors import BrokerError, ConfigError
from gpuaas_triage.settings import Settings, get_settings

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("kafka")
JAVA_HEAP = "-Xmx768m"
MVN_TIMEOUT_SECONDS = 1800.0
PROBE_TIMEOUT_MS = 5000
TAIL_LINES = 30
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
JAVA_FIX = "install a Java 17+ runtime, e.g. apt-get install default-jre-headless"
MVN_FIX = "install Maven 3.6+, e.g. apt-get install maven"

T = TypeVar("T")

# The brokers this process spawned, by pid: any LocalBroker can then reap them, and
# dropping a LocalBroker does not warn that its broker still runs (it is meant to).
_spawned: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class BrokerStatus:
    """What is known about the local broker without talking Kafka to it."""

    running: bool
    pid: int | None
    bootstrap: str
    log_path: Path


class LocalBroker:
    """Assembles, starts and stops a loopback Kafka broker as a detached process.

    Built from the settings; ``home``, ``port``, ``controller_port``, ``version``
    and ``partitions`` override the matching ``broker_*`` settings (tests use them).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        home: Path | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        version: str | None = None,
        partitions: int | None = None,
    ) -> None:
        base = settings if settings is not None else get_settings()
        self.home = Path(home if home is not None else base.broker_home).expanduser()
        self.port = port if port is not None else base.broker_port
        self.controller_port = (
            controller_port
            if controller_port is not None
            else base.broker_controller_port
        )
        self.version = version if version is not None else base.kafka_version
        self.partitions = partitions if partitions is not None else base.partitions

        if self.port == self.controller_port:
            raise ConfigError(
                f"broker port and controller port are both {self.port}; set "
                "TRIAGE_BROKER_CONTROLLER_PORT to another free port"
            )

        self._log_offset = 0

    # Paths ---------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def kafka_dir(self) -> Path:
        return self.home / f"kafka-{self.version}"

    @property
    def libs_dir(self) -> Path:
        return self.kafka_dir / "libs"

    @property
    def data_dir(self) -> Path:
        return self.home / f"data-{self.port}"

    @property
    def config_path(self) -> Path:
        return self.home / f"broker-{self.port}.properties"

    @property
    def log_path(self) -> Path:
        return self.home / f"broker-{self.port}.log"

    @property
    def pid_path(self) -> Path:
        return self.home / f"broker-{self.port}.pid"

    # Public API ------------------------------------------------------------

    def assemble(self) -> Path:
        """Fetch the Kafka jars into ``kafka-<version>/libs`` once; return that dir."""
        _require("java", JAVA_FIX)
        if self._assembled():
            return self.libs_dir

        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.kafka_dir / ".lock"):
            if self._assembled():
                return self.libs_dir

            mvn = _require("mvn", MVN_FIX)
            self._run_maven(mvn)

        return self.libs_dir

    def start(self, timeout: float = 60.0) -> str:
        """Start the broker unless it runs; return its bootstrap once it answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.home / f"broker-{self.port}.lock"):
            pid = self._live_pid()
            spawned = pid is None
            if pid is None:
                self.assemble()
                self._write_config()
                self._format_storage()
                pid = self._spawn()
            else:
                logger.info(
                    "Broker already running on %s (pid %d); checking it answers",
                    self.bootstrap,
                    pid,
                )

        self._wait_until_answering(pid, timeout, spawned=spawned)
        return self.bootstrap

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout``; True if it ran."""
        pid = self._live_pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False

        logger.info(
            "Stopping broker on %s (pid %d); waiting up to %.0f s",
            self.bootstrap,
            pid,
            timeout,
        )
        _signal(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout):
            logger.warning(
                "Broker pid %d still runs after %.0f s; killing it", pid, timeout
            )
            _signal(pid, signal.SIGKILL)
            if not self._wait_exit(pid, 10.0):
                raise BrokerError(
                    f"broker pid {pid} survived SIGKILL; check it with `ps -p {pid}` "
                    "and end it by hand"
                )

        self.pid_path.unlink(missing_ok=True)
        logger.info("Broker on %s stopped", self.bootstrap)
        return True

    def status(self) -> BrokerStatus:
        """Whether the broker process of this port runs, from its pidfile."""
        pid = self._live_pid()
        return BrokerStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=self.bootstrap,
            log_path=self.log_path,
        )

    def is_running(self) -> bool:
        return self._live_pid() is not None

    # Steps of assemble and start --------------------------------------------

    def _assembled(self) -> bool:
        marker = self.kafka_dir / ".assembled"
        return marker.exists() and any(self.libs_dir.glob("*.jar"))

    def _run_maven(self, mvn: str) -> None:
        pom = self.kafka_dir / "pom.xml"
        shutil.copyfile(TEMPLATES / "pom.xml", pom)
        command = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={self.libs_dir}",
            "-DincludeScope=runtime",
            f"-Dkafka.version={self.version}",
        ]
        logger.info(
            "Fetching the jars of Kafka %s into %s with Maven; this happens once",
            self.version,
            self.libs_dir,
        )

        started = time.monotonic()
        try:
            done = subprocess.run(
                command,
                cwd=self.kafka_dir,
                capture_output=True,
                text=True,
                timeout=MVN_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                f"mvn did not fetch Kafka {self.version} within "
                f"{MVN_TIMEOUT_SECONDS:.0f} s; check that Maven reaches its "
                "repository (proxy in ~/.m2/settings.xml) and retry"
            ) from exc

        output = (done.stdout or "") + (done.stderr or "")
        if done.returncode != 0 or not any(self.libs_dir.glob("*.jar")):
            raise BrokerError(
                f"mvn could not fetch Kafka {self.version} (exit {done.returncode}); "
                "check that this release exists on Maven Central "
                "(TRIAGE_KAFKA_VERSION) and that Maven reaches it, then retry. "
                f"Last lines of mvn:\n{_last_lines(output)}"
            )

        jars = sum(1 for _ in self.libs_dir.glob("*.jar"))
        (self.kafka_dir / ".assembled").write_text(f"{jars} jars\n")
        logger.info(
            "Fetched %d jars of Kafka %s in %.1f s",
            jars,
            self.version,
            time.monotonic() - started,
        )

    def _write_config(self) -> None:
        template = Template((TEMPLATES / "server.properties").read_text())
        self.config_path.write_text(
            template.substitute(
                port=self.port,
                controller_port=self.controller_port,
                data_dir=self.data_dir,
                partitions=self.partitions,
            )
        )

    def _java(self, main_class: str, *args: str) -> list[str]:
        log4j = (TEMPLATES / "log4j.properties").resolve().as_uri()
        return [
            _require("java", JAVA_FIX),
            JAVA_HEAP,
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration={log4j}",
            "-cp",
            f"{self.libs_dir}/*",
            main_class,
            *args,
        ]

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return

        cluster_id = _new_cluster_id()
        logger.info(
            "Formatting broker storage %s with cluster id %s", self.data_dir, cluster_id
        )
        done = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                cluster_id,
                "-c",
                str(self.config_path),
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerError(
                f"formatting broker storage {self.data_dir} failed "
                f"(exit {done.returncode}); remove that folder and retry. "
                f"Last lines:\n{_last_lines(done.stdout + done.stderr)}"
            )

    def _spawn(self) -> int:
        for port in (self.port, self.controller_port):
            if not _port_free(port):
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is taken by another process; stop it "
                    "or choose free ports with TRIAGE_BROKER_PORT and "
                    "TRIAGE_BROKER_CONTROLLER_PORT"
                )

        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.config_path)),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        pid = process.pid
        _spawned[pid] = process
        self.pid_path.write_text(f"{pid}\n")
        logger.info(
            "Started broker pid %d on %s; log in %s", pid, self.bootstrap, self.log_path
        )
        return pid

    def _wait_until_answering(self, pid: int, timeout: float, *, spawned: bool) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self._alive(pid):
                self.pid_path.unlink(missing_ok=True)
                raise BrokerError(
                    f"the broker (pid {pid}) exited before answering on "
                    f"{self.bootstrap}; read {self.log_path} for the cause. "
                    f"Last lines:\n{self._log_tail()}"
                )

            if _port_open(self.port) and _run_coroutine(_answers(self.bootstrap)):
                logger.info("Broker answers on %s (pid %d)", self.bootstrap, pid)
                return

            if time.monotonic() >= deadline:
                break
            time.sleep(0.5)

        if spawned:
            self.stop(timeout=10.0)
        raise BrokerError(
            f"the broker (pid {pid}) did not answer on {self.bootstrap} within "
            f"{timeout:g} s; read {self.log_path}, or allow more time with "
            f"start(timeout=...). Last lines:\n{self._log_tail()}"
        )

    # Process bookkeeping ----------------------------------------------------

    def _live_pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

        if self._alive(pid):
            return pid
        logger.info("Removing stale pidfile %s: pid %d is gone", self.pid_path, pid)
        self.pid_path.unlink(missing_ok=True)
        return None

    def _alive(self, pid: int) -> bool:
        process = _spawned.get(pid)
        if process is not None:
            if process.poll() is None:
                return True
            del _spawned[pid]
            return False

        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            # Another user's process took the pid: ours runs as us.
            return False

        # A recycled pid must not pass for the broker; where /proc exists, the
        # command line tells (a zombie has an empty one).
        cmdline = Path(f"/proc/{pid}/cmdline")
        if not cmdline.parent.exists():
            return True
        try:
            args = cmdline.read_bytes()
        except OSError:
            return False
        return b"kafka.Kafka" in args and str(self.config_path).encode() in args

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def _log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return _last_lines(text)


def ensure_broker(settings: Settings | None = None) -> str:
    """The configured bootstrap servers, or the local broker's after starting it."""
    settings = settings if settings is not None else get_settings()
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    return LocalBroker(settings).start()


def _require(program: str, fix: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise BrokerError(
            f"`{program}` is not on PATH; the local broker needs it: {fix}"
        )
    return path


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an advisory lock so two processes do not assemble or spawn at once."""
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _signal(pid: int, signum: signal.Signals) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Kafka refuses ids that start with a dash (they read as a command-line flag).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # The JVM binds with SO_REUSEADDR too, so TIME_WAIT left by a stopped
        # broker does not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


async def _answers(bootstrap: str) -> bool:
    """True once the broker serves metadata that lists at least one broker."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=PROBE_TIMEOUT_MS
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
    except (TimeoutError, KafkaError, OSError) as exc:
        logger.debug("Broker on %s does not answer yet: %r", bootstrap, exc)
        return False
    finally:
        await admin.close()
    return bool(cluster.get("brokers"))


def _run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to the end from sync code, even under a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _last_lines(text: str, count: int = TAIL_LINES) -> str:
    """The end of a tool's output, without the colour codes Maven 3.8 still emits."""
    lines = ANSI_ESCAPE.sub("", text).strip().splitlines()
    return "\n".join(lines[-count:]) if lines else "(no output)"
