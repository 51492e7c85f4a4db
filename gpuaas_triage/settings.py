"""All settings in one typed object, each read from its ``TRIAGE_*`` variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_INPUT_TOPICS = (
    "gpuaas-api-logs,gpuaas-outbox-relay-logs,gpuaas-app-runtime-worker-logs,"
    "gpuaas-app-adapter-logs,gpuaas-app-proxy-logs"
)


class Settings(BaseSettings):
    """Settings of the worker, the CLI and the local broker.

    Every field is read from the environment variable ``TRIAGE_<FIELD NAME>``.
    """

    model_config = SettingsConfigDict(env_prefix="TRIAGE_", frozen=True, extra="ignore")

    # Kafka ---------------------------------------------------------------
    bootstrap_servers: str = Field(
        default="",
        description="Kafka bootstrap servers, comma separated. Empty: the local "
        "broker that `triage broker start` runs (the embedded default).",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        Field(default="PLAINTEXT", description="How clients talk to the brokers.")
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism, with a SASL_* protocol."
    )
    sasl_username: str = Field(default="", description="SASL user; empty: no SASL.")
    sasl_password: SecretStr = Field(
        default=SecretStr(""), description="SASL password."
    )
    ssl_cafile: Path | None = Field(
        default=None, description="CA bundle for SSL/SASL_SSL; empty: system CAs."
    )
    app_id: str = Field(
        default="gpuaas-triage", description="Consumer group and prefix."
    )
    broker_session_timeout_seconds: float = Field(
        default=45.0,
        ge=6.0,
        le=90.0,
        description="A worker that stops heartbeating (killed, frozen, cut off) leaves "
        "the consumer group after this long, and its partitions move to the others. "
        "Within the broker's group.min/max.session.timeout.ms.",
    )
    broker_heartbeat_interval_seconds: float = Field(
        default=3.0,
        gt=0,
        description="How often a worker heartbeats to the group "
        "coordinator; at most a third of the session timeout.",
    )
    input_topics: str = Field(
        default=DEFAULT_INPUT_TOPICS,
        description="Comma-separated log topics to consume; one per service, or one "
        "shared topic (the service is then read from each line).",
    )
    input_keyed_by_correlation_id: bool = Field(
        default=False,
        description="True when producers already key log lines by correlation_id: the "
        "repartition step is then skipped.",
    )
    incidents_topic: str = Field(default="gpuaas-triage-incidents")
    escalations_topic: str = Field(default="gpuaas-triage-escalations")
    dead_letter_topic: str = Field(default="gpuaas-triage-dead-letters")
    partitions: int = Field(
        default=4, ge=1, description="Partitions of the topics it creates."
    )
    replication_factor: int = Field(default=1, ge=1)
    store: Literal["rocksdb", "memory"] = Field(
        default="rocksdb", description="Table store; rocksdb in production."
    )
    data_dir: Path = Field(
        default=Path(".triage/worker"), description="Worker state dir."
    )
    web_port: int = Field(default=6066, description="Faust web port (metrics, health).")
    web_enabled: bool = Field(default=False)
    idle_source_seconds: float = Field(
        default=5.0,
        ge=0,
        description="An input partition silent this long (wall "
        "time) stops holding event time back: its time moves with the wall clock.",
    )
    tick_seconds: float = Field(
        default=1.0, gt=0, description="How often idle correlations are re-examined."
    )

    # Event time -------------------------------------------------------------
    quiet_gap_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A correlation closes after this much event time with no new line.",
    )
    allowed_lateness_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How far behind the newest line a line may "
        "arrive and still count before closing decisions.",
    )
    lineage_deadline_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Event time a lifecycle action may take to "
        "reach the next hop (API -> outbox relay -> runtime worker).",
    )
    closed_retention_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How long a closed correlation is kept so a "
        "late line reopens it as a new version of the same incident.",
    )

    # Bounds ------------------------------------------------------------------
    max_line_bytes: int = Field(default=1_048_576, gt=0)
    max_lines_per_correlation: int = Field(default=200, gt=0)
    max_open_correlations: int = Field(default=200_000, gt=0)

    # Escalations -------------------------------------------------------------
    escalation_min_orgs: int = Field(default=3, ge=1)
    escalation_min_projects: int = Field(
        default=3,
        ge=1,
        description="Projects of one org on a tenant_dedicated plane "
        "that make a tenant-wide escalation.",
    )
    escalation_window_seconds: float = Field(default=600.0, gt=0)
    escalation_quiet_seconds: float = Field(
        default=600.0,
        gt=0,
        description="An escalation resolves after this much event "
        "time without a new incident of its shape.",
    )
    primitive_gap_min_incidents: int = Field(default=2, ge=1)

    # Evidence links ----------------------------------------------------------
    trace_url_template: str = Field(
        default="https://grafana.example.internal/explore?traceId={trace_id}",
        description="Link to a trace in Tempo; {trace_id} is filled in.",
    )

    # Local broker -------------------------------------------------------------
    broker_home: Path = Field(
        default=Path.home() / ".cache" / "gpuaas-triage",
        description="Where the local broker's jars, config, data and log live.",
    )
    broker_port: int = Field(default=39092, description="Local broker's client port.")
    broker_controller_port: int = Field(default=39093)
    kafka_version: str = Field(default="3.9.1")

    @model_validator(mode="after")
    def _heartbeat_within_session(self) -> Settings:
        heartbeat = self.broker_heartbeat_interval_seconds
        session = self.broker_session_timeout_seconds
        if heartbeat * 3 > session:
            raise ValueError(
                f"TRIAGE_BROKER_HEARTBEAT_INTERVAL_SECONDS={heartbeat:g} is more than "
                f"a third of TRIAGE_BROKER_SESSION_TIMEOUT_SECONDS={session:g}, so one "
                "late heartbeat can drop a healthy worker; lower the interval"
            )
        return self

    @property
    def input_topic_list(self) -> list[str]:
        return [t.strip() for t in self.input_topics.split(",") if t.strip()]

    @property
    def local_bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def effective_bootstrap(self) -> str:
        return self.bootstrap_servers or self.local_bootstrap


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``TRIAGE_*`` variables that recreate ``settings`` in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"TRIAGE_{name.upper()}"] = str(value)
    return env
