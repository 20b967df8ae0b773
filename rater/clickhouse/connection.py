"""ClickHouse connections and migrations (schemas/clickhouse/NNN_name.sql, applied in order).

Every statement must run on ClickHouse 18.16 (Debian's package) and on a current release.

The migrations are package data: rater/clickhouse/schemas is a link to schemas/clickhouse in
the repository, and the wheel carries the files themselves, so an installed rater (not
editable, no checkout) migrates from its own copy.

Numpy clients use the driver's numpy mode, which imports pandas: `clickhouse-driver[numpy]`
is a runtime dependency (pyproject.toml) for that reason. Nothing but the store's columnar
inserts needs the mode: migrations, pings and admin queries use plain clients.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from rater.errors import ConfigError, MigrationError, ServiceUnavailable
from rater.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "schemas"
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def client(settings: Settings, *, database: str | None = None, numpy: bool = True) -> Client:
    """A native-protocol client; numpy columnar inserts enabled unless numpy=False.

    The driver reads use_numpy once, when the client is built: a numpy client refuses row
    inserts ("NumPy inserts is only allowed with columnar=True"), so row-wise callers (the
    migrations table, small admin queries) ask for numpy=False.
    """
    if numpy:
        _numpy_mode_available()
    return Client(
        host=settings.clickhouse_host,
        port=settings.clickhouse_port,
        user=settings.clickhouse_user,
        password=str(settings.clickhouse_password),
        database=database or settings.clickhouse_database,
        settings={"use_numpy": numpy},
        connect_timeout=5,
        send_receive_timeout=300,
    )


def _numpy_mode_available() -> None:
    """ConfigError naming the fix when the driver's numpy mode cannot load (pandas missing):
    the driver itself would raise a bare RuntimeError ("Extras for NumPy must be installed")."""
    try:
        import clickhouse_driver.numpy.result  # noqa: F401, PLC0415 - what the driver imports
    except ImportError as error:
        raise ConfigError(
            f"clickhouse-driver's numpy mode cannot load ({error}): install rater with its "
            "dependencies (pip install rater), or pip install 'clickhouse-driver[numpy]'"
        ) from None


def ping(settings: Settings) -> str:
    """The server version; ServiceUnavailable when it does not answer."""
    try:
        rows = client(settings, database="default", numpy=False).execute("SELECT version()")
    except (ch_errors.Error, OSError, EOFError) as error:
        raise ServiceUnavailable(
            f"ClickHouse at {settings.clickhouse_host}:{settings.clickhouse_port} "
            f"does not answer: {error}"
        ) from error
    return str(rows[0][0])


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        """The file split on ';' at line ends, comments dropped."""
        text = "\n".join(
            line for line in self.path.read_text().splitlines() if not line.strip().startswith("--")
        )
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", text) if s.strip()]


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """All migration files, in order; MigrationError for a badly named or duplicated one."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNN_name.sql")
        number = int(match[1])
        if number in found:
            raise MigrationError(
                f"{path.name}: number {number:03d} also used by {found[number].path.name}"
            )
        found[number] = Migration(number, path.stem, path)
    return [found[n] for n in sorted(found)]


def migrate(settings: Settings, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Create the database and apply the migrations not yet recorded; returns the names applied.

    Safe to re-run: applied ones are recorded in `schema_migrations` and every statement is
    written to be re-runnable (IF [NOT] EXISTS; copies that skip rows already copied; a RENAME
    whose target exists is skipped), so a migration interrupted half-way can be applied again.
    """
    ping(settings)
    database = settings.clickhouse_database
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database):
        raise MigrationError(f"database name {database!r} is not a plain identifier")
    client(settings, database="default", numpy=False).execute(
        f"CREATE DATABASE IF NOT EXISTS {database}"
    )
    ch_plain = client(settings, numpy=False)
    ch_plain.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(number UInt32, name String, applied_at DateTime) ENGINE = TinyLog"
    )
    done = {int(row[0]) for row in ch_plain.execute("SELECT number FROM schema_migrations")}
    applied: list[str] = []
    for migration in migrations(directory):
        if migration.number in done:
            continue
        for statement in migration.statements():
            if _renamed_already(ch_plain, database, statement):
                continue
            try:
                ch_plain.execute(statement)
            except ch_errors.Error as error:
                # the server appends its C++ stack trace: the first lines say what is wrong
                reason = str(error).split("Stack trace:")[0].strip()
                raise MigrationError(f"{migration.path.name}: {reason}") from error
        ch_plain.execute(
            "INSERT INTO schema_migrations (number, name, applied_at) VALUES",
            [(migration.number, migration.name, _now())],
        )
        applied.append(migration.name)
    return applied


_RENAME = re.compile(r"(?is)^\s*RENAME\s+TABLE\s+(\w+)\s+TO\s+(\w+)\s*$")


def _renamed_already(ch: Client, database: str, statement: str) -> bool:
    """True for a `RENAME TABLE a TO b` whose target exists: an interrupted migration that
    renamed a table is started again, and ClickHouse has no RENAME ... IF EXISTS."""
    match = _RENAME.match(statement)
    if match is None:
        return False
    rows = ch.execute(
        "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(name)s",
        {"db": database, "name": match[2]},
    )
    return bool(rows[0][0])


def _now() -> object:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
