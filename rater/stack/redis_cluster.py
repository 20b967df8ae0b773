"""A three-node Redis Cluster on loopback, beside the stack's single Redis (`--redis-cluster`).

Each node is a redis-server with `--cluster-enabled yes` in its own folder under
`<stack_dir>/redis-cluster/<port>/` (append-only file on, like the single server). The first
`up` joins them with `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`
(16384 slots over three primaries); later starts find their `nodes.conf` and re-form the
cluster by themselves. The seed list is written to `<stack_dir>/redis-cluster/nodes`, so
`RATER_REDIS_CLUSTER_NODES=$(cat .stack/redis-cluster/nodes)` points any rater process at it.

Ports: the seeds of `settings.redis_cluster_nodes` when set (loopback only), else
`<P>401-<P>403` for a stack whose single Redis listens on `<P>379`.
"""

from __future__ import annotations

import functools
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from rater.errors import ServiceUnavailable, StackError
from rater.settings import Settings
from rater.stack import supervisor
from rater.stack.redis import redis_binary, redis_cli
from rater.stack.service import Service

NODE_COUNT = 3
#: first cluster port relative to the stack's port base (<P>401, <P>402, <P>403)
PORT_OFFSET = 401
#: each node's cluster bus listens on its port + BUS_OFFSET (<P>411..<P>413). Redis' default,
#: port + 10000, falls inside Linux's ephemeral port range (32768-60999) for every port base
#: above 22: a client connection that happened to hold 39402 stopped a test stack's node 29402
#: from starting ("bind: Address already in use").
BUS_OFFSET = 10
LOOPBACK = "127.0.0.1"

Echo = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def folder(settings: Settings) -> Path:
    return settings.stack_dir / "redis-cluster"


def nodes_file(settings: Settings) -> Path:
    """Holds the seed list ('127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3') once the cluster is up."""
    return folder(settings) / "nodes"


def ports(settings: Settings) -> list[int]:
    """The node ports: from settings.redis_cluster_nodes, else <P>401..<P>403."""
    if settings.redis_cluster_nodes:
        found = []
        for seed in settings.redis_cluster_nodes.split(","):
            host, port = seed.strip().rsplit(":", 1)
            if host not in (LOOPBACK, "localhost"):
                raise StackError(
                    f"RATER_REDIS_CLUSTER_NODES names {host}: the local cluster runs on "
                    f"{LOOPBACK} only"
                )
            found.append(int(port))
        if len(found) != NODE_COUNT:
            raise StackError(
                f"the local Redis Cluster has {NODE_COUNT} nodes; "
                f"RATER_REDIS_CLUSTER_NODES names {len(found)}"
            )
        return found
    base = settings.redis_port // 1000 * 1000
    return [base + PORT_OFFSET + i for i in range(NODE_COUNT)]


def seeds(settings: Settings) -> str:
    return ",".join(f"{LOOPBACK}:{port}" for port in ports(settings))


def nodes_of(settings: Settings) -> str:
    """Seeds of the running local cluster: settings first, else the nodes file, else ''."""
    if settings.redis_cluster_nodes:
        return settings.redis_cluster_nodes
    path = nodes_file(settings)
    return path.read_text().strip() if path.is_file() else ""


def _probe(port: int) -> str:
    try:
        client = redis.Redis(host=LOOPBACK, port=port, socket_connect_timeout=2, socket_timeout=5)
        info = client.info("server")
        client.close()
    except (redis.RedisError, OSError) as error:
        raise ServiceUnavailable(f"Redis Cluster node {port} does not answer: {error}") from error
    return str(info.get("redis_version", "?"))


def _bus_port_option(binary: Path | None, port: int) -> list[str]:
    """`--cluster-port` (Redis 7 and newer; 6.2 always uses port + 10000)."""
    if _major_version(str(binary or "redis-server")) < 7:
        return []
    return ["--cluster-port", str(port + BUS_OFFSET)]


@functools.cache
def _major_version(binary: str) -> int:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return 0
    match = re.search(r"v=(\d+)\.", out)
    return int(match[1]) if match else 0


def services(settings: Settings) -> list[Service]:
    binary = redis_binary()
    result = []
    for port in ports(settings):
        directory = folder(settings) / str(port)
        result.append(
            Service(
                name=f"redis-cluster-{port}",
                port=port,
                directory=directory,
                argv=[
                    str(binary or "redis-server"),
                    "--port",
                    str(port),
                    "--bind",
                    LOOPBACK,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(directory / "data" / "nodes.conf"),
                    "--cluster-node-timeout",
                    "5000",
                    *_bus_port_option(binary, port),
                    "--dir",
                    str(directory / "data"),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--save",
                    "",
                    "--daemonize",
                    "no",
                ],
                probe=lambda port=port: _probe(port),  # type: ignore[misc]
                prepare=lambda directory=directory: (directory / "data").mkdir(  # type: ignore[misc]
                    parents=True, exist_ok=True
                ),
                start_timeout_s=30.0,
            )
        )
    return result


def _cluster_info(port: int) -> dict[str, str]:
    """CLUSTER INFO of one node as a dict (redis-py parses the reply)."""
    client = redis.Redis(host=LOOPBACK, port=port, socket_connect_timeout=2, socket_timeout=5)
    try:
        info = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
    finally:
        client.close()
    if isinstance(info, dict):
        return {str(k): str(v) for k, v in info.items()}
    text = info.decode() if isinstance(info, bytes) else str(info)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def cluster_state(port: int) -> str:
    """'ok', 'fail' (not joined, or slots missing), or why the node does not answer."""
    try:
        return _cluster_info(port).get("cluster_state", "unknown").strip()
    except (redis.RedisError, OSError) as error:
        return f"no answer: {error}"


def _known_nodes(port: int) -> int:
    return int(_cluster_info(port).get("cluster_known_nodes", "0"))


def up(settings: Settings, *, echo: Echo = _quiet, wait_s: float = 60.0) -> str:
    """Start the three nodes, join them into one cluster if they are not yet; returns the seeds.

    Idempotent: running nodes are left alone, a formed cluster is not created again.
    """
    records: dict[int, supervisor.PidRecord] = {}
    for svc in services(settings):
        svc.directory.mkdir(parents=True, exist_ok=True)
        record = supervisor.running(svc.pid_file)
        if record is None:
            if supervisor.port_in_use(svc.port):
                raise StackError(
                    f"{svc.name}: port {svc.port} is taken by a process this stack did not start"
                )
            svc.prepare()
            record = supervisor.start(
                svc.argv, pid_file=svc.pid_file, log_file=svc.console_log, cwd=svc.directory
            )
            echo(f"{svc.name}: started (pid {record.pid}, port {svc.port})")
        else:
            echo(f"{svc.name}: already running (pid {record.pid}, port {svc.port})")
        records[svc.port] = record
    deadline = time.monotonic() + wait_s
    for svc in services(settings):
        while True:
            try:
                version = svc.probe()
                break
            except ServiceUnavailable as error:
                if supervisor.exited(records[svc.port]) or time.monotonic() > deadline:
                    tail = supervisor.tail(svc.console_log)
                    raise StackError(f"{svc.name} did not start: {error}\n{tail}") from error
                time.sleep(0.2)
        echo(f"{svc.name}: answering ({version})")
    node_ports = ports(settings)
    if _known_nodes(node_ports[0]) < NODE_COUNT:
        create = [
            redis_cli(),
            "--cluster",
            "create",
            *(f"{LOOPBACK}:{port}" for port in node_ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        ]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise StackError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        echo(f"redis cluster: created over {', '.join(map(str, node_ports))}")
    while any(cluster_state(port) != "ok" for port in node_ports):
        if time.monotonic() > deadline:
            states = {port: cluster_state(port) for port in node_ports}
            raise StackError(f"Redis Cluster did not reach cluster_state ok: {states}")
        time.sleep(0.2)
    text = seeds(settings)
    nodes_file(settings).write_text(text + "\n")
    echo(f"redis cluster: ok; export RATER_REDIS_CLUSTER_NODES={text}")
    return text


def down(settings: Settings, *, echo: Echo = _quiet) -> dict[str, int | None]:
    """Stop the nodes this stack started (by their PID files); data stays for the next `up`.

    The PID files are found in the folder, not from the configured ports, so a changed
    RATER_REDIS_CLUSTER_NODES never leaves a node running.
    """
    stopped: dict[str, int | None] = {}
    if not folder(settings).is_dir():
        return stopped
    for pid_file in sorted(folder(settings).glob("*/redis-cluster-*.pid")):
        name = pid_file.stem
        pid = supervisor.stop(pid_file)
        stopped[name] = pid
        echo(f"{name}: stopped (pid {pid})" if pid else f"{name}: was not running")
    nodes_file(settings).unlink(missing_ok=True)
    return stopped
