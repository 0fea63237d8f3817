"""Workspace configuration: the typed model of `accountlens.toml` and its commented template."""

from __future__ import annotations

import secrets
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from accountlens.analysis.settings import HandoffsSection, RolesSection, SequencesSection

CONFIG_FILE = "accountlens.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkspaceSection(_Section):
    name: str = "default"
    write_keys: list[str] = Field(default_factory=list)
    api_tokens: list[str] = Field(default_factory=list)


class IngestSection(_Section):
    object_id_property: str = "object_id"
    product_property: str = "product"
    max_event_bytes: int = Field(default=32 * 1024, gt=0)
    max_batch_bytes: int = Field(default=500 * 1024, gt=0)
    posthog_account_group_type: str = "company"
    log_segment_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    load_interval_seconds: float = Field(default=1.0, gt=0)


class ServeSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8844, ge=0, le=65535)


class Config(_Section):
    workspace: WorkspaceSection = Field(default_factory=WorkspaceSection)
    ingest: IngestSection = Field(default_factory=IngestSection)
    serve: ServeSection = Field(default_factory=ServeSection)
    handoffs: HandoffsSection = Field(default_factory=HandoffsSection)
    sequences: SequencesSection = Field(default_factory=SequencesSection)
    roles: RolesSection = Field(default_factory=RolesSection)


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid; the message says where."""


def load_config(path: Path) -> Config:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such configuration file (run `accountlens init`)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def new_write_key() -> str:
    return "wk_" + secrets.token_urlsafe(18)


def render_template(name: str, write_key: str) -> str:
    """The commented `accountlens.toml` written by `accountlens init`."""
    defaults = Config()
    ingest = defaults.ingest
    return f'''# accountlens workspace configuration. Every key is documented in docs/configuration.md.

[workspace]
# A label shown in the dashboard and in `accountlens status`.
name = "{name}"
# Write keys accepted by the collector (Segment HTTP Basic username / `writeKey`,
# PostHog `api_key`). Add a key to rotate; remove one to revoke it.
write_keys = ["{write_key}"]
# Bearer tokens for the REST API (/api/v1). Empty: the API is open to anyone who can
# reach the server (fine on loopback, not on a shared network).
api_tokens = []

[ingest]
# Event property that names the shared object acted on (handoffs, collaboration).
object_id_property = "{ingest.object_id_property}"
# Event property that names the product, for multi-product companies.
product_property = "{ingest.product_property}"
# Size limits of the Segment HTTP API; larger events or batches get HTTP 400.
max_event_bytes = {ingest.max_event_bytes}
max_batch_bytes = {ingest.max_batch_bytes}
# PostHog group type whose key is the account id (`$groups`, `$groupidentify`).
posthog_account_group_type = "{ingest.posthog_account_group_type}"
# The durable log starts a new segment file past this size.
log_segment_bytes = {ingest.log_segment_bytes}
# How often the background loader moves the log into the store.
load_interval_seconds = {ingest.load_interval_seconds}

[serve]
host = "127.0.0.1"
port = 8844

[handoffs]
# Events that complete a shared object; an object without one is a stall candidate.
final_events = {_toml_list(defaults.handoffs.final_events)}
# An unfinished object whose last event is older than this many days is stalled.
stall_after_days = {defaults.handoffs.stall_after_days}
# Days of history the handoff analyses look at, ending on --as-of.
lookback_days = {defaults.handoffs.lookback_days}

[sequences]
# Longest time between the steps of an influence sequence.
span_days = {defaults.sequences.span_days}
# Days before each outcome in which sequences are looked for.
lookback_days = {defaults.sequences.lookback_days}
# Least number of outcome cases a sequence must appear in to be reported.
min_support = {defaults.sequences.min_support}
# Most frequent (role, event) steps considered.
max_tokens = {defaults.sequences.max_tokens}

[roles]
# Roles from least to most senior ("junior activity unlocks supervisor interest").
seniority = {_toml_list(defaults.roles.seniority)}
# Events that deliver value (onboarding paths, time-to-value by role and department).
value_events = {_toml_list(defaults.roles.value_events)}
# A champion with no activity for this many days is "quiet".
champion_quiet_days = {defaults.roles.champion_quiet_days}
# Days of activity used to find each account's champion.
champion_lookback_days = {defaults.roles.champion_lookback_days}
'''


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join('"' + v.replace('"', '\\"') + '"' for v in values) + "]"
