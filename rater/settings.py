"""The one settings object. Environment variables (RATER_*) are read here and nowhere else.

`Settings.from_env()` builds it; CLI options override fields with `settings.replace(...)`.
The same code runs against a production Kafka / Redis / ClickHouse by changing settings only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rater.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Secret(str):
    """A string that does not print itself (the PIN HMAC key)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('********')"


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the local stack's defaults."""

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:19092"
    topic_cdrs: str = "cdrs"
    topic_dlq: str = "cdrs.dlq"
    #: partition 0, offset 0 holds the incarnation UUID of the cdrs topic (docs/DESIGN.md section 3)
    topic_meta: str = "cdrs.meta"
    partitions: int = 4
    consumer_group: str = "rater"
    #: Tansu joins take about session_timeout / 2: keep it short locally
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1000
    # Redis
    redis_url: str = "redis://127.0.0.1:16379/0"
    #: comma-separated host:port seeds; when set, Redis Cluster is used instead of redis_url
    redis_cluster_nodes: str = ""
    # ClickHouse
    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = 19000
    clickhouse_http_port: int = 18123
    clickhouse_database: str = "rater"
    clickhouse_user: str = "default"
    clickhouse_password: Secret = field(default_factory=lambda: Secret(""))
    # pipeline
    batch_max_records: int = 5000
    batch_timeout_ms: int = 100
    workers: int = 1
    metrics_port: int = 9464
    # liveness (rater/pipeline/worker.py)
    #: a worker with lag that commits nothing for this long, while Redis, ClickHouse and Kafka
    #: answer, logs why and exits non-zero (a supervisor restarts it)
    stall_timeout_s: int = 60
    #: bound on every single request to the broker (commit, committed offsets, join, leave)
    broker_timeout_s: int = 15
    #: how long a revoke waits for the batch in flight to store and commit
    drain_timeout_s: int = 30
    #: SIGTERM / SIGINT: a worker is gone within this many seconds, committed or not
    shutdown_timeout_s: int = 8
    #: `rater run --workers N`: a worker that fails this many times in a row stops them all
    restart_max: int = 5
    #: first delay before restarting a failed worker; doubles per failure, up to 30 s
    restart_backoff_ms: int = 1000
    #: when stderr is not a terminal, `rater run` logs a progress line this often
    progress_interval_s: int = 10
    #: duplicates of (switch, cdr_id) are caught within this window
    dedup_window_s: int = 86_400
    # accounts
    pin_secret: Secret = field(default_factory=lambda: Secret("change-me-in-production"))
    pin_length: int = 4
    card_number_length: int = 12
    card_number_prefix: str = "8"
    pin_max_failures: int = 5
    pin_lock_s: int = 900
    reservation_ttl_s: int = 7200
    ani_threshold: str = "1.00"
    currency: str = "EUR"
    # local stack
    stack_dir: Path = PROJECT_ROOT / ".stack"
    # logs
    log_level: str = "INFO"
    log_format: str = "console"  # console | json
    # fault injection (tests only): SIGKILL the worker at a named point of a batch
    #: "" (off) | after_debit | after_store | before_commit; stall_before_commit waits forever
    #: (the event loop stays free), freeze_before_commit blocks the event loop
    fault_point: str = ""
    #: the batch (1-based, counted per process) at which the fault fires
    fault_after_batches: int = 1

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError(f"RATER_PARTITIONS must be >= 1, not {self.partitions}")
        if self.batch_max_records < 1:
            raise ConfigError("RATER_BATCH_MAX_RECORDS must be >= 1")
        if self.log_format not in ("console", "json"):
            raise ConfigError(f"RATER_LOG_FORMAT must be console or json, not {self.log_format!r}")

    # ------------------------------------------------------------------ building
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read RATER_<FIELD_NAME> for every field; unknown RATER_* names are an error."""
        env = os.environ if env is None else env
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in env.items():
            if not key.startswith("RATER_"):
                continue
            name = key[len("RATER_") :].lower()
            if name not in known:
                continue  # other tools share the prefix (RATER_TEST_*); ignore quietly
            values[name] = _convert(name, known[name].type, raw)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (CLI options); None values are ignored."""
        known = {f.name: f for f in dataclasses.fields(self)}
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            if value is None:
                continue
            if name not in known:
                raise ConfigError(f"unknown setting {name!r}")
            if isinstance(value, str) and known[name].type not in ("str",):
                clean[name] = _convert(name, known[name].type, value)
            else:
                clean[name] = value
        return dataclasses.replace(self, **clean)

    # ------------------------------------------------------------------ derived
    @property
    def kafka_port(self) -> int:
        """Port of the first bootstrap server (the local broker listens there)."""
        first = self.kafka_bootstrap.split(",")[0]
        return int(first.rsplit(":", 1)[1])

    @property
    def redis_port(self) -> int:
        return urlparse(self.redis_url).port or 6379

    @property
    def redis_db(self) -> int:
        path = urlparse(self.redis_url).path.strip("/")
        return int(path) if path else 0


def _convert(name: str, type_name: Any, raw: str) -> Any:
    kind = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", "")
    try:
        if kind == "int":
            return int(raw)
        if kind == "Path":
            return Path(raw).expanduser()
        if kind == "Secret":
            return Secret(raw)
    except ValueError:
        raise ConfigError(f"RATER_{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw


_cached: Settings | None = None


def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    global _cached  # noqa: PLW0603 - one process-wide settings object, by design
    if _cached is None:
        _cached = Settings.from_env()
    return _cached
