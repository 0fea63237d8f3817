"""A workspace as `accountlens serve` runs it: its store, its durable log and its loader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
                    cfg.ingest.posthog_account_group_type, self.log,
                    {key: tuple(origins) for key, origins in cfg.workspace.origins.items()})

    def status(self) -> dict[str, Any]:
        """`Workspace.status()` and what serving meets: the loader's last error, and whether
        the log (the server's or a collector process's) or the loader cannot write."""
        info = self.workspace.status()
        loader = self.loader
        failure = loader.event_log.write_failure()
        reasons = []
        if failure is not None:
            reasons.append(f"{'disk full: ' if failure.out_of_space else ''}the event log "
                           f"cannot be written ({failure.error}); the collector answers 503 "
                           "until it can")
        if loader.disk_full:
            reasons.append(f"disk full: loading into the store fails ({loader.last_error}); "
                           "the events wait in the log, loading is retried")
        if info["ingest_paused_reason"]:
            reasons.append(info["ingest_paused_reason"])
        info["disk_full"] = (info["disk_full"] or loader.disk_full
                             or (failure is not None and failure.out_of_space))
        info["ingest_paused_reason"] = "; ".join(reasons) or None
        info["loader_error"] = loader.last_error
        return info
