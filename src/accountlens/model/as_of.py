"""The default as-of day of every metric and analysis, defined once (docs/cli.md): the latest
day the workspace has data for — the later of the last active event's day (track, page or
screen) and the last outcome's date — never after today (UTC); today when there is neither.
An identify or group call does not move it, and neither does anything dated in the future."""

from __future__ import annotations

import datetime as dt

from accountlens.model.entities import ACTIVE_EVENT_TYPES
from accountlens.store.base import Store
from accountlens.store.catalog import table


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def default_as_of(store: Store, on: dt.date | None = None) -> dt.date:
    """The default as-of of queries asked on day `on` (default: today)."""
    import ibis

    on = on or today()
    events, outcomes = table("events"), table("outcomes")
    tomorrow = ibis.timestamp(dt.datetime.combine(on + dt.timedelta(days=1), dt.time(),
                                                  tzinfo=dt.UTC))
    active = events.filter(events.type.isin(ACTIVE_EVENT_TYPES), events.timestamp < tomorrow)
    known = outcomes.filter(outcomes.date <= on)
    days = (active.aggregate(day=active.timestamp.max().date())
            .union(known.aggregate(day=known.date.max())))
    return store.run_expr(days.day.max().name("day")).column(0)[0].as_py() or on
