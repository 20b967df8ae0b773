"""The one settings object. Environment variables (RATER_*) are read here and nowhere else.

`Settings.from_env()` builds it; CLI options override fields with `settings.replace(...)`.
The same code runs against a production Kafka / Redis / ClickHouse by changing settings only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from rater.clock import parse_instant
from rater.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: the PIN secret `rater stack up` writes into the local stack's state folder
STACK_PIN_SECRET = "pin-secret"
#: a shorter PIN secret is refused (HMAC-SHA256 keys of 32 bytes or more)
MIN_PIN_SECRET_BYTES = 32
#: billsec and duration are int32 columns; the kernel prices up to this (kernels/layout.py)
_BILLSEC_LIMIT = 2**31 - 1 - 1_000_000
#: room for a dead letter's headers and a part of the original record
_DLQ_MIN_BYTES = 4096


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str, *, what: str, example: str) -> tuple[Network, ...]:
    """'10.0.0.0/8,192.0.2.7,::1' ('' for none); ConfigError naming `what` and the bad entry."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(
                f"{what}: {part!r} is not an IP address or network (e.g. {example})"
            ) from None
    return tuple(out)


def _default_stack_dir() -> Path:
    """.stack/ in a source checkout (where `make demo` and `make test` run); installed from a
    wheel, PROJECT_ROOT is the environment's lib folder, so the per-user state folder instead:
    $XDG_STATE_HOME/rater/stack, by default ~/.local/state/rater/stack."""
    if (PROJECT_ROOT / "pyproject.toml").is_file():
        return PROJECT_ROOT / ".stack"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state).expanduser() / "rater" / "stack"


class Secret(str):
    """A string that does not print itself (a password, the PIN HMAC key)."""

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
    #: the store gathers prepared batches into one insert of at least this many rows, or of
    #: what came within insert_wait_ms of the first (rater/pipeline/checkpoint.py)
    insert_rows: int = 20_000
    insert_wait_ms: int = 250
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
    #: the rater HTTP API (18080 on the local stack; `rater stack status` shows it)
    http_port: int = 18080
    #: duplicates of (switch, cdr_id) are caught within this window, measured on the CDR's end
    #: time: a CDR that ended longer ago is late (docs/DESIGN.md section 4)
    dedup_window_s: int = 86_400
    #: a CDR ending more than this far in the future is invalid: its de-duplication record
    #: would expire before the CDR could be sent again (docs/DESIGN.md section 4)
    future_skew_s: int = 600
    #: longest billsec a CDR may carry; longer is invalid (dead letter). Switches cap calls at
    #: hours; a day is a broken counter or clock more often than a call
    max_billsec: int = 86_400
    #: highest price (and cost) of one CDR, micro-units; a CDR priced above it is stored
    #: unrated, nothing charged. 10^12 (1,000,000 currency units) keeps every sum exact: a
    #: batch's per-account sum in Lua (doubles, exact to 2^53 = 9.0e15) is at most
    #: batch_max_records x 10^12 = 5.0e15 with the default 5,000 (checked below), and an int64
    #: balance or ClickHouse Int64 sum holds 9.2 million such calls
    max_price_micro: int = 10**12
    #: largest dead-letter record, bytes (Kafka's and the local broker's message.max.bytes is
    #: 1,048,588); an original record too large for it is kept truncated, with its length and
    #: SHA-256 in headers
    dlq_max_message_bytes: int = 1_000_000
    #: "" (the system clock) or the instant the clock starts at (ISO 8601 or epoch seconds), for
    #: tests and demos of CDRs with fixed dates (rater/clock.py)
    clock_start: str = ""
    #: Redis data loss (rater/billing/recovery.py): how often a worker compares its partitions'
    #: watermarks with what ClickHouse stored, and how far back ledgered balance changes and
    #: re-rating corrections are re-applied by id (a loss older than this is reported only)
    recovery_check_s: int = 60
    recovery_horizon_s: int = 7 * 86_400
    # accounts: PIN keys (docs/REDIS_KEYS.md, "PIN keys"). There is no default secret: PINs
    # are 4 digits, so anyone holding the key and a Redis dump tries all 10^4 per card.
    #: the current HMAC key of PINs, 32 bytes or more; or pin_secret_file, a file holding it
    pin_secret: Secret = field(default_factory=lambda: Secret(""))
    pin_secret_file: str = ""
    #: earlier keys, still accepted (whitespace-separated; or one per line in the file)
    pin_secrets_old: Secret = field(default_factory=lambda: Secret(""))
    pin_secrets_old_file: str = ""
    pin_length: int = 4
    card_number_length: int = 12
    card_number_prefix: str = "8"
    #: wrong PINs per card before each lock; failures count until a right PIN
    pin_max_failures: int = 5
    #: lock lengths (s) after each round of pin_max_failures wrong PINs; one round more
    #: blocks the card until `rater card unblock`
    pin_lock_schedule_s: str = "900,3600,86400"
    #: wrong PINs per caller number (on any card) before each lock; same schedule, the
    #: last lock repeating
    pin_caller_max_failures: int = 10
    #: wrong PINs per switch per minute answered at full speed; each one more adds
    #: pin_switch_delay_ms to that switch's PIN answers, up to pin_switch_max_delay_ms
    pin_switch_free_failures: int = 30
    pin_switch_delay_ms: int = 100
    pin_switch_max_delay_ms: int = 2000
    #: a reservation lives this long from the server's now; renewals extend it
    reservation_ttl_s: int = 7200
    #: ringing allowed between authorization and answer: granted seconds are at most
    #: reservation_ttl_s - reservation_ring_s (the switch counts from the answer)
    reservation_ring_s: int = 120
    #: simultaneous authorized calls per card and per customer account
    max_calls_per_card: int = 1
    max_calls_per_account: int = 50
    ani_threshold: str = "1.00"
    currency: str = "EUR"
    # HTTP service for switches (`rater serve`, rater/serve/); http_port is above
    http_host: str = "127.0.0.1"
    http_workers: int = 1
    #: largest request body accepted (413 above); an authorization is well under 1 KiB
    http_max_body_bytes: int = 65_536
    #: a client must send its request head, and then its body, within these (slow clients)
    http_header_timeout_s: int = 5
    http_body_timeout_s: int = 5
    http_keepalive_s: int = 5
    #: on SIGTERM, in-flight requests get this long to finish
    http_shutdown_timeout_s: int = 10
    #: TLS by the service itself (both set), or "" behind a TLS-terminating proxy
    http_tls_certfile: str = ""
    http_tls_keyfile: str = ""
    #: comma-separated proxy addresses whose X-Forwarded-For is believed ("" none)
    http_trusted_proxies: str = ""
    #: where worker processes keep their Prometheus samples (set by `rater serve`)
    http_metrics_dir: str = ""
    #: comma-separated addresses or networks that read /metrics without a token ("" none:
    #: a token of any switch is needed; docs/SERVE.md)
    http_metrics_allow: str = ""
    # reseller portal (`rater serve`, /portal; rater/portal/, docs/PORTAL.md)
    #: a session cookie's lifetime, from the login
    portal_session_s: int = 28_800
    #: failed logins per reseller id, and per client address (x4), within the window
    portal_login_failures: int = 5
    portal_login_window_s: int = 900
    #: largest upload (a rate deck) and largest form
    portal_max_upload_bytes: int = 20_971_520
    #: card counts (coverage, ANI alerts) are recounted in the background when this old
    portal_census_s: int = 30
    # local stack
    stack_dir: Path = field(default_factory=_default_stack_dir)
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
        if self.insert_rows < 1 or self.insert_wait_ms < 0:
            raise ConfigError("RATER_INSERT_ROWS must be >= 1 and RATER_INSERT_WAIT_MS >= 0")
        if self.dedup_window_s < 1 or self.future_skew_s < 0:
            raise ConfigError("RATER_DEDUP_WINDOW_S must be >= 1 and RATER_FUTURE_SKEW_S >= 0")
        if not 1 <= self.max_billsec <= _BILLSEC_LIMIT:
            raise ConfigError(f"RATER_MAX_BILLSEC must be 1..{_BILLSEC_LIMIT}")
        if self.max_price_micro < 1 or self.batch_max_records * self.max_price_micro > 2**53:
            raise ConfigError(
                "RATER_MAX_PRICE_MICRO must be >= 1, and RATER_BATCH_MAX_RECORDS x "
                f"RATER_MAX_PRICE_MICRO at most 2^53 (a batch's sums in Lua are doubles), not "
                f"{self.batch_max_records} x {self.max_price_micro}"
            )
        if self.dlq_max_message_bytes < _DLQ_MIN_BYTES:
            raise ConfigError(f"RATER_DLQ_MAX_MESSAGE_BYTES must be >= {_DLQ_MIN_BYTES}")
        if self.clock_start:
            parse_instant(self.clock_start)
        if self.log_format not in ("console", "json"):
            raise ConfigError(f"RATER_LOG_FORMAT must be console or json, not {self.log_format!r}")
        self._check_accounts()
        if not 0 < self.http_port < 65536 or self.http_workers < 1:
            raise ConfigError("RATER_HTTP_PORT must be 1-65535 and RATER_HTTP_WORKERS >= 1")
        if bool(self.http_tls_certfile) != bool(self.http_tls_keyfile):
            raise ConfigError("RATER_HTTP_TLS_CERTFILE and RATER_HTTP_TLS_KEYFILE go together")
        _ = self.http_metrics_networks  # parsed once here so a bad value fails at start

    def _check_accounts(self) -> None:
        for name in (
            "pin_max_failures", "pin_caller_max_failures", "max_calls_per_card",
            "max_calls_per_account", "reservation_ttl_s",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(f"RATER_{name.upper()} must be >= 1, not {getattr(self, name)}")
        for name in (
            "reservation_ring_s", "pin_switch_free_failures", "pin_switch_delay_ms",
            "pin_switch_max_delay_ms",
        ):  # fmt: skip
            if getattr(self, name) < 0:
                raise ConfigError(f"RATER_{name.upper()} must be >= 0, not {getattr(self, name)}")
        if self.reservation_ring_s >= self.reservation_ttl_s:
            raise ConfigError(
                f"RATER_RESERVATION_RING_S ({self.reservation_ring_s}) must be less than "
                f"RATER_RESERVATION_TTL_S ({self.reservation_ttl_s}): no second would be left "
                "to grant"
            )
        _ = self.pin_lock_schedule  # parsed once here so a bad value fails at start

    @property
    def http_metrics_networks(self) -> tuple[Network, ...]:
        """http_metrics_allow parsed; ConfigError naming a bad entry."""
        return parse_networks(
            self.http_metrics_allow, what="RATER_HTTP_METRICS_ALLOW", example="10.0.0.0/8"
        )

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

    @staticmethod
    def in_env(name: str, env: Mapping[str, str] | None = None) -> bool:
        """Whether RATER_<NAME> is set: where a command has its own default for a field (the
        CLI logs at WARNING unless RATER_LOG_LEVEL says otherwise, README.md)."""
        env = os.environ if env is None else env
        return f"RATER_{name.upper()}" in env

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

    @property
    def pin_lock_schedule(self) -> tuple[int, ...]:
        """The lock lengths of pin_lock_schedule_s, in seconds."""
        try:
            steps = tuple(int(part) for part in self.pin_lock_schedule_s.split(","))
        except ValueError:
            steps = ()
        if not steps or min(steps) < 1:
            raise ConfigError(
                f"RATER_PIN_LOCK_SCHEDULE_S={self.pin_lock_schedule_s!r} must be lock lengths "
                "in seconds, e.g. 900,3600,86400"
            )
        return steps

    # ------------------------------------------------------------------ PIN secrets
    def pin_secret_value(self) -> tuple[Secret, str]:
        """The current PIN secret and where it came from: RATER_PIN_SECRET, else the file
        RATER_PIN_SECRET_FILE names, else the local stack's (`rater stack up` writes
        <stack_dir>/pin-secret). ConfigError, one line naming the variable, when there is
        none or it is shorter than MIN_PIN_SECRET_BYTES."""
        if self.pin_secret and self.pin_secret_file:
            raise ConfigError("set RATER_PIN_SECRET or RATER_PIN_SECRET_FILE, not both")
        if self.pin_secret:
            secret, source = self.pin_secret, "RATER_PIN_SECRET"
        elif self.pin_secret_file:
            path = Path(self.pin_secret_file).expanduser()
            secret, source = (
                _read_secret(path, "RATER_PIN_SECRET_FILE"),
                f"RATER_PIN_SECRET_FILE ({path})",
            )
        elif (self.stack_dir / STACK_PIN_SECRET).is_file():
            path = self.stack_dir / STACK_PIN_SECRET
            secret, source = _read_secret(path, "the local stack's"), f"the local stack ({path})"
        else:
            raise ConfigError(
                "RATER_PIN_SECRET is not set: PINs cannot be hashed or checked without it "
                f"(set it, or RATER_PIN_SECRET_FILE, to {MIN_PIN_SECRET_BYTES} or more random "
                "bytes; `rater stack up` makes one for the local stack)"
            )
        if len(secret.encode()) < MIN_PIN_SECRET_BYTES:
            raise ConfigError(
                f"the PIN secret from {source} is {len(secret.encode())} bytes; at least "
                f"{MIN_PIN_SECRET_BYTES} are needed (e.g. python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        return secret, source

    def pin_old_secret_values(self) -> list[Secret]:
        """Earlier PIN secrets (RATER_PIN_SECRETS_OLD, whitespace-separated, and the lines of
        RATER_PIN_SECRETS_OLD_FILE; '#' starts a comment line)."""
        text = str(self.pin_secrets_old)
        if self.pin_secrets_old_file:
            path = Path(self.pin_secrets_old_file).expanduser()
            text += "\n" + _read_secret(path, "RATER_PIN_SECRETS_OLD_FILE", allow_empty=True)
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        return [Secret(part) for line in lines for part in line.split()]


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


def _read_secret(path: Path, what: str, *, allow_empty: bool = False) -> Secret:
    try:
        text = path.read_text().strip()
    except OSError as error:
        raise ConfigError(f"{what}: cannot read {path}: {error.strerror}") from None
    if not text and not allow_empty:
        raise ConfigError(f"{what}: {path} is empty")
    return Secret(text)


_cached: Settings | None = None


def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    global _cached  # noqa: PLW0603 - one process-wide settings object, by design
    if _cached is None:
        _cached = Settings.from_env()
    return _cached
