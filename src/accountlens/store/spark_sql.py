"""The workspace's query dialect (DuckDB SQL with `$name` and `?` parameters), as Spark SQL.

Analyses send DuckDB SQL through `Store.df` / `execute`; the Spark store translates it here:
parameters become typed literals built as sqlglot expressions (a user's value never reaches SQL
text), sqlglot transpiles DuckDB to Spark, and the few forms it gets wrong or lacks are rewritten
first (`REWRITES`, one small function each). Statements are classified: a query, a temporary
table (Spark: a cached temporary view), or dropping one. Translations are kept per SQL text:
analyses send the same text with different parameters.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
import sqlglot.expressions as exp
from sqlglot.tokens import TokenType

READ, WRITE = "duckdb", "spark"


class UnsupportedSQL(ValueError):
    """SQL the Spark store cannot run: a form with no Spark translation."""


class WriteSQL(UnsupportedSQL):
    """A statement that writes (the Spark store reads a Parquet export; it never writes)."""


@dataclass(frozen=True)
class Statement:
    """One translated statement: `kind` is "query", "temp" (create the temporary table `name`
    from `sql`) or "drop" (drop the temporary table `name`)."""

    kind: str
    sql: str
    name: str = ""


# --- parameters -----------------------------------------------------------------------------------
def _numbered(sql: str) -> tuple[str, int]:
    """`sql` with each positional `?` named `$_p0`, `$_p1`, ... (found by the tokenizer, so a `?`
    inside a string or comment stays), and how many there were."""
    tokens = [t for t in sqlglot.Dialect.get_or_raise(READ).tokenize(sql)
              if t.token_type == TokenType.PLACEHOLDER and t.text == "?"]
    parts, last = [], 0
    for number, token in enumerate(tokens):
        parts += [sql[last:token.start], f"$_p{number}"]
        last = token.end + 1
    return "".join(parts) + sql[last:], len(tokens)


def literal(value: Any) -> exp.Expression:
    """A Python value as a typed Spark SQL literal expression."""
    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(repr(value) if isinstance(value, float) else value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, dt.datetime):  # the session's time zone is UTC (store/spark.py)
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), "DATE")
    if isinstance(value, list | tuple | set | frozenset):
        items = [literal(v) for v in (sorted(value) if isinstance(value, set | frozenset) else value)]
        if not items:  # Spark types an empty array as ARRAY<VOID>: say what it holds
            return exp.cast(exp.Array(expressions=[]), exp.DataType.build("ARRAY<STRING>", dialect=WRITE))
        return exp.Array(expressions=items)
    raise UnsupportedSQL(f"a parameter of type {type(value).__name__} has no Spark literal")


def _bind(tree: exp.Expression, params: Mapping[str, Any],
          tables: Mapping[str, str]) -> exp.Expression:
    """`tree` with its parameters as literals and the tables named in `tables` renamed."""
    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.this:
            if node.this not in params:
                raise UnsupportedSQL(f"no value for parameter ${node.this}")
            return literal(params[node.this])
        if isinstance(node, exp.Table) and not node.args.get("db") and node.name in tables:
            return exp.Table(this=exp.to_identifier(tables[node.name]),
                             alias=node.args.get("alias") or exp.TableAlias(
                                 this=exp.to_identifier(node.name)))
        return node

    return tree.transform(replace, copy=True)


# --- rewrites sqlglot does not make (or makes wrong) for Spark ------------------------------------
def _rename(name: str) -> Callable[[exp.Expression], exp.Expression]:
    def rewrite(node: exp.Expression) -> exp.Expression:
        return exp.Anonymous(this=name, expressions=node.expressions)
    return rewrite


_STRFTIME = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss",
             "%j": "DDD", "%b": "MMM", "%B": "MMMM", "%a": "EEE", "%A": "EEEE", "%y": "yy"}


def _java_format(fmt: str) -> str:
    """A strftime format as a Java DateTimeFormatter pattern (letters quoted as literals)."""
    out = []
    for piece in re.split(r"(%.)", fmt):
        if piece in _STRFTIME:
            out.append(_STRFTIME[piece])
        elif piece.startswith("%"):
            raise UnsupportedSQL(f"strftime format {piece} has no Spark translation")
        elif piece:
            quoted = "".join(f"'{c}'" if c.isalpha() else c for c in piece.replace("'", "''"))
            out.append(quoted)
    return "".join(out)


def _strftime(node: exp.Expression) -> exp.Expression:
    fmt = node.args.get("format")
    if not isinstance(fmt, exp.Literal):
        return node
    return exp.Anonymous(this="date_format", expressions=[node.this, exp.Literal.string(
        _java_format(fmt.this))])


def _epoch(node: exp.Expression) -> exp.Expression:
    # DuckDB's epoch() is seconds as a double; unix_timestamp would drop the fraction.
    return exp.Div(this=exp.Anonymous(this="unix_micros", expressions=[node.this]),
                   expression=exp.Literal.number("1e6"))


def _quantile(node: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="percentile", expressions=[node.this, node.expression])


def _by(node: exp.Expression) -> exp.Expression:
    """arg_min / arg_max: DuckDB skips rows whose value is NULL, Spark's min_by / max_by do not
    (they skip NULL orderings only); a tuple ordering is a struct (compared field by field)."""
    ordering = node.expression
    if isinstance(ordering, exp.Tuple):
        ordering = exp.Anonymous(this="struct", expressions=ordering.expressions)
    ordering = exp.If(this=exp.Not(this=exp.Is(this=node.this.copy(), expression=exp.null())),
                      true=ordering, false=exp.null())
    return exp.Anonymous(this="min_by" if isinstance(node, exp.ArgMin) else "max_by",
                         expressions=[node.this, ordering])


def _list(node: exp.Expression) -> exp.Expression:
    """list(x [ORDER BY k, ...]): Spark's collect_list drops NULLs and takes no ORDER BY, so
    collect structs (never NULL) of the sort keys and the value, sort them, keep the values."""
    value = node.this if isinstance(node, exp.ArrayAgg) else (node.expressions or [None])[0]
    keys: list[exp.Expression] = []
    if isinstance(value, exp.Order):
        for key in value.expressions:
            if key.args.get("desc"):
                raise UnsupportedSQL("list(... ORDER BY ... DESC) has no Spark translation")
            keys.append(key.this)
        value = value.this
    if isinstance(value, exp.Distinct):  # list(DISTINCT x [ORDER BY x]): a sorted set
        value = value.expressions[0]
        if any(key != value for key in keys):
            raise UnsupportedSQL("list(DISTINCT x ORDER BY y) has no Spark translation")
        return exp.Anonymous(this="array_sort", expressions=[
            exp.Anonymous(this="collect_set", expressions=[value])])
    if value is None:
        return node
    fields = [exp.alias_(k, f"k{i}") for i, k in enumerate(keys)] + [exp.alias_(value, "v")]
    collected = exp.Anonymous(this="collect_list", expressions=[
        exp.Anonymous(this="struct", expressions=fields)])
    if keys:
        collected = exp.Anonymous(this="array_sort", expressions=[collected])
    item = exp.to_identifier("item")
    return exp.Anonymous(this="transform", expressions=[collected, exp.Lambda(
        this=exp.Dot(this=exp.column(item), expression=exp.to_identifier("v")),
        expressions=[item])])


def _filtered_list(node: exp.Expression) -> exp.Expression:
    """list(...) FILTER (WHERE c): the filter goes on the collecting aggregate inside."""
    if not isinstance(node.this, exp.List | exp.ArrayAgg):
        return node
    rewritten = _list(node.this)
    collect = next((n for n in rewritten.find_all(exp.Anonymous)
                    if n.name.lower() in ("collect_list", "collect_set")), None)
    if collect is None:
        return node
    collect.replace(exp.Filter(this=collect.copy(), expression=node.expression))
    return rewritten


def _string_agg(node: exp.Expression) -> exp.Expression:
    """string_agg(DISTINCT x, sep [ORDER BY x]): the sorted set joined. Spark's DISTINCT
    listagg with an order fails at run time next to other DISTINCT aggregates (a
    ClassCastException in its distinct-aggregate rewrite). NULLs are skipped, as DuckDB does;
    no value at all is NULL."""
    order = node.this
    value = order.this if isinstance(order, exp.Order) else order
    keys = order.expressions if isinstance(order, exp.Order) else []
    if not isinstance(value, exp.Distinct) or len(value.expressions) != 1:
        return node
    value = value.expressions[0]
    if any(key.args.get("desc") or key.this != value for key in keys):
        raise UnsupportedSQL("string_agg(DISTINCT x ORDER BY y) has no Spark translation")
    values = exp.Anonymous(this="array_sort", expressions=[
        exp.Anonymous(this="collect_set", expressions=[value])])
    separator = node.args.get("separator") or exp.Literal.string(",")
    joined = exp.Anonymous(this="array_join", expressions=[values, separator])
    empty = exp.EQ(this=exp.Anonymous(this="size", expressions=[values.copy()]),
                   expression=exp.Literal.number(0))
    return exp.If(this=empty, true=exp.null(), false=joined)


def _days(node: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="make_dt_interval", expressions=[node.this])


def _anonymous(node: exp.Expression) -> exp.Expression:
    name = node.name.lower()
    if name in _ANONYMOUS:
        return _ANONYMOUS[name](node)
    return node


_ANONYMOUS: dict[str, Callable[[exp.Expression], exp.Expression]] = {
    "epoch_us": _rename("unix_micros"),
}
def _double(node: exp.Expression) -> exp.Expression:
    # Spark reads `1.0` as a DECIMAL, and decimal arithmetic gives decimals where DuckDB gives
    # doubles (DuckDB's decimal literals widen to DOUBLE in division); write them as doubles.
    if node.is_number and not node.is_int and "e" not in node.this.lower():
        return exp.cast(node.copy(), "DOUBLE")
    return node


REWRITES: dict[type[exp.Expression], Callable[[exp.Expression], exp.Expression]] = {
    exp.Anonymous: _anonymous,
    exp.Literal: _double,
    exp.TimeToStr: _strftime,
    exp.TimeToUnix: _epoch,
    exp.PercentileCont: _quantile,
    exp.ArgMin: _by,
    exp.ArgMax: _by,
    exp.List: _list,
    exp.ArrayAgg: _list,
    exp.ToDays: _days,
    exp.GroupConcat: _string_agg,
    exp.Filter: _filtered_list,
}


def _rewritten(tree: exp.Expression) -> exp.Expression:
    def rewrite(node: exp.Expression) -> exp.Expression:
        step = REWRITES.get(type(node))
        return step(node) if step else node

    return tree.transform(rewrite, copy=False)


# --- statements ----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=512)
def _prepared(sql: str) -> tuple[str, exp.Expression, str, int]:
    """(kind, the rewritten query tree, temp table name, number of positional parameters)."""
    text, positional = _numbered(sql)
    try:
        tree = sqlglot.parse_one(text, read=READ)
    except sqlglot.errors.ParseError as exc:
        raise UnsupportedSQL(f"cannot read this SQL for Spark: {exc}") from exc
    if isinstance(tree, exp.Drop):
        if tree.args.get("kind") not in ("TABLE", "VIEW") or not tree.args.get("exists"):
            raise WriteSQL("the Spark engine drops only its own temporary tables")
        return "drop", tree, tree.this.name, positional
    if isinstance(tree, exp.Create):
        properties = tree.args.get("properties")
        temporary = properties is not None and properties.find(exp.TemporaryProperty) is not None
        if not temporary or not isinstance(tree.expression, exp.Query):
            raise WriteSQL("the Spark engine creates only temporary tables from a query")
        return "temp", _rewritten(tree.expression), tree.this.name, positional
    if not isinstance(tree, exp.Query | exp.Values):
        raise WriteSQL(f"the Spark engine runs queries only, not {tree.key.upper()}")
    return "query", _rewritten(tree), "", positional


def translate(sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None,
              tables: Mapping[str, str] | None = None) -> Statement:
    """`sql` (DuckDB dialect) with `params` bound, as a Spark SQL statement; `tables`: temporary
    tables by the name the SQL uses -> the view that holds them."""
    kind, tree, name, positional = _prepared(sql)
    if kind == "drop":
        return Statement("drop", "", name)
    if isinstance(params, Mapping):
        values: Mapping[str, Any] = params
    else:
        given = list(params or ())
        if len(given) != positional:
            raise UnsupportedSQL(f"the SQL has {positional} positional parameters, "
                                 f"{len(given)} values were given")
        values = {f"_p{i}": v for i, v in enumerate(given)}
    return Statement(kind, _bind(tree, values, tables or {}).sql(dialect=WRITE), name)
