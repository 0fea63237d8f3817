"""The analysis registry: each analysis declares its typed request and one run function.

The CLI, the REST API and the Python API are generated from this registry, so an analysis is
added by writing one module that calls `register`.
"""

from __future__ import annotations

import datetime as dt
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from accountlens.model import labels
from accountlens.model.as_of import default_as_of
from accountlens.model.entities import UNIT_DEPTH, UNIT_KINDS
from accountlens.model.retention_horizon import horizon_notes
from accountlens.registry import Registry
from accountlens.results import Result
from accountlens.store.base import ENGINES, Store
from accountlens.store.cache import BoundedCache

if TYPE_CHECKING:
    import pandas as pd

# Analyses compute up to this many rows; `limit` shows the first of them (and says how many
# there were), so requests that differ only in their limit share one kept result.
MAX_ROWS = 100_000


class AnalysisRequest(BaseModel):
    """Parameters every analysis understands; analyses extend it with their own."""

    model_config = ConfigDict(extra="forbid")

    as_of: dt.date | None = Field(default=None, description=(
        "last day included (default: the latest active event day, never after today)"))
    level: str = Field(default="role", description="grouping level")
    account: str | None = Field(default=None, description="restrict to one account id")
    limit: int = Field(default=50, ge=1, le=MAX_ROWS, description="at most this many rows")
    offset: int = Field(default=0, ge=0, description="skip this many rows (paging)")
    engine: Literal[ENGINES] = Field(  # type: ignore[valid-type]
        default="duckdb", description="the engine to run on (each analysis names its own)")


@dataclass(frozen=True)
class Analysis:
    name: str
    summary: str
    request: type[AnalysisRequest]  # declares `level` as a Literal of the supported levels
    # (store, settings, request) -> rows; notes for the reader (a fallback taken, too few
    # outcomes, a missing input) go in the frame's `attrs["notes"]` (a list of str), and the
    # columns a terminal table shows of wide rows in `attrs["table_columns"]`.
    run: Callable[[Store, Any, Any], pd.DataFrame]
    engines: tuple[str, ...] = ("duckdb",)  # the engines its queries are written for
    # The CLI command when it is not `accountlens NAME`: "GROUP SUB" puts it in a command group
    # that the group's own module builds (e.g. "attribution outcomes", "experiments analyze").
    command: str | None = None

    @property
    def levels(self) -> tuple[str, ...]:
        return typing.get_args(self.request.model_fields["level"].annotation)


class AnalysisError(ValueError):
    """A request an analysis cannot answer; the message says why."""


class NotFound(AnalysisError, LookupError):
    """A request naming something the workspace does not have (an experiment, a rule set
    version): REST answers 404."""


class EngineUnavailable(AnalysisError):
    """The engine asked for cannot run here (no Parquet export to read, no Java): REST answers
    409, as for metrics."""


REGISTRY: Registry[Analysis] = Registry(
    "analysis", "accountlens.analysis",
    ("handoffs", "collaboration", "sequences", "paths", "champions", "health", "predict",
     "backtest", "signals", "renewals", "value", "accounts", "activity", "anomalies", "reconcile",
     "attribution", "experiments"),
    group="accountlens.analyses", error=AnalysisError)


# Analyses not yet on Spark, and why: every registered analysis either names "spark" among its
# engines (its parity with DuckDB proven by tests/test_spark_analyses.py) or is listed here
# (docs/spark.md is checked against both).
SPARK_PENDING: dict[str, str] = {
    "predict": (
        "its queries are health's account-feature queries, which run on Spark, but parity is "
        "not yet proven: a model is trained on the features of every training and backtest "
        "cut-off (10 feature days in tests/test_predict.py's world, which has the 10 accounts "
        "of each class a model needs), and one feature day takes Spark local[2] 21-24 s warm "
        "against DuckDB's 1.2 s on the tests' 8-account demo (about 80 Spark queries of "
        "0.3-5 s each, mostly fixed planning and scheduling cost), so one parity case would "
        "take the Spark suite minutes past its time budget"),
    "backtest": (
        "trains predict's models at each test cut-off (predict's training windows again per "
        "cut-off): the same unproven parity as predict, at several times its cost"),
}


def register(analysis: Analysis) -> Analysis:
    """Add an analysis (built-in modules and third-party packages call this on import)."""
    return REGISTRY.register(analysis)


def load_all() -> dict[str, Analysis]:
    return REGISTRY.all()


def resolve_as_of(store: Store, as_of: dt.date | None) -> dt.date:
    """The request's day, or the default as-of (model/as_of.py)."""
    return as_of if as_of is not None else default_as_of(store)


# Results of recent requests, valid while the store's data and the settings are unchanged:
# the dashboard asks the same questions on every load, and at millions of events each takes
# seconds. Keyed by the store's data version, so any committed load or import invalidates.
_RESULTS = BoundedCache(64)
# A request being computed: others asking the same wait for it rather than compute it again
# (the dashboard and the background warmer often ask at the same moment).
_COMPUTING: dict[tuple, threading.Event] = {}
_LOCK = threading.Lock()


def request_for(name: str, params: dict[str, Any]) -> tuple[Analysis, AnalysisRequest]:
    """The analysis `name` and its typed request (pydantic checks the values)."""
    analysis = REGISTRY.get(name)
    if "level" in params and params["level"] not in analysis.levels:
        raise AnalysisError(
            f"{name} supports level {', '.join(analysis.levels)}, not {params['level']!r}")
    engine = params.get("engine", "duckdb")
    if engine not in analysis.engines:
        why = f" (not yet: {SPARK_PENDING[name]})" if engine == "spark" and name in SPARK_PENDING else ""
        raise EngineUnavailable(f"{name} runs on {', '.join(analysis.engines)}, not {engine!r}{why}")
    return analysis, analysis.request(**params)


def run_analysis(store: Store, settings: Any, name: str, cached: bool = True,
                 **params: Any) -> Result:
    """Run analysis `name` as of its day (the default as-of when not given); `limit` rows from
    row `offset` on, with how many there were when not all are shown. `cached=False` computes
    it even when a result is kept."""
    analysis, request = request_for(name, params)
    as_of = resolve_as_of(store, request.as_of)
    full = request.model_copy(update={"as_of": as_of, "limit": MAX_ROWS, "offset": 0})
    key = (store.instance, store.data_version, name, full.model_dump_json(),
           settings.model_dump_json() if isinstance(settings, BaseModel) else repr(settings))
    frame = _computed(key, lambda: analysis.run(store, settings, full), cached)
    shown = frame.iloc[request.offset:request.offset + request.limit].reset_index(drop=True)
    result = Result(kind="analysis", name=name, level=request.level, as_of=as_of,
                    engine=store.engine_name, frame=labels.with_names(store, shown),
                    total_rows=len(frame) if len(frame) > len(shown) else None,
                    offset=request.offset)
    result.notes.extend(frame.attrs.get("notes", []))
    result.notes.extend(horizon_notes(store, "analysis"))  # raw events expired (retention)
    if frame.attrs.get("table_columns"):
        result.table_columns = [c for c in result.frame.columns
                                if c in frame.attrs["table_columns"] or c.endswith("_name")]
    if len(frame) >= MAX_ROWS:
        result.notes.append(f"computed the first {MAX_ROWS} rows only")
    return result


def _computed(key: tuple, compute: Callable[[], pd.DataFrame], cached: bool) -> pd.DataFrame:
    """`compute()`, or the result kept under `key`; one computation at a time per key."""
    while cached:
        with _LOCK:
            kept = _RESULTS.get(key)
            if kept is not None:
                return kept
            computing = _COMPUTING.get(key)
            if computing is None:
                _COMPUTING[key] = threading.Event()
                break
        computing.wait()  # then look again: kept, or computed by us if that run failed
    try:
        result = compute()
        _RESULTS.put(key, result)  # kept before the waiters are woken
    except OverflowError as exc:
        raise AnalysisError(f"dates out of range for this request: {exc}") from exc
    finally:
        if cached:
            with _LOCK:
                _COMPUTING.pop(key).set()
    return result


def unit_level_sql(level: str) -> str:
    """SQL mapping each org unit (`unit_id`) to its nearest ancestor-or-self of kind `level`
    (`level_unit_id`, `level_name`), up to UNIT_DEPTH levels up.

    A chain of joins, one per level, rather than a recursive CTE: Spark 4.0 has none, and the
    same SQL then runs on every engine (the tree is small; the joins are cheap on both).
    """
    if level not in UNIT_KINDS:
        raise AnalysisError(f"unknown unit kind {level!r}")
    depths = range(UNIT_DEPTH + 1)
    joins = "\n".join(f"LEFT JOIN org_units u{d} ON u{d}.unit_id = u{d - 1}.parent_unit_id"
                       for d in depths if d)

    def nearest(column: str) -> str:
        return "CASE " + " ".join(f"WHEN u{d}.kind = '{level}' THEN u{d}.{column}"
                                  for d in depths) + " END"

    return f"""
        SELECT unit_id, level_name, level_unit_id FROM (
            SELECT u0.unit_id, {nearest("name")} AS level_name,
                   {nearest("unit_id")} AS level_unit_id
            FROM org_units u0 {joins}
        ) WHERE level_unit_id IS NOT NULL
    """


def level_label_sql(level: str) -> tuple[str, str]:
    """(join, label expression) of the entity at `level` — a unit kind, `unit`, `role`, `user`
    or `account` — of the rows `e` (events, or daily activity rows), joined as the label needs."""
    if level in UNIT_KINDS:
        return (f"LEFT JOIN ({unit_level_sql(level)}) um ON um.unit_id = e.unit_id",
                f"coalesce(um.level_name, '(no {level})')")
    if level == "unit":
        return ("LEFT JOIN org_units ou ON ou.unit_id = e.unit_id",
                "coalesce(ou.name, e.unit_id, '(no unit)')")
    return "", {"user": "e.user_id", "role": "coalesce(e.role, '(no role)')",
                "account": "e.account_id"}[level]


def actor_events_sql(level: str) -> str:
    """Active human events with `actor` = the label of the acting entity at `level`.

    Named parameters: `$start` (inclusive), `$end` (exclusive), `$account` (or NULL for all).
    """
    join, label = level_label_sql(level)
    return f"""
        SELECT e.message_id, e.account_id, e.user_id, e.role, e.unit_id, e.name, e.object_id,
               e.timestamp, {label} AS actor
        FROM events e {join}
        WHERE e.type IN ('track', 'page', 'screen') AND e.actor_kind = 'human'
          AND e.user_id IS NOT NULL AND e.account_id IS NOT NULL
          AND e.timestamp >= $start AND e.timestamp < $end
          AND (CAST($account AS VARCHAR) IS NULL OR e.account_id = $account)
    """


_EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_LATEST = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


def day_end(as_of: dt.date) -> dt.datetime:
    """The first instant after `as_of` (UTC midnight), clamped to the calendar."""
    try:
        return dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    except OverflowError:
        return _LATEST


# Time arithmetic on TIMESTAMPTZ goes through DuckDB's calendar (ICU) and costs 30-100x integer
# arithmetic on epoch microseconds (10M events: `ts + INTERVAL 7 DAY` ~1 s, epoch_us ~0.03 s).
# Days are UTC days (no daylight saving), so both give the same answer.
_US_PER_DAY = 86_400_000_000


def elapsed_sql(start: str, end: str, unit: str = "hours") -> str:
    """SQL: `end − start` in hours or days (a double), on epoch microseconds."""
    per = {"hours": _US_PER_DAY // 24, "days": _US_PER_DAY}[unit]
    return f"((epoch_us({end}) - epoch_us({start})) / {per}.0)"


def within_days_sql(start: str, end: str, days: int | str) -> str:
    """SQL: `end` is at most `days` (an integer or a SQL expression) days after `start`."""
    return f"(epoch_us({end}) - epoch_us({start}) <= CAST({days} AS BIGINT) * {_US_PER_DAY})"


def days_before(day: dt.date, days: int) -> dt.date:
    """`day` − `days`, clamped to the calendar's first day (a request may ask for year 1)."""
    return day - dt.timedelta(days=min(days, (day - dt.date.min).days))


def minus_days(moment: dt.datetime, days: float) -> dt.datetime:
    try:
        return max(moment - dt.timedelta(days=days), _EARLIEST)
    except OverflowError:
        return _EARLIEST


def window(as_of: dt.date, days: int) -> tuple[dt.datetime, dt.datetime]:
    """The days (as_of − days, as_of] as [start, end) timestamps at UTC midnight."""
    end = day_end(as_of)
    return minus_days(end, days), end
