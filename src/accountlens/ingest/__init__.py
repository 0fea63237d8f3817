"""Ingestion: the collector, the durable log, the load pipeline and bulk importers."""
