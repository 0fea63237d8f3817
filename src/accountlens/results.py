"""The one result type every metric and analysis answers with, whichever interface asked.

A `Result` holds the rows (a DataFrame), the typed columns, the level, the day it was computed
as of (resolved: never null), the engine that ran it and notes (a `limit` reached, warnings).
The CLI renders it as a table, JSON or CSV, the REST API sends `to_dict()`, the Python API
hands out `to_frame()`. Values are never rounded here; only the CLI's table rounds for display.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

ResultKind = Literal["metric", "metrics_table", "analysis"]
ColumnType = Literal["string", "integer", "number", "boolean", "date", "timestamp", "list", "object"]

@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType


@dataclass
class Result:
    kind: ResultKind
    name: str
    level: str | None
    as_of: dt.date
    engine: str
    frame: pd.DataFrame
    total_rows: int | None = None  # rows there were before `limit` cut them (None: all shown)
    notes: list[str] = field(default_factory=list)
    # The columns a terminal table shows when the rows are too wide to read there (JSON, CSV,
    # REST and Python carry every column); None: all of them.
    table_columns: list[str] | None = None
    offset: int = 0  # rows skipped before the first shown (paging)

    def __post_init__(self) -> None:
        if self.truncated and self.offset:
            first, last = self.offset + 1, self.offset + len(self.frame)
            self.notes.insert(0, f"showing rows {first:,}–{last:,} of {self.total_rows:,}"
                              if len(self.frame) else
                              f"no rows from offset {self.offset:,}: there are {self.total_rows:,}")
        elif self.truncated:
            self.notes.insert(0, f"showing {len(self.frame)} of {self.total_rows} rows "
                                 "(raise the limit to see more)")

    @property
    def truncated(self) -> bool:
        return self.total_rows is not None and self.total_rows > len(self.frame)

    @property
    def columns(self) -> list[Column]:
        return [Column(str(name), _column_type(self.frame[name])) for name in self.frame.columns]

    def records(self) -> list[dict[str, Any]]:
        """JSON-safe rows with the columns as keys (NaN → null, days and times → ISO text)."""
        return [{str(k): json_value(v) for k, v in row.items()}
                for row in self.frame.to_dict(orient="records")]

    def to_dict(self) -> dict[str, Any]:
        """The result as REST sends it."""
        return {"kind": self.kind, "name": self.name, "level": self.level,
                "as_of": self.as_of.isoformat(), "engine": self.engine,
                "columns": [{"name": c.name, "type": c.type} for c in self.columns],
                "rows": self.records(), "total_rows": self.total_rows, "notes": list(self.notes)}

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame; `attrs` holds what a reader needs besides them."""
        frame = self.frame.copy()
        frame.attrs = {"kind": self.kind, "name": self.name, "level": self.level,
                       "as_of": self.as_of, "engine": self.engine, "total_rows": self.total_rows,
                       "notes": list(self.notes)}
        return frame

    def describe(self) -> str:
        """One line naming what the rows are: `mau · level account · as of 2024-03-31 · duckdb`."""
        parts = [self.name]
        if self.level:
            parts.append(f"level {self.level}")
        parts += [f"as of {self.as_of.isoformat()}", self.engine]
        return " · ".join(parts)


def json_value(value: Any) -> Any:
    """A cell as JSON: NaN/NaT → null, timestamps and days → ISO text, numpy → Python."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas Timestamp (a datetime) and NaT
        return None if str(value) == "NaT" else value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return json_value(value.tolist())
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if str(value) in ("NaT", "<NA>"):
        return None
    return value


def _column_type(series: pd.Series) -> ColumnType:
    import pandas as pd

    kind = series.dtype
    if pd.api.types.is_bool_dtype(kind):
        return "boolean"
    if pd.api.types.is_integer_dtype(kind):
        return "integer"
    if pd.api.types.is_float_dtype(kind):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(kind):
        return "timestamp"
    sample = series.dropna()
    first = sample.iloc[0] if len(sample) else None
    if isinstance(first, bool):
        return "boolean"
    if isinstance(first, int):
        return "integer"
    if isinstance(first, float):
        return "number"
    if isinstance(first, dt.datetime):
        return "timestamp"
    if isinstance(first, dt.date):
        return "date"
    if isinstance(first, list | tuple) or hasattr(first, "tolist"):
        return "list"
    if isinstance(first, dict):
        return "object"
    return "string"
