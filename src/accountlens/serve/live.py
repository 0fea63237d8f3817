"""A workspace as `accountlens serve` runs it: its store, its durable log and its loader."""

from __future__ import annotations

from dataclasses import dataclass

from accountlens.ingest.loader import BackgroundLoader
from accountlens.ingest.log import EventLog
from accountlens.ingest.normalize import Limits
from accountlens.serve.collector import Sink
from accountlens.workspace import Workspace


@dataclass
class LiveWorkspace:
    """A workspace opened by `accountlens serve`: its store, log and loader."""

    workspace: Workspace
    log: EventLog
    loader: BackgroundLoader

    @property
    def sink(self) -> Sink:
        cfg = self.workspace.config
        return Sink(tuple(cfg.workspace.write_keys),
                    Limits(cfg.ingest.max_event_bytes, cfg.ingest.max_batch_bytes),
                    cfg.ingest.posthog_account_group_type, self.log)
