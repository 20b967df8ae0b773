"""What the materialized views on rated_cdrs cost ClickHouse per stored row, merges included.

A database of its own gets every migration; 20,000 plausible rated CDRs (600 customers, a fifth
on cards, two thirds rated) sit in a Memory table, and `INSERT INTO rated_cdrs SELECT` copies
them in, so the client costs nothing and every microsecond is the server's: the insert path,
the views, then the background merges of what they wrote (the benchmark waits until
system.merges is empty and merges the ledger once). Variants alternate in rounds:

- the call-debit view of migration 030 (two or three ledger rows per rated CDR: how it was);
- the grouped view of migration 080 (one ledger entry per account and insert: how it is);
- no call-debit view at all (the floor: what a ledger written by the worker would leave).

Each variant starts from empty tables (TRUNCATE), so none merges another's parts.

Server CPU comes from /proc (utime + stime of the clickhouse-server of the running stack), so
other processes on a shared machine do not count; insert wall times are beside it.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater import clickhouse
from rater.clickhouse.connection import MIGRATIONS_DIR

TITLE = "Materialized views on rated_cdrs: server CPU per stored row"
NEEDS_STACK = True

ROWS = 20_000


def _server_pid(stack_dir: Path) -> int:
    """The clickhouse-server whose configuration lives in this stack's folder."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "clickhouse-server" in command and str(stack_dir) in command:
            return int(entry.name)
    raise RuntimeError(f"no clickhouse-server of the stack in {stack_dir} found in /proc")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _view(number: int, name: str, database: str) -> str:
    """The CREATE MATERIALIZED VIEW statement of a migration, on `database`."""
    path = next(MIGRATIONS_DIR.glob(f"{number:03d}_*.sql"))
    text = path.read_text()
    statement = text[text.index(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name}") :]
    statement = statement[: statement.index(";\n")]
    return statement.replace(
        f" {name} TO ledger", f" {database}.{name} TO {database}.ledger"
    ).replace("FROM rated_cdrs", f"FROM {database}.rated_cdrs")


def run(ctx: BenchContext) -> BenchReport:
    rounds, inserts = (2, 3) if ctx.quick else (4, 8)
    database = f"bench_views_{uuid.uuid4().hex[:6]}"
    settings = ctx.settings.replace(clickhouse_database=database)
    clickhouse.migrate(settings)
    ch = clickhouse.client(settings, numpy=False)
    pid = _server_pid(ctx.settings.stack_dir)
    db = database
    try:
        ch.execute(f"CREATE TABLE {db}.staging AS {db}.rated_cdrs ENGINE = Memory")
        ch.execute(
            f"INSERT INTO {db}.staging SELECT 'topic', number % 4, number, "
            "concat('sw', toString(number % 4)), concat('cdr', toString(number)), "
            "concat('cust', toString(number % 600)), "
            "if(number % 5 = 0, concat('8', toString(number % 3000)), ''), '', '+3120555', "
            "'+4930123', '', toDateTime(1790000000 + number % 86400), "
            "toDateTime(1790000005 + number % 86400), toDateTime(1790000100 + number % 86400), "
            "100, 95, 'ANSWERED', '16', '4930123', concat('49', toString(number % 300)), "
            "concat('Dest ', toString(number % 300)), 120, 12345, 6000, 6345, 'EUR', "
            "'retail@1', 'buy@1', concat('res', toString(number % 5)), "
            "concat('cust', toString(number % 600)), "
            "if(number % 3 = 0, 'unanswered', 'rated'), '', 0, 0, 1, now() "
            f"FROM system.numbers LIMIT {ROWS}"
        )

        def settle() -> None:
            """Until no merge of this database ran for three looks in a row (1.5 s)."""
            quiet = 0
            for _ in range(240):
                busy = ch.execute(f"SELECT count() FROM system.merges WHERE database = '{db}'")
                quiet = 0 if busy[0][0] else quiet + 1
                if quiet >= 3:
                    return
                time.sleep(0.5)

        old = _view(30, "ledger_calls", db)
        grouped = _view(80, "ledger_calls_grouped", db)
        variants: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
            "030 per-call view": (
                lambda: ch.execute(old),
                lambda: ch.execute(f"DROP TABLE {db}.ledger_calls"),
            ),
            "080 grouped view": (
                lambda: ch.execute(grouped),
                lambda: ch.execute(f"DROP TABLE {db}.ledger_calls_grouped"),
            ),
            "no call-debit view": (lambda: None, lambda: None),
        }
        ch.execute(f"DROP TABLE IF EXISTS {db}.ledger_calls_grouped")
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        wall: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, (create, drop) in variants.items():
                # every variant starts from empty tables: no variant merges another's parts
                for table in ("rated_cdrs", "ledger", "daily_summary", "card_summary",
                              "stored_offsets"):  # fmt: skip
                    ch.execute(f"TRUNCATE TABLE {db}.{table}")
                create()
                settle()
                before = _cpu_s(pid)
                for _ in range(inserts):
                    started = time.perf_counter()
                    ch.execute(f"INSERT INTO {db}.rated_cdrs SELECT * FROM {db}.staging")
                    wall[name].append(time.perf_counter() - started)
                ch.execute(f"OPTIMIZE TABLE {db}.ledger")
                settle()
                cpu[name].append((_cpu_s(pid) - before) * 1e6 / (ROWS * inserts))
                drop()
        entries = ch.execute(f"SELECT count() FROM {db}.rated_cdrs")[0][0]
    finally:
        ch.execute(f"DROP DATABASE IF EXISTS {db}")
        ch.disconnect()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    before_cpu, after_cpu, floor_cpu = (med(cpu[n]) for n in variants)
    return BenchReport(
        title=TITLE,
        measurements=[
            Measurement(
                "server CPU per row, 080 grouped view (with merges)",
                after_cpu,
                "us",
                "030 per-call view",
                before_cpu,
                higher_is_better=False,
            ),
            Measurement(
                "server CPU per row, no call-debit view (the floor)",
                floor_cpu,
                "us",
                "030 per-call view",
                before_cpu,
                higher_is_better=False,
            ),
            *(
                Measurement(
                    f"insert wall per row, {name}",
                    1e6 * med(w) / ROWS,
                    "us",
                    higher_is_better=False,
                )
                for name, w in wall.items()
            ),
        ],
        notes=[
            "Server CPU of clickhouse-server from /proc over each variant's inserts and the "
            "merges they caused (waited for), divided by the rows inserted; medians over "
            "rounds in which the variants alternate, each from empty tables (so no variant "
            "pays for another's merges). "
            "The views of daily_summary, card_summary and stored_offsets run in every "
            "variant. The gap between the grouped view and the floor is what a ledger "
            "written by the worker from its numpy amounts would save beyond it.",
        ],
        params={
            "rows per insert": ROWS,
            "inserts per variant and round": inserts,
            "rounds": rounds,
            "rows in rated_cdrs after a variant": int(entries),
        },
    )
