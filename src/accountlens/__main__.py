"""`python -m accountlens` runs the CLI."""

from accountlens.cli.main import main

main()
