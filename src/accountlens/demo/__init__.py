"""A realistic, deterministic B2B demo workspace loaded through the real ingestion paths."""
