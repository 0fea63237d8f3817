"""The REST API (`/api/v1`), the collector routes and the dashboard, served by `accountlens serve`."""
