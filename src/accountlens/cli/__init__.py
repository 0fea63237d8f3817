"""The `accountlens` command line: a thin layer over the Workspace API."""
