"""accountlens: B2B product analytics where the account is a first-class unit next to the user."""

from accountlens.workspace import Workspace, WorkspaceError, init, open

__all__ = ["Workspace", "WorkspaceError", "init", "open", "__version__"]
__version__ = "0.1.0"
