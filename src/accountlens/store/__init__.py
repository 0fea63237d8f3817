"""Storage engines behind one interface (`Store`); DuckDB is the embedded default."""

from accountlens.store.base import Store, StoreError

__all__ = ["Store", "StoreError"]
