"""Tariff tables the reseller may see: list, view with search, derive, upload a deck."""

from __future__ import annotations

import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path

from starlette.datastructures import UploadFile
from starlette.responses import Response

from rater.errors import TariffError, TariffImportError
from rater.money import Rounding
from rater.portal.web import Ctx
from rater.tariffs.cells import CellError, parse_date
from rater.tariffs.derive import derive
from rater.tariffs.importers import read_tariff_rows
from rater.tariffs.model import Steps

#: rows shown on a table's page (a search narrows them)
SHOWN = 200
#: problems of an upload listed by line
PROBLEMS = 200


def tariffs(ctx: Ctx) -> Response:
    store = ctx.scope.tariffs
    names = ctx.scope.visible_tariffs()
    owners = store.owners(names)
    tables = [(name, owners[name], store.infos(name)) for name in names]
    return ctx.render(
        "tariffs.html", title="Tariffs", tables=tables, problems=[], upload=None,
        steps_choices=["60/60", "30/6", "60/1", "1/1"],
    )  # fmt: skip


def tariff(ctx: Ctx) -> Response:
    name = ctx.scope.tariff(ctx.field("name"))
    version_text = ctx.field("version")
    version = int(version_text) if version_text.isdigit() else None
    table = ctx.scope.tariffs.get(name, version)
    query = ctx.field("q")
    rows = sorted(table.rows, key=lambda r: (r.prefix, r.effective_from is not None))
    if query:
        wanted = query.lstrip("+").replace(" ", "")
        if wanted.isdigit():
            rows = [r for r in rows if wanted.startswith(r.prefix) or r.prefix.startswith(wanted)]
        else:
            rows = [r for r in rows if query.lower() in r.destination.lower()]
    return ctx.render(
        "tariff.html", title=name, table=table, rows=rows[:SHOWN], total=len(rows), q=query,
        versions=ctx.scope.tariffs.infos(name), own=ctx.scope.tariffs.owner(name) != "",
    )  # fmt: skip


def _percent(text: str) -> Decimal:
    try:
        return Decimal(text.rstrip("%").strip())
    except InvalidOperation:
        raise TariffError(f"percentage {text!r} is not a number") from None


def derive_table(ctx: Ctx) -> Response:
    base = ctx.scope.tariff(ctx.field("base"))
    how = ctx.field("how")
    if how not in ("markup", "margin"):
        return ctx.back("/tariffs", error="choose markup or margin")
    name = ctx.field("name")
    try:
        percent = _percent(ctx.field("percent"))
        steps_text = ctx.field("steps")
        steps = Steps.parse(steps_text) if steps_text else None
        decimals_text = ctx.field("decimals")
        decimals = int(decimals_text) if decimals_text.isdigit() else None
        effective = parse_date(ctx.field("effective_from")) if ctx.field("effective_from") else None
        derived = derive(
            ctx.scope.tariffs.get(base), name=name, steps=steps, decimals=decimals,
            markup=percent if how == "markup" else None,
            margin=percent if how == "margin" else None,
        )  # fmt: skip
        saved = ctx.portal.tariffs(clickhouse=True).save(
            derived, effective_from=effective, owner=ctx.reseller_id
        )
    except (TariffError, CellError) as error:
        return ctx.back("/tariffs", error=str(error))
    return ctx.back(
        f"/tariffs/view?name={_q(saved.name)}",
        ok=f"saved {saved.name!r} version {saved.version}: {len(saved.rows)} rows, {saved.source}",
    )


def upload(ctx: Ctx) -> Response:
    deck = ctx.form.get("deck") if ctx.form is not None else None
    name = ctx.field("name")
    if not isinstance(deck, UploadFile) or not deck.filename:
        return ctx.back("/tariffs", error="choose a CSV or XLSX file to upload")
    suffix = Path(deck.filename).suffix.lower()
    if suffix not in (".csv", ".xlsx", ".txt"):
        return ctx.back("/tariffs", error=f"{deck.filename}: upload a .csv or .xlsx file")
    if ctx.scope.tariffs.infos(name) and not ctx.scope.may_see(name):
        return ctx.back("/tariffs", error=f"a table named {name!r} exists; choose another name")
    try:
        steps_text = ctx.field("steps")
        steps = Steps.parse(steps_text) if steps_text else None
        decimals_text = ctx.field("decimals") or "4"
        effective = parse_date(ctx.field("effective_from")) if ctx.field("effective_from") else None
        with tempfile.TemporaryDirectory(prefix="rater-deck-") as folder:
            path = Path(folder) / ("deck" + suffix)
            path.write_bytes(deck.file.read())
            summary = read_tariff_rows(
                path, name=name, currency=ctx.scope.reseller.currency, steps=steps,
                decimals=int(decimals_text) if decimals_text.isdigit() else 4,
                rounding=Rounding.UP, effective_from=effective,
            )  # fmt: skip
        if summary.table is None:
            ctx.status = 400
            store = ctx.scope.tariffs
            names = ctx.scope.visible_tariffs()
            owners = store.owners(names)
            return ctx.render(
                "tariffs.html", title="Tariffs",
                tables=[(n, owners[n], store.infos(n)) for n in names],
                problems=[str(p) for p in summary.problems[:PROBLEMS]],
                more_problems=max(len(summary.problems) - PROBLEMS, 0),
                upload=deck.filename, steps_choices=["60/60", "30/6", "60/1", "1/1"],
            )  # fmt: skip
        saved = ctx.portal.tariffs(clickhouse=True).save(
            summary.table, effective_from=effective, owner=ctx.reseller_id
        )
    except (TariffError, CellError) as error:
        return ctx.back("/tariffs", error=str(error))
    except TariffImportError as error:
        return ctx.back("/tariffs", error=str(error))
    return ctx.back(
        f"/tariffs/view?name={_q(saved.name)}",
        ok=f"saved {saved.name!r} version {saved.version}: {summary.rows_read} rows read, "
        f"{summary.prefixes} prefixes",
    )


def _q(text: str) -> str:
    from urllib.parse import quote  # noqa: PLC0415

    return quote(text, safe="")
