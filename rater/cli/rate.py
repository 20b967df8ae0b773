"""`rater rate`: rate a JSONL file of CDR messages offline against one tariff file.

Each input line is one CDR message (docs/DESIGN.md section 5), checked exactly as the streaming
pipeline checks it (rater.pipeline.decode); callees are normalised with the given country and trunk
prefix (rater.switches.numbers). Each line gives one output line, in order: the rated CDR, or its
cdr_id and an error naming the line, the field and why. `--engine kernel` (the default) rates
with the numba kernel the workers use; `--engine reference` with the plain-Python Decimal
rater, for audits. Both write the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import IO, Any

import click
import numpy as np
import orjson

from kernels.layout import E164_MIN_DIGITS, MAX_BILLSEC
from rater import reference
from rater.cli.grammar import Command
from rater.errors import NormalisationError
from rater.money import Rounding, from_micro
from rater.pipeline.decode import CdrBatch, decode
from rater.pipeline.rate import rate_batch
from rater.switches.numbers import normalise_many
from rater.tariffs.compile import CompiledTariffs, compile_tables
from rater.tariffs.importers import read_tariff
from rater.tariffs.model import Steps, SwitchSettings, TariffTable

#: lines rated per kernel call: big enough to amortise the call, small enough for memory
CHUNK_LINES = 50_000


@dataclass(frozen=True)
class _Line:
    """One input line in the shape rater.pipeline.decode reads (a Kafka record)."""

    partition: int
    offset: int  # the line number
    value: bytes
    key: bytes | None = None
    timestamp: int = 0


@dataclass(frozen=True)
class Rated:
    """What an engine found for one valid CDR (before it is written)."""

    number: str
    prefix: str
    destination: str
    billable_seconds: int
    price_micro: int


def _chunks(stream: IO[bytes]) -> Iterator[list[_Line]]:
    chunk: list[_Line] = []
    for number, raw in enumerate(stream, start=1):
        chunk.append(_Line(0, number, raw.rstrip(b"\r\n")))
        if len(chunk) >= CHUNK_LINES:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _cdr_id_of(value: bytes) -> Any:
    """The cdr_id of a rejected line when it has one (for the error object)."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return obj.get("cdr_id") if isinstance(obj, dict) else None


def _rate_kernel(
    table: TariffTable, compiled: CompiledTariffs, batch: CdrBatch, switch: SwitchSettings
) -> list[Rated | str]:
    digits, lengths, reasons = normalise_many(list(batch.callee), switch)
    size = len(batch)
    ok = np.array([reason is None for reason in reasons], dtype=bool)
    result = rate_batch(
        compiled,
        np.where(ok, 0, -1).astype(np.int32),
        np.full(size, -1, dtype=np.int32),
        digits,
        lengths,
        batch.start,
        batch.billsec,
    )
    out: list[Rated | str] = []
    for i in range(size):
        reason = reasons[i]
        if reason is not None:
            out.append(f"callee: {reason}")
            continue
        number = str(int(digits[i])).zfill(int(lengths[i]))
        row = int(result.sell_row[i])
        if row < 0:
            out.append(_no_match(number, table))
            continue
        out.append(
            Rated(
                number=number,
                prefix=str(compiled.row_prefix[row]),
                destination=str(compiled.row_destination[row]),
                billable_seconds=int(result.billable[i]),
                price_micro=int(result.price[i]),
            )
        )
    return out


def _no_match(number: str, table: TariffTable) -> str:
    """A short number (an extension, a service code) has no route unless a row is exactly it
    (docs/DESIGN.md section 4); a longer one has no prefix."""
    if len(number) < E164_MIN_DIGITS:
        return f"callee: no route to {number} in tariff {table.key}"
    return f"callee: no prefix of {number} in tariff {table.key}"


def _rate_reference(
    table: TariffTable, batch: CdrBatch, switch: SwitchSettings
) -> list[Rated | str]:
    out: list[Rated | str] = []
    for callee, start, billsec in zip(batch.callee, batch.start, batch.billsec, strict=True):
        try:
            number, rated = reference.rate_cdr(
                [table], str(callee), int(billsec), int(start), switch
            )
        except NormalisationError as error:
            out.append(f"callee: {error}")
            continue
        if rated is None:
            out.append(_no_match(number, table))
            continue
        out.append(
            Rated(
                number, rated.prefix, rated.destination, rated.billable_seconds, rated.price_micro
            )
        )
    return out


def rate_lines(
    table: TariffTable, stream: IO[bytes], switch: SwitchSettings, engine: str
) -> Iterator[bytes]:
    """Output lines (JSON + newline) for every input line, in order."""
    compiled = compile_tables({table.name: [table]}) if engine == "kernel" else None
    for chunk in _chunks(stream):
        batch, rejects = decode(chunk, lambda _switch: UTC)
        too_long = batch.billsec > MAX_BILLSEC
        outcomes: dict[int, dict[str, Any]] = {}
        for reject in rejects:
            outcomes[reject.offset] = {
                "cdr_id": _cdr_id_of(reject.value),
                "error": f"line {reject.offset}: {reject.reason}",
            }
        for i in np.flatnonzero(too_long).tolist():
            outcomes[int(batch.offset[i])] = {
                "cdr_id": batch.cdr_id[i],
                "error": f"line {batch.offset[i]}: billsec: {batch.billsec[i]} is above "
                f"{MAX_BILLSEC}",
            }
        valid = batch.take(~too_long)
        if compiled is None:
            outcomes_of_valid = _rate_reference(table, valid, switch)
        else:
            outcomes_of_valid = _rate_kernel(table, compiled, valid, switch)
        for i, rated in enumerate(outcomes_of_valid):
            line = int(valid.offset[i])
            if isinstance(rated, str):
                outcomes[line] = {"cdr_id": valid.cdr_id[i], "error": f"line {line}: {rated}"}
                continue
            outcomes[line] = {
                "cdr_id": valid.cdr_id[i],
                "number": rated.number,
                "tariff": table.key,
                "prefix": rated.prefix,
                "destination": rated.destination,
                "billable_seconds": rated.billable_seconds,
                "price": from_micro(rated.price_micro, table.decimals),
            }
        for record in chunk:
            yield orjson.dumps(outcomes[record.offset]) + b"\n"


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
    for line in rate_lines(table, input_file, switch, engine):
        output_file.write(line)
    output_file.flush()
