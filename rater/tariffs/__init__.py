"""Tariff tables: reading decks, deriving sell tables, storing versions, compiling for kernels.

model.py      Steps, TariffRow, TariffTable, SwitchSettings (the shared contract)
cells.py      one cell of a deck: codes (lists, ranges, ^93.*), money, dates, steps, flags
layout.py     header aliases (code, dial codes, pattern, price, cost, Price 1/N, ...) -> roles
sources.py    CSV (delimiter, encoding) and XLSX files as numbered lines after the header
importers.py  read_tariff / read_tariff_rows: a deck -> TariffTable, every problem named
derive.py     derive(): markup or margin over a buy table, rounded up to the micro-unit
export.py     the canonical columns as CSV or XLSX
codec.py      a version as one compact blob (orjson columns, zlib)
store.py      TariffStore: versions in Redis, a copy in ClickHouse (tariff_versions/rows)
loader.py     TariffLoader: compiled tariffs for workers, recompiled when the store changes
compile.py    compile_tables(): versions -> arrays for the numba kernels
"""
