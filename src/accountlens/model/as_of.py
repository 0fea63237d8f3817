"""The default as-of day of every metric and analysis, defined once (docs/cli.md, SPEC §5's
"latest event day"): the day of the latest active event (track, page or screen), never after
today (UTC); today when there is none. An identify or group call does not move it, and
neither does an event dated in the future."""

from __future__ import annotations

import datetime as dt

from accountlens.model.entities import ACTIVE_EVENT_TYPES
from accountlens.store.base import Store
from accountlens.store.cache import BoundedCache
from accountlens.store.catalog import ROLLUP, table

# Kept per store and data version: every metric and analysis asks, and through a csm's book
# (store/scoped.py) the answer is a scan of the rollup, not a lookup in its statistics (60 ms
# of a 100 ms metric at 10M events).
_DEFAULTS = BoundedCache(256)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def default_as_of(store: Store, on: dt.date | None = None, rollup_fresh: bool = False) -> dt.date:
    """The default as-of of queries asked on day `on` (default: today). With `rollup_fresh`
    (the daily rollup is current: it holds exactly the active events, by day) it is read from
    the rollup, a fraction of the events' rows."""
    on = on or today()
    return _DEFAULTS.kept((store.instance, store.data_version, on, rollup_fresh),
                          lambda: _latest(store, on, rollup_fresh))


def _latest(store: Store, on: dt.date, rollup_fresh: bool) -> dt.date:
    import ibis

    if rollup_fresh:
        days = table(ROLLUP)
        latest_day = days.filter(days.day <= on).day.max()
    else:
        events = table("events")
        tomorrow = ibis.timestamp(dt.datetime.combine(on + dt.timedelta(days=1), dt.time(),
                                                      tzinfo=dt.UTC))
        active = events.filter(events.type.isin(ACTIVE_EVENT_TYPES), events.timestamp < tomorrow)
        latest_day = active.timestamp.max().date()
    latest = store.run_expr(latest_day.name("day")).column(0)[0].as_py()
    return latest or on
