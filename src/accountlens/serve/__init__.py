"""`accountlens serve`: the HTTP server, its collector processes and the dashboard warmer.

Collector processes import parts of this package: keep `__init__` empty of heavy imports."""
