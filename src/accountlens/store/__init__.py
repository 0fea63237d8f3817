"""Storage engines behind one interface (`Store`, read-only; `WritableStore` for ingestion);
DuckDB is the embedded default and the one writable engine."""

from accountlens.store.base import Store, StoreError, WritableStore

__all__ = ["Store", "StoreError", "WritableStore"]
