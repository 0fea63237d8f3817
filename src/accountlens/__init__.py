"""accountlens: B2B product analytics where the account is a first-class unit next to the user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accountlens.workspace import Workspace, WorkspaceError, init, open

__all__ = ["Workspace", "WorkspaceError", "init", "open", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Imported on first use: the collector processes of `accountlens serve` import parts of
    # this package and must stay small (no DuckDB, pandas or Ibis).
    if name in ("Workspace", "WorkspaceError", "init", "open"):
        from accountlens import workspace

        return getattr(workspace, name)
    raise AttributeError(f"module 'accountlens' has no attribute {name!r}")
