"""Reading CSV files strictly: standard CSV (comma, double quotes), the header's columns, and a
clear error naming the line of a ragged row or an unterminated quote.

DuckDB's CSV sniffer, left to itself, reads a file with a ragged row as one column of whole
lines (every row then fails later for a reason that hides the real one, or half the rows load);
with the dialect and the columns given, its strict mode names the line instead.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from pathlib import Path

# (`skip = 0`: else the sniffer may take a later line, e.g. a ragged one, for the header)
DIALECT = ("delim = ',', quote = '\"', escape = '\"', skip = 0, strict_mode = true, "
           "null_padding = false")
_LINE_ERROR = re.compile(r"CSV Error on Line: (\d+)\s*\nOriginal Line: ?(.*?)Possible fixes", re.S)


class CsvProblem(ValueError):
    """A CSV that cannot be read; `problems` are `file:line: reason` texts."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def opener(path: Path):
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def header(path: Path) -> list[str]:
    """The column names of the file's first line."""
    try:
        with opener(path) as text:
            first = next(csv.reader(text), None)
    except (OSError, EOFError, zlib.error) as exc:
        raise CsvProblem([f"{path}: cannot read it: {exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise CsvProblem([f"{path}: not UTF-8 text ({exc})"]) from exc
    except csv.Error as exc:
        raise CsvProblem([f"{path}:1: not a CSV header ({exc})"]) from exc
    if not first or not any(name.strip() for name in first):
        raise CsvProblem([f"{path}:1: no header line (the first line names the columns)"])
    names = [name.strip() for name in first]
    seen: set[str] = set()
    for number, name in enumerate(names, start=1):
        if not name:
            raise CsvProblem([f"{path}:1: column {number} has no name"])
        if name in seen:
            raise CsvProblem([f"{path}:1: column {name!r} appears twice"])
        seen.add(name)
    return names


def strict_reader(names: list[str]) -> str:
    """`read_csv(?, …)` of a file whose header is `names`: every column text, strictly parsed."""
    columns = ", ".join(f"'{_quoted(n)}': 'VARCHAR'" for n in names)
    return f"read_csv(?, header = true, auto_detect = false, columns = {{{columns}}}, {DIALECT})"


def typed_reader() -> str:
    """`read_csv(?, …)` with the standard dialect and column types detected."""
    return f"read_csv(?, header = true, {DIALECT})"


def problem(path: Path, exc: Exception) -> list[str]:
    """The line and reason of DuckDB's CSV error `exc`, as `file:line: reason`."""
    text = str(exc)
    found = _LINE_ERROR.search(text)
    if found is None:
        return [f"{path}: cannot read as CSV: {text.splitlines()[0] if text else exc!r}"]
    line, detail = found.group(1), [part.strip() for part in found.group(2).splitlines()]
    original, reason = detail[0], next(part for part in reversed(detail) if part)
    shown = original if len(original) <= 80 else original[:77] + "…"
    return [f"{path}:{line}: {reason} (the line: {shown!r})"]


def _quoted(name: str) -> str:
    return name.replace("'", "''")
