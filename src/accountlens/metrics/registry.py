"""The metric registry: a metric declares its name, levels, definition, inputs and one expression.

The registry does the rest — the `as_of` window, the level (`entity` column), account filters and
slices, the analysis model, running the query on the store and `explain` (SQL via Ibis). The CLI,
REST API, Python API and docs are generated from it. A metric may also declare `notes`: a second
expression whose `note` rows (caveats of the data it read) end up in the Result's notes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from accountlens.config import AnalysisSection, MetricsSection
from accountlens.metrics import levels as lv
from accountlens.model import labels, rollup
from accountlens.model.as_of import default_as_of
from accountlens.model.retention_horizon import horizon_notes
from accountlens.registry import Registry
from accountlens.results import Result
from accountlens.store.base import Store
from accountlens.store.cache import BoundedCache
from accountlens.store.catalog import table

# Levels each analysis model exposes (SPEC: user, account, loose, linked, advanced).
MODEL_LEVELS: dict[str, frozenset[str]] = {
    "user": frozenset({"user"}),
    "account": frozenset({"account", "all"}),
    "loose": frozenset({"user", "account", "all"}),
    "linked": frozenset({"user", "account", "all"}),
    "advanced": frozenset(lv.LEVELS),
}
LINKED_MODELS = ("linked", "advanced")
# Windows reach a year back and a day ahead of as_of; keep that inside the calendar.
_EARLIEST, _LATEST = dt.date(2, 1, 1), dt.date(9999, 11, 30)


class MetricError(ValueError):
    """A metric request that cannot be answered; the message says why."""


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Metric:
    name: str
    family: str
    levels: tuple[str, ...]
    definition: str
    inputs: tuple[str, ...]
    build: Callable[[Context], ir.Table]  # returns `entity` + value columns
    params: type[BaseModel] = NoParams
    models: tuple[str, ...] = tuple(MODEL_LEVELS)  # analysis models in which it is offered
    tabular: bool = True  # one row per entity of the level: can be a column of a metrics table
    # Caveats for the reader as rows of a `note` text column, from the same Context (e.g.
    # accounts acquired before tracking began); none if not given.
    notes: Callable[[Context], ir.Table] | None = None


REGISTRY: Registry[Metric] = Registry(
    "metric", "accountlens.metrics",
    ("adoption", "activation", "contract", "funnel", "retention", "revenue", "linked"),
    group="accountlens.metrics", error=MetricError)


def register(metric: Metric) -> Metric:
    """Add a metric (built-in modules and third-party packages call this on import)."""
    return REGISTRY.register(metric)


def load_all() -> dict[str, Metric]:
    return REGISTRY.all()


@dataclass
class Context:
    """What a metric's expression is built from: tables already windowed to `as_of` and levelled."""

    as_of: dt.date
    level: str
    settings: MetricsSection
    params: BaseModel
    activity_all: ir.Table  # rollup up to as_of, unfiltered (global denominators)
    activity: ir.Table  # filtered rollup with `entity` (user levels) — rows of no entity dropped
    accounts: ir.Table  # accounts known on as_of, filtered, with slice values (+ `entity`)
    # first human moment of each (account, user, event name) up to as_of (scope it to use it)
    user_firsts: ir.Table
    stored_account_days: ir.Table  # `account_days` up to as_of, unfiltered: read account_days()
    filters: Mapping[str, list[str]] = field(default_factory=dict)
    stored: bool = True  # the materialized tables are current (else computed from the events)

    @property
    def account_level(self) -> bool:
        return self.level in lv.ACCOUNT_LEVELS

    def since(self, days: int) -> dt.date:
        """First day excluded from the window `(as_of − days, as_of]`."""
        try:
            return self.as_of - dt.timedelta(days=days)
        except OverflowError:
            return dt.date.min

    def window(self, t: ir.Table, days: int) -> ir.BooleanValue:
        return (t.day > self.since(days)) & (t.day <= self.as_of)

    @staticmethod
    def human(t: ir.Table) -> ir.BooleanValue:
        return (t.actor_kind == "human") & t.user_id.notnull()

    def recent(self, days: int, human: bool = True) -> ir.Table:
        """`activity` rows of the window (as_of − days, as_of], human ones only unless told,
        with the columns window metrics read: windows up to 30 days are cut from one narrow
        30-day set, so the metrics of one query can share it."""
        a = self.activity
        rows = a.filter(self.window(a, max(days, RECENT_DAYS))).select(*_RECENT_COLUMNS)
        if days < RECENT_DAYS:
            rows = rows.filter(rows.day > self.since(days))
        return rows.filter(self.human(rows)) if human else rows

    def scoped(self, rows: ir.Table) -> ir.Table:
        """Activity-shaped `rows` (rollup rows or raw events) filtered as the request says,
        with the level's `entity`; rows that belong to no entity dropped."""
        if "user" in self.filters:
            rows = rows.filter(rows.user_id.isin(self.filters["user"]))
        return self._levelled(rows)

    def _levelled(self, rows: ir.Table) -> ir.Table:
        if any(key != "user" for key in self.filters):
            rows = rows.filter(rows.account_id.isin(self.accounts.account_id))
        return lv.activity_entity(rows, self.level, self.accounts)

    def account_days(self) -> ir.Table:
        """Account levels: active events per account and day (day, account_id, events,
        first_at, last_at, entity) as the request says — `account_days`, or, when the request
        keeps only some users (that table has none), the same from their rollup rows."""
        if "user" in self.filters:
            a = self.activity_all
            return self._levelled(rollup.account_days_expression(
                a.filter(a.user_id.isin(self.filters["user"]))))
        return self._levelled(self.stored_account_days)

    def entities(self) -> ir.Table:
        """Every entity of the level that exists on as_of (so metrics can report zeros)."""
        if self.account_level:
            return self.accounts.select("entity").distinct()
        rows = self.activity
        if self.level == "user":
            rows = rows.filter(self.human(rows))
        return rows.select("entity").distinct()

    def complete(self, values: ir.Table, **fill: Any) -> ir.Table:
        """`values` for every entity, with `fill` where an entity has no row."""
        joined = self.entities().left_join(values, "entity").select(~ibis.selectors.endswith("_right"))
        return joined.mutate(**{k: joined[k].fill_null(v) for k, v in fill.items()})

    def per_account(self, values: ir.Table) -> ir.Table:
        """Attach the level's entity to per-account `values` (account levels only)."""
        return self.accounts.select("account_id", "entity").inner_join(values, "account_id").select(
            ~ibis.selectors.endswith("_right"))


RECENT_DAYS = 30
_RECENT_COLUMNS = ("entity", "day", "account_id", "user_id", "actor_kind", "name", "product", "events")


def end_of(day: dt.date) -> ir.TimestampValue:
    """The first instant after `day` (UTC midnight): events up to `day` are before it."""
    return ibis.timestamp(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC))


def ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    """numerator ÷ denominator, NULL when the denominator is 0 or missing."""
    return ibis.cases((denominator > 0, numerator.cast("float64") / denominator), else_=None)


# ----------------------------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricRequest:
    name: str
    level: str | None = None
    as_of: dt.date | None = None
    filters: Mapping[str, list[str]] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)


def get(name: str) -> Metric:
    return REGISTRY.get(name)


def as_date(value: str | dt.date | None, what: str = "as_of") -> dt.date | None:
    """A day given as a date or YYYY-MM-DD text (None stays None)."""
    if value is None or isinstance(value, dt.datetime):
        return value.date() if isinstance(value, dt.datetime) else None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise MetricError(f"{what} must be a date YYYY-MM-DD, not {value!r}") from exc


def metric_request(name: str, level: str | None = None, as_of: str | dt.date | None = None,
                   filters: Mapping[str, Any] | None = None,
                   params: Mapping[str, Any] | None = None) -> MetricRequest:
    """The one way a metric request is made (CLI, REST and Python): the day parsed, the
    account filters checked and normalized, the parameters kept for the metric to check."""
    return MetricRequest(name=name, level=level, as_of=as_date(as_of),
                         filters=normalize_filters(filters),
                         params={k: v for k, v in (params or {}).items() if v is not None})


def available_levels(metric: Metric, model: str) -> tuple[str, ...]:
    if model not in metric.models:
        return ()
    return tuple(level for level in metric.levels if level in MODEL_LEVELS[model])


def available(model: str) -> list[Metric]:
    return [m for m in load_all().values() if available_levels(m, model)]


def normalize_filters(filters: Mapping[str, Any] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if key not in lv.FILTERS:
            raise MetricError(f"unknown filter {key!r}; use one of {', '.join(lv.FILTERS)}")
        values = [value] if isinstance(value, str) else list(value)
        if not values or not all(isinstance(v, str) for v in values):
            raise MetricError(f"filter {key} needs one or more text values")
        out.setdefault(key, []).extend(values)
    return out


def build_expression(metric: Metric, request: MetricRequest, settings: MetricsSection,
                     model: str, as_of: dt.date, inline: bool = False) -> tuple[ir.Table, str]:
    """The metric's full expression for `request` and the level it ran at."""
    ctx = context(metric, request, settings, model, as_of, inline)
    expr = metric.build(ctx)
    key = key_column(ctx.level)
    return expr.rename({key: "entity"}) if "entity" in expr.columns else expr, ctx.level


def context(metric: Metric, request: MetricRequest, settings: MetricsSection, model: str,
            as_of: dt.date, inline: bool = False) -> Context:
    """What `metric`'s expressions for `request` are built from (the level checked)."""
    as_of = min(max(as_of, _EARLIEST), _LATEST)  # the calendar's edges: no data there anyway
    allowed = available_levels(metric, model)
    if not allowed:
        raise MetricError(f"{metric.name} is not offered by the {model!r} analysis model "
                          f"(analysis.model in accountlens.toml); it needs one of "
                          f"{', '.join(metric.models)}")
    level = request.level or allowed[0]
    if level not in allowed:
        raise MetricError(f"{metric.name} supports level {', '.join(allowed)} under the "
                          f"{model!r} analysis model, not {level!r}")
    try:
        params = metric.params(**request.params)
    except ValidationError as exc:
        raise MetricError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                    for e in exc.errors())) from exc
    source = rollup.rollup_expression(table("events")) if inline else table(rollup.ROLLUP)
    upto = source.filter(source.day <= as_of)
    filters = dict(request.filters)
    slices = frozenset(key for key in (level, *filters) if key in lv.SLICES)
    firsts = rollup.derived(rollup.FIRSTS, upto, inline)
    accounts = lv.account_attributes(as_of, upto, firsts, settings, slices)
    for key, values in filters.items():
        if key == "account":
            accounts = accounts.filter(accounts.account_id.isin(values))
        elif key != "user":
            accounts = accounts.filter(accounts[key].isin(values))
    if level in lv.ACCOUNT_LEVELS:
        accounts = lv.account_entity(accounts, level)
    user_firsts = rollup.derived(rollup.USER_FIRSTS, upto, inline)
    # (a key's stored first moment is its first up to as_of iff its day is on or before as_of)
    user_firsts = user_firsts.filter(user_firsts.first_day <= as_of)
    days = rollup.derived(rollup.ACCOUNT_DAYS, upto, inline)
    ctx = Context(as_of=as_of, level=level, settings=settings, params=params, activity_all=upto,
                  activity=upto, accounts=accounts, user_firsts=user_firsts,
                  stored_account_days=days.filter(days.day <= as_of), filters=filters,
                  stored=not inline)
    ctx.activity = ctx.scoped(upto)
    return ctx


def key_column(level: str) -> str:
    """The name of a result's entity column at `level`: the id column of users, accounts and
    org units (`user_id`, `account_id`, `unit_id` at every unit level), else the level's own
    name (`role`, a slice such as `industry`), and `scope` for `all`."""
    if level in ("user", "account"):
        return f"{level}_id"
    if level == "unit" or level in lv.UNIT_KINDS:
        return "unit_id"
    return "scope" if level == "all" else level


# Building and compiling a metric's expression costs ~0.3 s, more than running it on a small
# workspace: the SQL of recent requests is kept (it depends only on the key, never on data).
_COMPILED = BoundedCache(256)
_ROWS = BoundedCache(64)  # the rows of recent metric requests, by data version (run())


def compiled(store: Store, key: tuple, build: Callable[[], ir.Table]) -> tuple[str, Any]:
    """(SQL, result schema) of the expression `build()` makes, kept under `key`."""
    key = (store.dialect, *key)
    kept = _COMPILED.get(key)
    if kept is None:
        table = build().as_table()
        kept = (store.compile(table), table.schema())
        _COMPILED.put(key, kept)
    return kept


def prepare(store: Store, request: MetricRequest, settings: MetricsSection,
            read_only: bool = False) -> tuple[dt.date, bool]:
    """(as_of, inline) of a request: the rollup (and the invites for `settings`) made current
    if it can be (else queries read the events inline) and the day resolved."""
    try:
        fresh = rollup.ensure_fresh(store, read_only=read_only, settings=settings)
    except Exception:  # noqa: BLE001 - a read-only store cannot build it: query events inline
        fresh = False
    return request.as_of or default_as_of(store, rollup_fresh=fresh), not fresh


_SORT_KEYS = (*lv.LEVELS, "scope", "account_id", "user_id", "unit_id", "cohort", "period",
              "stage_order", "stage", "entitlement")


def fetch(store: Store, sql: str, schema: Any) -> pd.DataFrame:
    """Run compiled SQL; a DataFrame sorted by its key columns."""
    frame = _plain_types(store.run_compiled(sql, schema)).to_pandas()
    keys = [c for c in frame.columns if c in _SORT_KEYS]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True) if keys else frame


def level_of(metric: Metric, request: MetricRequest, model: str) -> str:
    """The level a request runs at (its own, else the metric's first under `model`)."""
    allowed = available_levels(metric, model)
    return request.level or (allowed[0] if allowed else "")


def result(store: Store, kind: Any, name: str, level: str, as_of: dt.date,
           frame: pd.DataFrame, notes: list[str] | None = None) -> Result:
    """A metric's rows as a Result, with names next to their ids."""
    return Result(kind=kind, name=name, level=level, as_of=as_of, engine=store.engine_name,
                  frame=labels.with_names(store, frame), notes=list(notes or []))


def metric_notes(store: Store, metric: Metric, request: MetricRequest, settings: MetricsSection,
                 model: str, as_of: dt.date, inline: bool) -> list[str]:
    """The notes `metric` declares for `request`, as of the resolved day (none if it declares
    none)."""
    notes = metric.notes
    if notes is None:
        return []
    sql, schema = compiled(
        store, ("notes", repr(request), as_of, inline, model, settings.model_dump_json()),
        lambda: notes(context(metric, request, settings, model, as_of, inline)))
    return [str(note) for note in fetch(store, sql, schema)["note"].dropna()]


def run(store: Store, settings: MetricsSection, analysis: AnalysisSection,
        request: MetricRequest, read_only: bool = False) -> Result:
    """Run one metric on the store: its rows (the level's column first) as a Result. The rows
    are kept while the store's data and the settings are unchanged: the web app asks the same
    metrics on every visit of a page (the AARRR funnel at 10M events: 3 s each time)."""
    metric = get(request.name)
    as_of, inline = prepare(store, request, settings, read_only)
    model = analysis.model
    compile_key = (repr(request), as_of, inline, model, settings.model_dump_json())

    def rows() -> tuple[pd.DataFrame, list[str]]:
        sql, schema = compiled(store, compile_key, lambda: build_expression(
            metric, request, settings, model, as_of, inline=inline)[0])
        return (fetch(store, sql, schema),
                metric_notes(store, metric, request, settings, model, as_of, inline)
                + horizon_notes(store, "metric", from_rollup=not inline))  # raw events expired

    frame, notes = _ROWS.kept((store.instance, store.data_version, *compile_key), rows)
    return result(store, "metric", metric.name, level_of(metric, request, model), as_of,
                  frame.copy(), notes)


def _plain_types(result: pa.Table) -> pa.Table:
    """Engine sums of integers come back as decimals; give them plain int64 / float64 types."""
    for i, column in enumerate(result.schema):
        if pa.types.is_decimal(column.type):
            target = pa.int64() if column.type.scale == 0 else pa.float64()
            result = result.set_column(i, column.name, result.column(i).cast(target))
    return result


def explain(store: Store | None, settings: MetricsSection, analysis: AnalysisSection,
            request: MetricRequest, dialect: str = "duckdb") -> dict[str, Any]:
    """Definition, inputs and the SQL a metric runs (data lineage): the store's SQL, if given."""
    metric = get(request.name)
    as_of = request.as_of or (default_as_of(store) if store is not None else None)
    as_of = as_of or dt.datetime.now(dt.UTC).date()
    expr, level = build_expression(metric, request, settings, analysis.model, as_of)
    return {
        "name": metric.name, "family": metric.family, "definition": metric.definition,
        "inputs": list(metric.inputs), "levels": list(available_levels(metric, analysis.model)),
        "level": level, "as_of": as_of.isoformat(),
        "sql": store.compile(expr) if store is not None else ibis.to_sql(expr, dialect=dialect),
    }
