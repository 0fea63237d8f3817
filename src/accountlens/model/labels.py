"""Names next to ids: results carry `account_name` after `account_id`, `user_email` and
`user_name` after `user_id`, `unit_name` after `unit_id`, read from the data model of the
store that computed them."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from accountlens.store.base import Store

if TYPE_CHECKING:
    import pandas as pd

# id column (also the key of its table) -> (table, {name column of the result: its column})
_SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "account_id": ("accounts", {"account_name": "name"}),
    "user_id": ("users", {"user_email": "email", "user_name": "name"}),
    "unit_id": ("org_units", {"unit_name": "name"}),
}
# A name per call: Spark's temporary views belong to the session, which threads share.
_CALLS = itertools.count()


def with_names(store: Store, frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the name columns of each id column it has, right after that column."""
    import pyarrow as pa

    for key, (table, names) in _SOURCES.items():
        if key not in frame.columns or all(n in frame.columns for n in names):
            continue
        ids = [str(v) for v in frame[key].dropna().unique()]
        selected = ", ".join(f"t.{column} AS {name}" for name, column in names.items())
        view = f"_label_ids_{next(_CALLS)}"
        with store.registered(view, pa.table({"id": pa.array(ids, pa.string())})):
            found = store.df(f"SELECT t.{key} AS id, {selected} FROM {table} t "
                             f"WHERE t.{key} IN (SELECT id FROM {view})")
        found = found.drop_duplicates("id").set_index("id")
        position = list(frame.columns).index(key) + 1
        frame = frame.copy()
        for offset, name in enumerate(names):
            if name not in frame.columns:
                frame.insert(position + offset, name, frame[key].map(found[name]))
    return frame
