"""Records of CDR files: which files a path names, and how a file splits into records.

A format says how its files split (rater/pipeline/formats/): one record a line (JSONL;
cdr_kafka and acc_json records), one CSV record a line where a quoted field may hold a line
break (cdr_csv doubles quotes inside fields, so an odd count of quotes means the record goes
on), or one record a file (mod_json_cdr's log-dir and err-log-dir files, `*.cdr.json`). A
JSONL file (`.jsonl`, `.ndjson`) is one record a line whatever the format.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from rater.errors import ConfigError

#: files a directory is searched for (recursively)
SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv")
LINE_SUFFIXES = (".jsonl", ".ndjson")


def files_of(paths: Sequence[Path]) -> list[Path]:
    """The files named: files as given, directories searched for CDR files, in name order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            out += found
        elif path.is_file():
            out.append(path)
        else:
            raise ConfigError(f"no such file or directory: {path}")
    return out


def splitting(path: Path, files: str) -> str:
    """How this file splits: "lines", "csv" or "document"."""
    if path.name.endswith(LINE_SUFFIXES):
        return "lines"
    return files


def records_of(path: Path, how: str) -> Iterator[bytes]:
    """The records of one whole file."""
    if how == "document":
        data = path.read_bytes().strip()
        if data:
            yield data
        return
    with path.open("rb") as handle:
        yield from split(handle.read(), how, final=True)[0]


def split(data: bytes, how: str, *, final: bool) -> tuple[list[bytes], int]:
    """(complete records in `data`, bytes they take). Without `final`, a last line without its
    newline is not complete yet (a switch is still writing it)."""
    records: list[bytes] = []
    used = 0
    start = 0
    pending: list[bytes] = []
    quotes = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            if final and start < len(data):
                pending.append(data[start:])
                record = b"\n".join(pending).rstrip(b"\r")
                if record.strip():
                    records.append(record)
                used = len(data)
            return records, used
        line = data[start:end]
        start = end + 1
        if how == "csv":
            pending.append(line.rstrip(b"\r"))
            quotes += line.count(b'"')
            if quotes % 2:
                continue  # inside a quoted field: the record goes on
            record = b"\n".join(pending)
            pending, quotes = [], 0
        else:
            record = line.rstrip(b"\r")
        if record.strip():
            records.append(record)
        used = start
