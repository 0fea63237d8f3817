"""The retention horizon (docs/retention.md): the first day from which every raw active event
is still stored.

`accountlens retention apply` moves it forward when a rule removes active events. The daily
rollup keeps its rows of the days before it as they are (model/rollup.py), and the metrics and
analyses that reach before it say so in their notes (`horizon_notes`).
"""

from __future__ import annotations

import datetime as dt

from accountlens.store.base import Store, WritableStore
from accountlens.store.catalog import STATE

KEY = "retention_horizon"  # in `metrics_state`: the day, as days since 1970-01-01
_EPOCH = dt.date(1970, 1, 1)


def horizon(store: Store) -> dt.date | None:
    """The first day whose raw active events are all kept; None while none were removed."""
    if not store.has_table(STATE):  # a Parquet export: no horizon recorded there
        return None
    days = store.scalar(f"SELECT value FROM {STATE} WHERE key = ?", [KEY])
    return None if days is None else _EPOCH + dt.timedelta(days=int(days))


def advance(store: WritableStore, day: dt.date) -> dt.date:
    """Move the horizon forward to `day` (never back: older raw events are gone for good);
    the horizon now."""
    current = horizon(store)
    if current is not None and current >= day:
        return current
    store.execute(f"INSERT OR REPLACE INTO {STATE} VALUES (?, ?)", [KEY, (day - _EPOCH).days])
    return day


def horizon_notes(store: Store, what: str, from_rollup: bool = False) -> list[str]:
    """The note of a result (`what`: "metric" or "analysis") once raw events have expired:
    computed `from_rollup`, it keeps them; computed from raw events, it sees only the rest.
    Metrics read history up to their as-of (acquisition, first moments, cohorts), analyses
    windows and histories reaching back from it: every result reaches before the horizon."""
    day = horizon(store)
    if day is None:
        return []
    reads = ("is computed from the daily rollup, which keeps them" if from_rollup
             else f"sees only events from {day.isoformat()} on")
    return [f"raw events before {day.isoformat()} have expired under the retention policy; "
            f"this {what} {reads}"]
