"""Anomalies on event volumes (docs/quality.md, "Anomalies"): instrumentation breaks, quiet
accounts, spikes and stale sources as of a day, each with its evidence (expected vs observed).

Daily event counts per (account, event name, source) are read once from the events before the
end of as_of (the source is the sending library and version from `context.library`, else where
the event came from); every series is then a sum of those cells. The expected count of a day is
the median of the same weekday over the previous `anomalies.baseline_weeks` weeks (days without
events count as zero): weekly seasonality, and one past outage or spike does not move it.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from accountlens.analysis.registry import (
    Analysis,
    AnalysisRequest,
    day_end,
    register,
    resolve_as_of,
)
from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("instrumentation_break", "account_quiet", "spike", "stale_source")
COLUMNS = ("kind", "event", "source", "account_id", "since", "expected", "observed", "window",
           "accounts", "evidence")
# A drop or spike must also be this many Poisson standard deviations (√expected) from the
# expectation: the ratio says the change is large, this that it is not chance at small counts.
Z = 3.0
# One account carrying this share of a spike's extra events: the spike is that account's.
SPIKE_OWNER_SHARE = 0.5
_US_PER_DAY = 86_400_000_000
_EPOCH = dt.date(1970, 1, 1)
_SEP = "\x1f"  # joins (event, source) into one key for list parameters

# The sending library and version, else the event's origin (`collector`, an import's label).
# `context.library` is extracted once per event and grouped on, the text made from its few
# distinct values: measured on 1M events, one extraction 0.3 s, name and version read
# separately 1.0 s; this step is ~70 % of the analysis (10M events: 4.2 s of ~6 s).
CELLS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _anomaly_cells AS
WITH raw AS (
    SELECT CAST(epoch_us(timestamp) // {_US_PER_DAY} AS BIGINT) AS day, account_id,
           coalesce(name, type) AS event, library,
           -- always: a `"library": null` is SQL NULL on Spark but JSON null on DuckDB, and
           -- a library without name and version falls back to the origin on both
           split_part(source, ':', 1) AS origin,
           count(*) AS n, max(timestamp) AS last_at
    FROM (SELECT *, json_extract(context, '$.library') AS library FROM events
          WHERE timestamp >= $start AND timestamp < $cutoff)
    GROUP BY ALL
)
SELECT day, account_id, event,
       coalesce(nullif(trim(concat_ws(' ', json_extract_string(library, '$.name'),
                                      json_extract_string(library, '$.version'))), ''),
                nullif(origin, ''), '(unknown)') AS source,
       CAST(sum(n) AS BIGINT) AS n, max(last_at) AS last_at
FROM raw GROUP BY ALL
"""


def _days_sql(keys: tuple[str, ...], where: str = "TRUE") -> str:
    """Per series (`keys` of the cells) and window day: its count `n` and `expected` (the
    same weekday's median over the baseline weeks). Parameters: $w_start, $as_of (day numbers),
    $weeks, $frac (the share of the as-of day elapsed)."""
    k = ", ".join(keys)
    on = " AND ".join(f"w.{c} = b.{c}" for c in keys)
    pick = ", ".join(f"coalesce(w.{c}, b.{c}) AS {c}" for c in keys)
    return f"""
    WITH s AS (SELECT {k}, day, CAST(sum(n) AS BIGINT) AS n FROM _anomaly_cells WHERE {where} GROUP BY ALL),
    base AS (  -- each baseline day serves the window day of its weekday: its rank among them
        SELECT *, row_number() OVER (PARTITION BY {k}, target ORDER BY n) AS r,
               count(*) OVER (PARTITION BY {k}, target) AS days
        FROM (SELECT {k}, $w_start + (((day - $w_start) % 7) + 7) % 7 AS target, n
              FROM s WHERE day < $w_start)
    ),
    -- the median of the $weeks counts with the weeks without events as zeros (the lowest: a
    -- counted day has n >= 1), so the count of rank r is at position r + $weeks - days of the
    -- sorted weeks: the middle one or two positions, by window functions and a sum (the same
    -- SQL on every engine; Spark has no median of a padded list)
    expected AS (
        SELECT {k}, target,
               (sum(CASE WHEN r + $weeks - days = ($weeks + 1) // 2 THEN n ELSE 0 END)
                + sum(CASE WHEN r + $weeks - days = $weeks // 2 + 1 THEN n ELSE 0 END)) / 2.0 AS e
        FROM base WHERE target <= $as_of GROUP BY ALL
    )
    SELECT {pick}, coalesce(w.day, b.target) AS day, coalesce(w.n, 0) AS n,
           coalesce(b.e, 0) * CASE WHEN coalesce(w.day, b.target) = $as_of THEN $frac ELSE 1 END
               AS expected
    FROM (SELECT * FROM s WHERE day >= $w_start) w
    FULL JOIN expected b ON {on} AND w.day = b.target
    """


def _verdicts_sql(keys: tuple[str, ...], where: str = "TRUE") -> str:
    """Per series: the trailing drop (the days since the last day that was not low) and the
    spike (the high days of the window), each as since / until / observed / expected."""
    k = ", ".join(keys)
    return f"""
    WITH d AS ({_days_sql(keys, where)}),
    f AS (
        SELECT *, max(CASE WHEN n > $drop * expected THEN day END) OVER (PARTITION BY {k}) AS last_ok,
               n >= $spike * expected AND n > expected AS high
        FROM d
    )
    SELECT {k},
           min(day) FILTER (WHERE day > coalesce(last_ok, -1e9) AND expected > 0) AS drop_since,
           CAST(coalesce(sum(n) FILTER (WHERE day > coalesce(last_ok, -1e9)), 0) AS DOUBLE)
               AS drop_observed,
           coalesce(sum(expected) FILTER (WHERE day > coalesce(last_ok, -1e9)), 0) AS drop_expected,
           min(day) FILTER (WHERE high) AS spike_since, max(day) FILTER (WHERE high) AS spike_until,
           CAST(coalesce(sum(n) FILTER (WHERE high), 0) AS DOUBLE) AS spike_observed,
           coalesce(sum(expected) FILTER (WHERE high), 0) AS spike_expected,
           sum(expected) AS window_expected
    FROM f GROUP BY ALL
    """


def _per_account_sql(keys: tuple[str, ...]) -> str:
    """Per (candidate series of `keys`, account): the counts over the candidate's days
    (`_anomaly_candidates` names each series' key, `since` and `until`)."""
    on = " AND ".join(f"d.{c} = c.{c}" for c in keys)
    k = ", ".join(f"d.{c}" for c in keys)
    return f"""
    WITH d AS ({_days_sql(("account_id", *keys), "account_id IS NOT NULL")})
    SELECT {k}, d.account_id, CAST(sum(d.n) AS DOUBLE) AS observed, sum(d.expected) AS expected
    FROM d JOIN _anomaly_candidates c ON {on} AND d.day BETWEEN c.since AND c.until
    GROUP BY ALL
    """


class AnomaliesRequest(AnalysisRequest):
    level: Literal["account"] = Field(default="account", description=(
        "findings of the workspace (the only level; --account keeps one account's)"))
    kind: Literal[KINDS] | None = Field(  # type: ignore[valid-type]
        default=None, description="only findings of this kind")


def _day(number: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=int(number))


def _window(since: int, until: int) -> str:
    return f"{_day(since).isoformat()}..{_day(until).isoformat()}"


def _significant_drop(observed: float, expected: float, cfg: Any) -> bool:
    return (expected >= cfg.min_expected and observed <= cfg.drop_ratio * expected
            and expected - observed >= Z * math.sqrt(expected))


def _significant_spike(observed: float, expected: float, cfg: Any) -> bool:
    excess = observed - expected
    # a series without a baseline is new (an account onboarding, a feature launched): not a spike
    return (expected > 0 and observed >= cfg.spike_ratio * expected and excess >= cfg.min_expected
            and excess >= Z * math.sqrt(max(expected, 1.0)))


class _Finder:
    """One run: the cells as of the day, then each kind of finding from them."""

    def __init__(self, store: Store, cfg: Any, as_of: dt.date):
        self.store, self.cfg, self.as_of = store, cfg, as_of
        end = day_end(as_of)
        now = dt.datetime.now(dt.UTC)
        self.cutoff = min(end, now)  # today's day is not over: expect only its elapsed share
        self.as_of_day = (as_of - _EPOCH).days
        self.w_start = self.as_of_day - cfg.window_days + 1
        frac = (self.cutoff - (end - dt.timedelta(days=1))).total_seconds() / 86400
        self.params = {"w_start": self.w_start, "as_of": self.as_of_day,
                       "weeks": cfg.baseline_weeks, "frac": max(frac, 0.0),
                       "drop": cfg.drop_ratio, "spike": cfg.spike_ratio}
        # no day precedes 0001-01-01 (an as-of in year 1 has a shorter baseline, and no events)
        start_day = max(self.w_start - 7 * cfg.baseline_weeks, (dt.date.min - _EPOCH).days)
        start = dt.datetime.combine(_day(start_day), dt.time(), tzinfo=dt.UTC)
        store.execute(CELLS_SQL, {"start": start, "cutoff": self.cutoff})

    def close(self) -> None:
        for table in ("_anomaly_cells", "_anomaly_candidates"):
            self.store.execute(f"DROP TABLE IF EXISTS {table}")

    def verdicts(self, keys: tuple[str, ...], where: str = "TRUE",
                 extra: dict | None = None) -> list[dict]:
        return self.store.rows(_verdicts_sql(keys, where), {**self.params, **(extra or {})})

    def per_account(self, keys: tuple[str, ...], candidates: list[dict]) -> list[dict]:
        """Each candidate's counts per account over its days (`since`..`until`)."""
        import pyarrow as pa

        table = pa.Table.from_pylist(candidates)
        with self.store.registered("_anomaly_candidates_in", table) as name:
            self.store.execute(f"CREATE OR REPLACE TEMP TABLE _anomaly_candidates AS "
                               f"SELECT * FROM {name}")
        days = {k: v for k, v in self.params.items() if k not in ("drop", "spike")}
        return self.store.rows(_per_account_sql(keys), days)

    # --- the kinds -------------------------------------------------------------------------
    def stale_sources(self) -> list[dict]:
        """Sources that sent on at least half the baseline days and nothing for `stale_hours`,
        while their same-weekday medians expected at least `min_expected` events (a source
        silent every weekend is not stale on Sunday)."""
        rows = self.store.rows(f"""
            WITH d AS ({_days_sql(("source",))}),
            last AS (
                SELECT source, max(last_at) AS last_at,
                       CAST(epoch_us(max(last_at)) // {_US_PER_DAY} AS BIGINT) AS last_day,
                       count(DISTINCT day) FILTER (WHERE day < $w_start) AS base_days
                FROM _anomaly_cells GROUP BY source
            )
            SELECT l.*, coalesce(g.gap, 0) AS gap
            FROM last l LEFT JOIN (  -- a join: Spark's correlated subqueries allow only `=`
                SELECT l.source, sum(d.expected) AS gap
                FROM last l JOIN d ON d.source = l.source AND d.day > l.last_day GROUP BY l.source
            ) g ON g.source = l.source""", {k: v for k, v in self.params.items() if k not in ("drop", "spike")})
        base_days = 7 * self.cfg.baseline_weeks
        found = []
        for r in rows:
            hours = (self.cutoff - r["last_at"]).total_seconds() / 3600
            if (r["base_days"] >= base_days / 2 and hours > self.cfg.stale_hours
                    and r["gap"] >= self.cfg.min_expected):
                since = r["last_at"].date()
                found.append(_finding(
                    "stale_source", None, r["source"], None, since, r["gap"], 0,
                    f"{since.isoformat()}..{self.as_of.isoformat()}", None,
                    f"no event from {r['source']} for {hours:.0f} hours (last "
                    f"{r['last_at']:%Y-%m-%d %H:%M} UTC) while {r['gap']:,.0f} were expected; "
                    f"it sent on {r['base_days']} of the {base_days} baseline days"))
        return found

    def breaks(self) -> tuple[list[dict], list[dict]]:
        """Instrumentation breaks (event, source series where most sending accounts dropped at
        once, merged to the source or the event when all its series broke) and the broken
        (event, source) series."""
        cfg = self.cfg
        series = self.verdicts(("event", "source"))
        candidates = [s for s in series if s["drop_since"] is not None
                      and _significant_drop(s["drop_observed"], s["drop_expected"], cfg)]
        if not candidates:
            return [], []
        accounts = self.per_account(("event", "source"), [
            {"event": c["event"], "source": c["source"], "since": c["drop_since"],
             "until": self.as_of_day} for c in candidates])
        broken = []
        for c in candidates:
            senders = [a for a in accounts if a["event"] == c["event"]
                       and a["source"] == c["source"] and a["expected"] > 0]
            dropped = [a for a in senders if a["observed"] <= cfg.drop_ratio * a["expected"]]
            if len(senders) >= 2 and len(dropped) >= cfg.break_share * len(senders):
                broken.append({**c, "accounts": len(dropped), "senders": len(senders)})
        big = {(s["event"], s["source"]) for s in series
               if s["window_expected"] >= cfg.min_expected}
        return _merged_breaks(broken, big, self.as_of_day), broken

    def quiet_accounts(self, broken: list[dict], stale: set[str]) -> list[dict]:
        """Accounts whose events (apart from broken series and stale sources) dropped; if most
        accounts did at once, one break of everything instead."""
        cfg = self.cfg
        keys = [f"{b['event']}{_SEP}{b['source']}" for b in broken]
        series = self.verdicts(
            ("account_id",),
            "account_id IS NOT NULL AND NOT list_contains($broken, event || chr(31) || source) "
            "AND NOT list_contains($stale, source)",
            {"broken": keys, "stale": sorted(stale)})
        quiet = [s for s in series if s["drop_since"] is not None
                 and _significant_drop(s["drop_observed"], s["drop_expected"], cfg)]
        senders = sum(1 for s in series if s["window_expected"] > 0)
        if len(quiet) >= 3 and len(quiet) >= cfg.break_share * senders:
            since = min(q["drop_since"] for q in quiet)
            expected = sum(q["drop_expected"] for q in quiet)
            observed = sum(q["drop_observed"] for q in quiet)
            return [_finding("instrumentation_break", None, None, None, _day(since), expected,
                             observed, _window(since, self.as_of_day), len(quiet),
                             f"{len(quiet)} of {senders} accounts dropped at once, all events: "
                             f"{observed:,.0f} events vs {expected:,.0f} expected")]
        return [_finding("account_quiet", None, None, q["account_id"], _day(q["drop_since"]),
                         q["drop_expected"], q["drop_observed"],
                         _window(q["drop_since"], self.as_of_day), 1,
                         f"account {q['account_id']} sent {q['drop_observed']:,.0f} events vs "
                         f"{q['drop_expected']:,.0f} expected (same weekdays, previous "
                         f"{cfg.baseline_weeks} weeks' median) since {_day(q['drop_since'])}")
                for q in quiet]

    def spikes(self) -> list[dict]:
        """Spikes of one account's (event, source) series (a bot, a client resending), and of
        an (event, source) series that no one account carries (a library duplicating sends)."""
        cfg = self.cfg
        found: list[dict] = []
        # Only series with at least min_expected events in the window can have that many extra
        # (1M events: the per-account series of every event and source ~3 s, these ~0.1 s).
        busy = """account_id IS NOT NULL AND (account_id, event, source) IN (
            SELECT account_id, event, source FROM _anomaly_cells WHERE day >= $w_start
            GROUP BY ALL HAVING sum(n) >= $min_n)"""
        for s in self.verdicts(("account_id", "event", "source"), busy,
                               {"min_n": cfg.min_expected}):
            if s["spike_since"] is not None and _significant_spike(
                    s["spike_observed"], s["spike_expected"], cfg):
                found.append(_finding(
                    "spike", s["event"], s["source"], s["account_id"], _day(s["spike_since"]),
                    s["spike_expected"], s["spike_observed"],
                    _window(s["spike_since"], s["spike_until"]), 1,
                    f"account {s['account_id']} sent {s['spike_observed']:,.0f} {s['event']} "
                    f"from {s['source']} vs {s['spike_expected']:,.0f} expected ({_times(s)})"))
        series = [s for s in self.verdicts(("event", "source")) if s["spike_since"] is not None
                  and _significant_spike(s["spike_observed"], s["spike_expected"], cfg)]
        if not series:
            return found
        accounts = self.per_account(("event", "source"), [
            {"event": s["event"], "source": s["source"], "since": s["spike_since"],
             "until": s["spike_until"]} for s in series])
        for s in series:
            excess = {a["account_id"]: a["observed"] - a["expected"] for a in accounts
                      if a["event"] == s["event"] and a["source"] == s["source"]}
            total = s["spike_observed"] - s["spike_expected"]
            if max(excess.values(), default=0) >= SPIKE_OWNER_SHARE * total:
                continue  # one account's: reported above when significant on its own
            spiking = sum(1 for v in excess.values() if v > 0)
            found.append(_finding(
                "spike", s["event"], s["source"], None, _day(s["spike_since"]),
                s["spike_expected"], s["spike_observed"],
                _window(s["spike_since"], s["spike_until"]), spiking,
                f"{s['event']} from {s['source']}: {s['spike_observed']:,.0f} events vs "
                f"{s['spike_expected']:,.0f} expected ({_times(s)}); {spiking} accounts sent "
                "more"))
        return found


def _times(series: dict) -> str:
    expected = series["spike_expected"]
    return f"{series['spike_observed'] / expected:.1f}x" if expected > 0 else "none expected"


def _merged_breaks(broken: list[dict], big: set[tuple[str, str]], as_of_day: int) -> list[dict]:
    """One finding per broken source when all its sizeable series broke (a library version
    stopped), else per event when all its sizeable series broke, else per (event, source)."""
    keys = {(b["event"], b["source"]) for b in broken}
    findings: list[dict] = []
    done: set[tuple[str, str]] = set()
    for field, index in (("source", 1), ("event", 0)):
        for value in sorted({b[field] for b in broken}):
            group = [b for b in broken if b[field] == value and (b["event"], b["source"]) not in done]
            sizeable = {k for k in big if k[index] == value}
            if len(group) >= 2 and sizeable <= keys:
                findings.append(_break_finding(group, field, value, as_of_day))
                done |= {(b["event"], b["source"]) for b in group}
    for b in broken:
        if (b["event"], b["source"]) not in done:
            findings.append(_break_finding([b], None, None, as_of_day))
    return findings


def _break_finding(group: list[dict], field: str | None, value: str | None,
                   as_of_day: int) -> dict:
    since = min(b["drop_since"] for b in group)
    expected = sum(b["drop_expected"] for b in group)
    observed = sum(b["drop_observed"] for b in group)
    affected, senders = max(b["accounts"] for b in group), max(b["senders"] for b in group)
    event = group[0]["event"] if field != "source" else None
    source = group[0]["source"] if field != "event" else None
    what = (f"all {len(group)} events from {value}" if field == "source"
            else f"{value} from all {len(group)} sources" if field == "event"
            else f"{event} from {source}")
    return _finding("instrumentation_break", event, source, None, _day(since), expected,
                    observed, _window(since, as_of_day), affected,
                    f"{what}: {observed:,.0f} events vs {expected:,.0f} expected since "
                    f"{_day(since)}; {affected} of {senders} sending accounts dropped at once")


def _finding(kind: str, event: str | None, source: str | None, account: str | None,
             since: dt.date, expected: float, observed: float, window: str,
             accounts: int | None, evidence: str) -> dict:
    return {"kind": kind, "event": event, "source": source, "account_id": account,
            "since": since.isoformat(), "expected": round(float(expected), 1),
            "observed": float(observed), "window": window, "accounts": accounts,
            "evidence": evidence}


def run(store: Store, settings: Any, request: AnomaliesRequest) -> pd.DataFrame:
    import pandas as pd

    as_of = resolve_as_of(store, request.as_of)
    finder = _Finder(store, settings.anomalies, as_of)
    try:
        stale = finder.stale_sources()
        stale_sources = {f["source"] for f in stale}
        breaks, broken = finder.breaks()
        rows = breaks + finder.quiet_accounts(broken, stale_sources) + finder.spikes() + stale
    finally:
        finder.close()
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if request.kind:
        frame = frame[frame["kind"] == request.kind]
    if request.account:
        frame = frame[frame["account_id"] == request.account]
    order = {kind: i for i, kind in enumerate(KINDS)}
    frame = frame.assign(_order=frame["kind"].map(order)).sort_values(
        ["_order", "since", "event", "source", "account_id"], na_position="first")
    frame = frame.drop(columns="_order").reset_index(drop=True)
    frame["accounts"] = frame["accounts"].astype("Int64")
    for column in ("event", "source", "account_id"):  # None, not NaN, where a finding has none
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame.attrs["table_columns"] = ["kind", "event", "source", "account_id", "since", "expected",
                                    "observed"]
    return frame


register(Analysis(
    name="anomalies",
    summary="Anomalies on event volumes as of a day: instrumentation breaks (many accounts drop "
            "at once on one event or library version), quiet accounts, spikes and stale "
            "sources, each with expected vs observed (weekly seasonality).",
    request=AnomaliesRequest,
    run=run,
    engines=("duckdb", "spark"),  # parity: tests/test_spark_analyses.py
))
