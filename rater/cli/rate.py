"""`rater rate`: rate a JSONL file of CDR messages offline against one tariff file.

Each input line is one CDR message (docs/DESIGN.md section 5), checked exactly as the streaming
pipeline checks it (rater.pipeline.decode, the stream's own decoder); callees are normalised with
the given country and trunk prefix (rater.switches.numbers). Each line gives one output line, in
order: the rated CDR, or its cdr_id and an error naming the line, the field and why.
`--engine kernel` (the default) rates with the numba kernel the workers use; `--engine
reference` with the plain-Python Decimal rater, for audits. Both write the same bytes.

The file is read in blocks of whole lines; each block is decoded, rated and written as one
piece (the output of a block is one write), so memory stays bounded whatever the file's size.
`--jobs N` rates N blocks at once in forked processes and writes their output in input order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import IO, Any

import click
import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from kernels.layout import E164_MIN_DIGITS, MAX_BILLSEC
from rater import reference
from rater.cli.grammar import Command
from rater.errors import NormalisationError
from rater.money import DECIMALS_MAX, Rounding, from_micro
from rater.pipeline.decode import CdrBatch, decode
from rater.pipeline.rate import rate_batch
from rater.switches.numbers import normalise_many
from rater.tariffs.compile import CompiledTariffs, compile_tables
from rater.tariffs.importers import read_tariff
from rater.tariffs.model import Steps, SwitchSettings, TariffTable

#: bytes read per block: about 15,000 lines of CDR messages, enough to amortise the kernel
#: call and the per-block numpy work, small enough that N jobs hold little memory
BLOCK_BYTES = 4 << 20
#: blocks in flight per job with --jobs: one being rated, one waiting, so no job idles while
#: the writer catches up
_AHEAD = 2


class _Line(msgspec.Struct, gc=False):
    """One input line in the shape rater.pipeline.decode reads (a Kafka record). A msgspec
    struct is made in C: about a fifth of a slotted class's cost per line."""

    offset: int  # the line number
    value: bytes
    partition: int = 0
    key: bytes | None = None
    timestamp: int = 0


@dataclass(frozen=True)
class _Block:
    """Whole lines of the input: `first` is the number of its first line."""

    first: int
    data: bytes

    def values(self) -> list[bytes]:
        values = self.data.split(b"\n")
        if self.data.endswith(b"\n"):
            values.pop()
        if b"\r" in self.data:
            values = [value.rstrip(b"\r") for value in values]
        return values


@dataclass(frozen=True)
class Rated:
    """What an engine found for one valid CDR (before it is written)."""

    number: str
    prefix: str
    destination: str
    billable_seconds: int
    price_micro: int


@dataclass
class _Found:
    """What an engine made of a block's valid CDRs, as the writer takes it."""

    errors: dict[int, str]
    """position among the valid CDRs -> why it was not rated."""
    index: list[int]
    """positions of the rated CDRs, in order."""
    number: list[str]
    piece: list[str]
    """each rated CDR's `,"tariff":..,"prefix":..,"destination":..` (JSON)."""
    billable: list[int]
    price: npt.NDArray[np.int64]


@dataclass
class _Job:
    """What every block is rated with (forked jobs inherit it)."""

    table: TariffTable
    switch: SwitchSettings
    compiled: CompiledTariffs | None
    """the kernel's tables; None: the reference engine."""
    pieces: dict[object, str] = field(default_factory=dict)
    """JSON of each tariff row's fields, made once per row (a 20,000-prefix deck has about
    12,000 rows matched in every block)."""
    row_table: npt.NDArray[np.object_] | None = None
    """the kernel's pieces by compiled row id (None until the first block)."""

    def piece(self, key: object, prefix: str, destination: str) -> str:
        found = self.pieces.get(key)
        if found is None:
            table = self.table.key
            found = self.pieces[key] = (
                f',"tariff":{_json(table)},"prefix":{_json(prefix)},'
                f'"destination":{_json(destination)}'
            )
        return found


def _blocks(stream: IO[bytes], size: int = BLOCK_BYTES) -> Iterator[_Block]:
    """The input in blocks of whole lines (the last line may lack its newline)."""
    line, rest = 1, b""
    while True:
        piece = stream.read(size)
        if not piece:
            if rest:
                yield _Block(line, rest)
            return
        data = rest + piece if rest else piece
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        block, rest = data[:cut], data[cut:]
        yield _Block(line, block)
        line += block.count(b"\n")


def _cdr_id_of(value: bytes) -> Any:
    """The cdr_id of a rejected line when it has one (for the error object)."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return obj.get("cdr_id") if isinstance(obj, dict) else None


def _json(text: str) -> str:
    return orjson.dumps(text).decode()


def _rate_kernel(job: _Job, batch: CdrBatch) -> _Found:
    table, compiled = job.table, job.compiled
    assert compiled is not None
    digits, lengths, reasons = normalise_many(batch.callee.tolist(), job.switch)
    size = len(batch)
    ok = np.fromiter((reason is None for reason in reasons), dtype=bool, count=size)
    result = rate_batch(
        compiled,
        np.where(ok, 0, -1).astype(np.int32),
        np.full(size, -1, dtype=np.int32),
        digits,
        lengths,
        batch.start,
        batch.billsec,
    )
    numbers = [str(d).zfill(n) for d, n in zip(digits.tolist(), lengths.tolist(), strict=True)]
    errors: dict[int, str] = {}
    for i in np.flatnonzero(~ok).tolist():
        errors[i] = f"callee: {reasons[i]}"
    rows = result.sell_row
    for i in np.flatnonzero(ok & (rows < 0)).tolist():
        errors[i] = _no_match(numbers[i], table)
    index = np.flatnonzero(ok & (rows >= 0))
    matched = rows[index]
    positions = index.tolist()
    return _Found(
        errors,
        positions,
        [numbers[i] for i in positions],
        _row_pieces(job, compiled, matched),
        result.billable[index].tolist(),
        result.price[index],
    )


def _row_pieces(job: _Job, compiled: CompiledTariffs, rows: npt.NDArray[np.int32]) -> list[str]:
    """The JSON piece of each matched row, from a table of every compiled row's piece that
    fills as rows are first matched (a numpy take instead of a dict look-up per CDR)."""
    table = job.row_table
    if table is None:
        table = job.row_table = np.empty(len(compiled.row_prefix), dtype=object)
    unique = np.unique(rows)
    known = table[unique].tolist()
    for row in [r for r, piece in zip(unique.tolist(), known, strict=True) if piece is None]:
        table[row] = job.piece(
            row, str(compiled.row_prefix[row]), str(compiled.row_destination[row])
        )
    result: list[str] = table[rows].tolist()
    return result


def _no_match(number: str, table: TariffTable) -> str:
    """A short number (an extension, a service code) has no route unless a row is exactly it
    (docs/DESIGN.md section 4); a longer one has no prefix."""
    if len(number) < E164_MIN_DIGITS:
        return f"callee: no route to {number} in tariff {table.key}"
    return f"callee: no prefix of {number} in tariff {table.key}"


def _rate_reference(job: _Job, batch: CdrBatch) -> _Found:
    table = job.table
    found = _Found({}, [], [], [], [], np.zeros(0, dtype=np.int64))
    prices: list[int] = []
    rows = zip(batch.callee.tolist(), batch.start.tolist(), batch.billsec.tolist(), strict=True)
    for i, (callee, start, billsec) in enumerate(rows):
        try:
            number, rated = reference.rate_cdr([table], callee, billsec, start, job.switch)
        except NormalisationError as error:
            found.errors[i] = f"callee: {error}"
            continue
        if rated is None:
            found.errors[i] = _no_match(number, table)
            continue
        found.index.append(i)
        found.number.append(number)
        key = (rated.prefix, rated.destination)
        found.piece.append(job.piece(key, *key))
        found.billable.append(rated.billable_seconds)
        prices.append(rated.price_micro)
    found.price = np.asarray(prices, dtype=np.int64)
    return found


def prices_text(price: npt.NDArray[np.int64], decimals: int) -> list[str]:
    """`from_micro(p, decimals)` of every price, vectorised for the usual case (a price >= 0
    on the decimals' grid, as the tariff rounds it); any other through from_micro itself."""
    if len(price) == 0:
        return []  # np.strings.zfill has no identity for an empty array
    unit = 10 ** (DECIMALS_MAX - decimals)
    whole = (price // 10**DECIMALS_MAX).astype(str)
    if decimals:
        fraction = np.strings.zfill(((price % 10**DECIMALS_MAX) // unit).astype(str), decimals)
        text: list[str] = np.strings.add(np.strings.add(whole, "."), fraction).tolist()
    else:
        text = whole.tolist()
    for i in np.flatnonzero((price < 0) | (price % unit != 0)).tolist():
        text[i] = from_micro(int(price[i]), decimals)
    return text


def _json_strings(values: list[str]) -> list[str]:
    """Each value as a JSON string, as orjson writes it. Most ids need no escape: one dumps of
    the whole list tells (an escape only lengthens), else each is dumped alone."""
    plain = [f'"{value}"' for value in values]
    if orjson.dumps(values) == f"[{','.join(plain)}]".encode():
        return plain
    return [_json(value) for value in values]


def _rate_block(job: _Job, block: _Block) -> bytes:
    """The output lines of one block of input lines (JSON + newline each), in order."""
    values = block.values()
    first = block.first
    records = list(map(_Line, range(first, first + len(values)), values))
    batch, rejects = decode(records, lambda _switch: UTC)
    out: list[str] = [""] * len(values)
    for reject in rejects:
        error = {
            "cdr_id": _cdr_id_of(reject.value),
            "error": f"line {reject.offset}: {reject.reason}",
        }
        out[reject.offset - first] = orjson.dumps(error).decode()
    too_long = batch.billsec > MAX_BILLSEC
    for i in np.flatnonzero(too_long).tolist():
        line = int(batch.offset[i])
        error = {
            "cdr_id": batch.cdr_id[i],
            "error": f"line {line}: billsec: {batch.billsec[i]} is above {MAX_BILLSEC}",
        }
        out[line - first] = orjson.dumps(error).decode()
    valid = batch.take(~too_long) if too_long.any() else batch
    found = _rate_kernel(job, valid) if job.compiled is not None else _rate_reference(job, valid)
    lines = (valid.offset - first).tolist()
    ids = valid.cdr_id.tolist()
    for i, why in found.errors.items():
        error = {"cdr_id": ids[i], "error": f"line {lines[i] + first}: {why}"}
        out[lines[i]] = orjson.dumps(error).decode()
    quoted = _json_strings([ids[i] for i in found.index])
    prices = prices_text(found.price, job.table.decimals)
    for i, cdr_id, number, piece, billable, price in zip(
        found.index, quoted, found.number, found.piece, found.billable, prices, strict=True
    ):
        out[lines[i]] = (
            f'{{"cdr_id":{cdr_id},"number":"{number}"{piece},'
            f'"billable_seconds":{billable},"price":"{price}"}}'
        )
    out.append("")
    return "\n".join(out).encode()


def rate_lines(
    table: TariffTable, stream: IO[bytes], switch: SwitchSettings, engine: str, jobs: int = 1
) -> Iterator[bytes]:
    """Output (JSON lines) for every input line, in order, one piece per block of lines."""
    compiled = compile_tables({table.name: [table]}) if engine == "kernel" else None
    job = _Job(table, switch, compiled)
    if compiled is not None:
        _warm_up(compiled)
    if jobs <= 1:
        for block in _blocks(stream):
            yield _rate_block(job, block)
        return
    global _JOB  # noqa: PLW0603 - what forked jobs inherit
    _JOB = job
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        pending: deque[Any] = deque()
        for block in _blocks(stream):
            pending.append(pool.apply_async(_rate_in_job, (block,)))
            if len(pending) >= _AHEAD * jobs:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


_JOB: _Job | None = None


def _rate_in_job(block: _Block) -> bytes:
    assert _JOB is not None
    return _rate_block(_JOB, block)


def _warm_up(compiled: CompiledTariffs) -> None:
    """Load the kernel before forking, so no job compiles it again."""
    one = np.zeros(1, dtype=np.int64)
    rate_batch(
        compiled, np.full(1, -1, np.int32), np.full(1, -1, np.int32), one,
        np.zeros(1, np.int8), one, np.zeros(1, np.int32),
    )  # fmt: skip


@click.command("rate", cls=Command)
@click.option(
    "--tariff",
    "tariff_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tariff file: canonical CSV, XLSX or a real-world deck layout.",
)
@click.option("--steps", default="1/1", show_default=True, help="Default billing steps X/Y.")
@click.option(
    "--decimals",
    type=click.IntRange(0, 6),
    default=4,
    show_default=True,
    help="Decimals prices are rounded to.",
)
@click.option(
    "--rounding",
    type=click.Choice([mode.value for mode in Rounding]),
    default=Rounding.UP.value,
    show_default=True,
    help="How prices are rounded to those decimals.",
)
@click.option("--country", default="", help="Country code of national numbers, e.g. 31.")
@click.option("--trunk-prefix", default="0", show_default=True, help="National trunk prefix.")
@click.option(
    "--engine",
    type=click.Choice(["kernel", "reference"]),
    default="kernel",
    show_default=True,
    help="kernel: the numba rater; reference: the plain-Python Decimal rater (audits).",
)
@click.option(
    "--jobs",
    type=click.IntRange(0),
    default=1,
    show_default=True,
    metavar="N",
    help="Processes rating blocks of the file at once; 0: one per core.",
)
@click.option(
    "--input",
    "input_file",
    type=click.File("rb"),
    default="-",
    metavar="FILE",
    help="CDRs, one JSON object a line [stdin].",
)
@click.option(
    "-o",
    "--output",
    "output_file",
    type=click.File("wb"),
    default="-",
    metavar="FILE",
    help="Write the rated CDRs (JSON lines) to FILE [stdout].",
)
def rate(
    *,
    tariff_path: Path,
    steps: str,
    decimals: int,
    rounding: str,
    country: str,
    trunk_prefix: str,
    engine: str,
    jobs: int,
    input_file: IO[bytes],
    output_file: IO[bytes],
) -> None:
    """Rate CDR messages (one JSON object a line) against a tariff file, offline.

    Writes one JSON object per input line, in order: cdr_id, number, tariff, prefix,
    destination, billable_seconds and price (a decimal string), or cdr_id and error.
    """
    if country and not country.isdigit():
        raise click.BadParameter(
            f"{country!r} is not a country calling code", param_hint="--country"
        )
    table = read_tariff(
        tariff_path,
        name=tariff_path.stem,
        steps=Steps.parse(steps),
        decimals=decimals,
        rounding=Rounding(rounding),
    )
    switch = SwitchSettings(name="rate", country_code=country, trunk_prefix=trunk_prefix)
    for piece in rate_lines(table, input_file, switch, engine, jobs or os.cpu_count() or 1):
        output_file.write(piece)
    output_file.flush()
