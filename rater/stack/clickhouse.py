"""ClickHouse: Debian's clickhouse-server (18.16) with a config the project writes.

18.16 refuses a minimal config ("Not found: mark_cache_size"), so the config starts from the
one Debian's package installs in /etc/clickhouse-server/ and changes only ports, paths, the
listen address, the time zone and cache sizes. Every other port in it (interserver, HTTPS,
secure TCP) is removed, so two stacks with different base ports never clash.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

from rater import clickhouse as ch
from rater.errors import StackError
from rater.settings import Settings
from rater.stack.service import Service

DEBIAN_CONFIG_DIR = Path("/etc/clickhouse-server")
SERVER_BINARIES = (Path("/usr/sbin/clickhouse-server"), Path("/usr/bin/clickhouse-server"))

#: ports the Debian config may open besides the two we set; dropped so stacks never clash
_OTHER_PORTS = (
    "interserver_http_port",
    "https_port",
    "tcp_port_secure",
    "mysql_port",
    "postgresql_port",
    "grpc_port",
    "prometheus",
)


def server_binary() -> Path | None:
    found = shutil.which("clickhouse-server")
    if found:
        return Path(found)
    return next((path for path in SERVER_BINARIES if path.is_file()), None)


def _set(root: ET.Element, tag: str, value: str) -> None:
    element = root.find(tag)
    if element is None:
        element = ET.SubElement(root, tag)
    element.text = value


def server_config(settings: Settings, directory: Path, source: Path) -> ET.ElementTree[ET.Element]:
    """The Debian config at source with this stack's ports and paths."""
    tree: ET.ElementTree[ET.Element] = ET.parse(
        source
    )  # comments (the commented-out ports among them) are dropped
    root = tree.getroot()
    data = directory / "data"
    logs = directory / "logs"
    _set(root, "tcp_port", str(settings.clickhouse_port))
    _set(root, "http_port", str(settings.clickhouse_http_port))
    for tag in _OTHER_PORTS:
        for element in root.findall(tag):
            root.remove(element)
    for element in root.findall("listen_host"):
        root.remove(element)
    _set(root, "listen_host", "127.0.0.1")
    _set(root, "path", f"{data}/")
    _set(root, "tmp_path", f"{data}/tmp/")
    _set(root, "user_files_path", f"{data}/user_files/")
    _set(root, "format_schema_path", f"{data}/format_schemas/")
    _set(root, "users_config", str(directory / "users.xml"))
    # substitutions (incl="...") are looked up in this file; it need not exist
    _set(root, "include_from", str(directory / "metrika.xml"))
    # daily summaries are cut at UTC midnight (docs/DESIGN.md: times are UTC)
    _set(root, "timezone", "UTC")
    # several stacks share small machines: caches are allocated on demand, but cap them
    _set(root, "mark_cache_size", str(256 << 20))
    _set(root, "uncompressed_cache_size", str(256 << 20))
    logger = root.find("logger")
    if logger is None:
        logger = ET.SubElement(root, "logger")
    _set(logger, "level", "warning")
    _set(logger, "log", str(logs / "clickhouse-server.log"))
    _set(logger, "errorlog", str(logs / "clickhouse-server.err.log"))
    _set(logger, "size", "100M")
    _set(logger, "count", "3")
    # the example clusters point at port 9000: point them at this server instead
    for port in root.iterfind("remote_servers//port"):
        port.text = str(settings.clickhouse_port)
    servers = root.find("remote_servers")
    for cluster in list(servers if servers is not None else []):
        if cluster.find(".//secure") is not None:
            # an example cluster over TLS would need the secure port removed above
            servers.remove(cluster)  # type: ignore[union-attr]
    return tree


def users_config(source: Path) -> ET.ElementTree[ET.Element]:
    """Debian's users.xml, with the default user reachable from this machine only."""
    tree: ET.ElementTree[ET.Element] = ET.parse(source)
    for networks in tree.getroot().iterfind("users/*/networks"):
        for child in list(networks):
            networks.remove(child)
        for address in ("::1", "127.0.0.1"):
            ET.SubElement(networks, "ip").text = address
    return tree


def write_config(settings: Settings, directory: Path, source_dir: Path = DEBIAN_CONFIG_DIR) -> Path:
    """Write config.xml and users.xml into directory; returns the config path."""
    config_source = source_dir / "config.xml"
    users_source = source_dir / "users.xml"
    for needed in (config_source, users_source):
        if not needed.is_file():
            raise StackError(
                f"{needed} is missing: it comes with Debian's clickhouse-server package "
                "(apt-get install clickhouse-server)"
            )
    for sub in ("data", "data/tmp", "data/user_files", "data/format_schemas", "logs"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    # substitutions (incl="...") come from include_from, which 18.16 insists exists
    (directory / "metrika.xml").write_text('<?xml version="1.0"?>\n<yandex></yandex>\n')
    config = directory / "config.xml"
    server_config(settings, directory, config_source).write(
        config, encoding="unicode", xml_declaration=True
    )
    users_config(users_source).write(
        directory / "users.xml", encoding="unicode", xml_declaration=True
    )
    return config


def _prepare(settings: Settings, directory: Path) -> None:
    write_config(settings, directory)


def service(settings: Settings) -> Service:
    directory = settings.stack_dir / "clickhouse"
    binary = server_binary()
    config = directory / "config.xml"
    logs = directory / "logs"
    return Service(
        name="clickhouse",
        port=settings.clickhouse_port,
        directory=directory,
        argv=[str(binary or "clickhouse-server"), f"--config-file={config}"],
        probe=lambda: ch.ping(settings),
        prepare=lambda: _prepare(settings, directory),
        extra_logs=[logs / "clickhouse-server.err.log", logs / "clickhouse-server.log"],
        start_timeout_s=90.0,
    )


def http_ping(settings: Settings, timeout_s: float = 3.0) -> tuple[bool, str]:
    """(answering, what it said) for ClickHouse's HTTP interface (GET /ping answers "Ok.")."""
    url = f"http://{settings.clickhouse_host}:{settings.clickhouse_http_port}/ping"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            text = answer.read(100).decode(errors="replace").strip()
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return False, f"HTTP interface does not answer: {reason}"
    return text == "Ok.", f"HTTP interface ({text})"
