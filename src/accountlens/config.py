"""Workspace configuration: the typed model of `accountlens.toml` and its commented template."""

from __future__ import annotations

import re
import secrets
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

CONFIG_FILE = "accountlens.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- metrics: `[metrics]` (SPEC §5 definitions) and `[analysis]` (the analysis model) ---------
FUNNEL_STAGES = ("awareness", "acquisition", "activation", "retention", "referral", "revenue")


def _ascending(values: list[int]) -> list[int]:
    if any(b <= a for a, b in zip(values, values[1:])) or any(v <= 0 for v in values):
        raise ValueError("band edges must be positive and strictly increasing")
    return values


class MetricsSection(_Section):
    # Events that deliver value: activation, time-to-value, value contribution, funnel activation.
    value_events: list[str] = Field(
        default_factory=lambda: ["Report Created", "Report Shared", "Workflow Approved",
                                 "Plan Approved"]
    )
    activation_days: int = Field(default=14, gt=0)
    account_activation_days: int = Field(default=30, gt=0)
    min_users: int = Field(default=2, ge=1)
    velocity_weeks: int = Field(default=8, gt=0)
    funnel_stages: list[str] = Field(
        default_factory=lambda: ["acquisition", "activation", "retention", "referral", "revenue"]
    )
    awareness_events: list[str] = Field(default_factory=lambda: ["Page Viewed"])
    retention_after_days: int = Field(default=7, gt=0)
    referral_event: str = "User Invited"
    referral_email_property: str = "invitee_email"
    monetization_event: str = "Order Completed"
    revenue_period_days: int = Field(default=365, gt=0)
    quota_window_days: int = Field(default=30, gt=0)
    quota_events: dict[str, list[str]] = Field(default_factory=lambda: {"api_calls": ["API Called"]})
    module_events: dict[str, list[str]] = Field(default_factory=dict)
    size_bands: list[int] = Field(default_factory=lambda: [50, 250, 1000])
    maturity_bands_months: list[int] = Field(default_factory=lambda: [3, 12, 24])
    deployment_scale_bands: list[int] = Field(default_factory=lambda: [5, 20, 100])

    @field_validator("funnel_stages")
    @classmethod
    def _known_stages(cls, stages: list[str]) -> list[str]:
        unknown = [s for s in stages if s not in FUNNEL_STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; use {', '.join(FUNNEL_STAGES)}")
        if len(set(stages)) != len(stages) or not stages:
            raise ValueError("stages must be listed once each, at least one")
        return stages

    @field_validator("size_bands", "maturity_bands_months", "deployment_scale_bands")
    @classmethod
    def _bands(cls, values: list[int]) -> list[int]:
        return _ascending(values)


AnalysisModel = Literal["user", "account", "loose", "linked", "advanced"]


class AnalysisSection(_Section):
    # user | account | loose | linked | advanced (docs/metrics.md, "Analysis models").
    model: AnalysisModel = "advanced"


# --- multi-user analyses: `[handoffs]`, `[sequences]` and `[roles]` ----------------------------
class HandoffsSection(_Section):
    final_events: list[str] = Field(
        default_factory=lambda: ["Workflow Approved", "Report Approved", "Plan Approved"]
    )
    stall_after_days: float = Field(default=7.0, gt=0)
    lookback_days: int = Field(default=90, gt=0)


class SequencesSection(_Section):
    span_days: int = Field(default=30, gt=0)
    lookback_days: int = Field(default=180, gt=0)
    min_support: int = Field(default=3, ge=1)
    max_tokens: int = Field(default=60, ge=2)


class RolesSection(_Section):
    # Least to most senior; roles not listed are left out of seniority analyses.
    seniority: list[str] = Field(
        default_factory=lambda: ["viewer", "analyst", "editor", "trainer", "approver", "admin",
                                 "executive"]
    )
    champion_quiet_days: int = Field(default=14, gt=0)
    champion_lookback_days: int = Field(default=90, gt=0)


# --- outcomes: `[health]`, `[prediction]`, `[signals]` (docs/health.md, prediction.md, signals.md) --
class HealthFactor(_Section):
    """One factor of the health score: an account feature (analysis/features.py) or an account
    trait (`trait:NAME`), scored 0–100 by a piecewise-linear curve through `points`
    ([[value, score], …], values ascending; flat beyond the ends), or a step function when
    `steps` is true (the score of the last point at or below the value)."""

    input: str
    weight: float = Field(ge=0)
    points: list[tuple[float, float]] = Field(min_length=1)
    steps: bool = False

    @field_validator("points")
    @classmethod
    def _points(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        values = [v for v, _ in points]
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError("point values must be strictly increasing")
        if any(not 0 <= s <= 100 for _, s in points):
            raise ValueError("point scores must lie in 0..100")
        return points


def _default_factors() -> dict[str, HealthFactor]:
    f = HealthFactor
    return {
        "seat_utilization": f(input="seat_utilization", weight=20, points=[(0.1, 0), (0.7, 100)]),
        "active_user_trend": f(input="active_user_trend", weight=15,
                               points=[(-0.5, 0), (0.0, 60), (0.25, 100)]),
        "breadth": f(input="breadth", weight=10, points=[(0.1, 0), (0.6, 100)]),
        "stickiness": f(input="stickiness", weight=10, points=[(0.02, 0), (0.25, 100)]),
        "activation": f(input="activated", weight=10, points=[(0, 0), (1, 100)], steps=True),
        "champion": f(input="champion_present", weight=15, points=[(0, 0), (1, 100)], steps=True),
        "contract_alignment": f(input="contract_alignment", weight=10,
                                points=[(0.1, 0), (0.8, 100)]),
        "open_stalls": f(input="open_stalls_per_user", weight=10,
                         points=[(0.0, 100), (0.5, 50), (2.0, 0)]),
    }


class HealthSegmentWeights(_Section):
    """Weights for the accounts of one segment (`by` = plan, industry, region or size_band)."""

    by: Literal["plan", "industry", "region", "size_band"]
    value: str
    weights: dict[str, float]

    @field_validator("weights")
    @classmethod
    def _non_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in weights.values()):
            raise ValueError("weights must be zero or more")
        return weights


class HealthSection(_Section):
    factors: dict[str, HealthFactor] = Field(default_factory=_default_factors)
    segments: list[HealthSegmentWeights] = Field(default_factory=list)
    healthy_from: float = Field(default=70, ge=0, le=100)  # grade healthy at or above
    poor_below: float = Field(default=40, ge=0, le=100)  # grade poor below; between: concerning
    trend_days: int = Field(default=30, gt=0)  # trend: the score against this many days before
    history_step_days: int = Field(default=7, gt=0)  # spacing of `--history` points
    history_points: int = Field(default=26, gt=0, le=520)

    @model_validator(mode="after")
    def _consistent(self) -> HealthSection:
        if self.poor_below > self.healthy_from:
            raise ValueError("poor_below must not exceed healthy_from")
        if not self.factors or sum(f.weight for f in self.factors.values()) <= 0:
            raise ValueError("at least one factor needs a positive weight")
        for segment in self.segments:
            unknown = [k for k in segment.weights if k not in self.factors]
            if unknown:
                raise ValueError(f"segments ({segment.by}={segment.value}): unknown factor(s) "
                                 f"{unknown}; factors are {sorted(self.factors)}")
        return self


class PredictionSection(_Section):
    horizon_days: int = Field(default=90, gt=0)  # an outcome within this many days after a cut-off
    cutoff_step_days: int = Field(default=30, gt=0)  # training cut-offs lie this far apart
    max_training_cutoffs: int = Field(default=12, gt=0)
    backtest_cutoffs: int = Field(default=4, gt=0)
    min_outcomes: int = Field(default=30, gt=0)  # fewer labelled accounts: predict nothing
    min_class: int = Field(default=10, gt=0)  # fewer of either class: predict nothing
    seed: int = 0


class SignalsSection(_Section):
    # Product-qualified account: enough active users using enough paid features, recently.
    pqa_window_days: int = Field(default=14, gt=0)
    pqa_min_active_users: int = Field(default=3, ge=1)
    pqa_min_paid_features: int = Field(default=2, ge=1)
    paid_features: list[str] = Field(default_factory=lambda: [
        "Report Shared", "Workflow Approved", "Plan Approved", "API Called"])
    seat_cap_utilization: float = Field(default=0.95, gt=0)  # expansion: seats (nearly) full
    new_unit_days: int = Field(default=30, gt=0)  # expansion: a team/department first active lately
    unused_seat_days: int = Field(default=60, gt=0)  # contraction: seats unused this long
    unused_seat_share: float = Field(default=0.3, gt=0, le=1)  # … for at least this share of seats


# --- workspace, ingestion, serving, engines --------------------------------------------------
class WorkspaceSection(_Section):
    name: str = "default"
    write_keys: list[str] = Field(default_factory=list)
    api_tokens: list[str] = Field(default_factory=list)
    # Web origins whose pages may send events from a browser (CORS), per write key; "*" is any
    # origin. None by default: browser write keys are public, so which sites may send with a
    # key is said per key, on purpose (docs/ingestion.md, "Browser SDKs and CORS").
    origins: dict[str, list[str]] = Field(default_factory=dict)
    # Where the events live (docs/lake.md): "table" (in DuckDB) or "lake" (day-partitioned
    # Parquet files both engines read). Changed by `accountlens lake enable|disable`, which
    # move the events; a workspace whose events are stored otherwise refuses to open.
    events_storage: Literal["table", "lake"] = "table"

    @field_validator("origins")
    @classmethod
    def _origins(cls, origins: dict[str, list[str]]) -> dict[str, list[str]]:
        return {key: [normalize_origin(origin) for origin in listed]
                for key, listed in origins.items()}

    @model_validator(mode="after")
    def _origins_of_known_keys(self) -> WorkspaceSection:
        unknown = [key for key in self.origins if key not in self.write_keys]
        if unknown:
            raise ValueError(f"origins: {unknown} not in write_keys (a revoked key's origins "
                             "go with it: remove its line)")
        return self


_ORIGIN = re.compile(r"([a-z][a-z0-9+.-]*)://([^/?#@\s]+)")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def normalize_origin(origin: str) -> str:
    """`origin` as browsers send it in the Origin header: lower case, no path, no default port."""
    if origin == "*":
        return origin
    match = _ORIGIN.fullmatch(origin.strip().lower().rstrip("/"))
    if match is None:
        raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port] (no path), "
                         'or "*" for any origin')
    scheme, host = match.groups()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    return f"{scheme}://{host}"


PiiAction = Literal["keep", "drop", "hash", "hash_email"]


class IngestSection(_Section):
    object_id_property: str = "object_id"
    product_property: str = "product"
    max_event_bytes: int = Field(default=32 * 1024, gt=0)
    max_batch_bytes: int = Field(default=500 * 1024, gt=0)
    posthog_account_group_type: str = "company"
    log_segment_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    load_interval_seconds: float = Field(default=1.0, gt=0)
    max_load_delay_seconds: float = Field(default=30.0, ge=0)
    max_unloaded_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    # Timestamp plausibility (docs/ingestion.md, "Timestamps"). An event more than this far
    # after its receive time (after the sentAt correction) is stored at the receive time, with
    # an ingestion warning. 23 h, as PostHog: a client without sentAt whose local time is sent
    # as UTC is at most 14 h ahead (UTC+14), and an event can never land past tomorrow.
    # At most ten years, so that receive time + tolerance stays a valid timestamp.
    future_tolerance_seconds: float = Field(default=23 * 3600, ge=0, le=10 * 366 * 86400)
    # Events dated before this (after the sentAt correction) go to quarantine: a clock reset
    # to 1970, or a hostile year 0001. History older than 2000 is rare in B2B product data.
    earliest_timestamp: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    # Personal data at ingest (docs/governance.md, "Personal data"), per property or trait
    # name (event properties, identify / group traits, context.traits): "keep", "drop",
    # "hash" (salted SHA-256: equal values hash alike, so joins still work) or "hash_email"
    # (hash the part before the @, keep the domain: attribution by e-mail domain still works).
    pii: dict[str, PiiAction] = Field(default_factory=dict)
    # The tracking plan (docs/quality.md, "Tracking plan"; `accountlens plan import`). Events
    # that break it: "record" stores them and records each violation; "quarantine" records them
    # and keeps them in quarantine instead (replayable once the plan or the event is fixed).
    plan_violations: Literal["record", "quarantine"] = "record"
    # Track events whose name the plan does not list: "allow" (not checked), "record" (a
    # violation `unplanned` per event, the event stored) or "quarantine".
    unplanned_events: Literal["allow", "record", "quarantine"] = "record"

    @field_validator("earliest_timestamp")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        # a TOML local date-time (no offset) is read as UTC, like the events' own timestamps
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ServeSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8844, ge=0, le=65535)
    memory_limit: str = "384MB"
    ingest_memory_limit: str = "128MB"
    collectors: int = Field(default=0, ge=0, le=64)
    collector_port: int = Field(default=8845, ge=0, le=65535)
    # A collector process that does not answer the server within this long is stuck: it is
    # killed and replaced (its successor loads what it logged).
    collector_timeout_seconds: float = Field(default=30.0, ge=0.5, le=3600)
    # An ingestion request whose body has not fully arrived within this long gets 408: stalled
    # uploads must not hold the server's connections and memory.
    body_read_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    # Host header names accepted besides the address served on and the loopback names
    # (DNS rebinding: a page elsewhere must not reach the API through a name it controls).
    allowed_hosts: list[str] = Field(default_factory=list)
    # Requests per second (and the burst above it) per API token (or, without one, per client
    # address) and per write key; 0: no limit. Over it: HTTP 429 with Retry-After.
    token_rate_limit: float = Field(default=50.0, ge=0)
    token_rate_burst: int = Field(default=200, ge=1)
    write_key_rate_limit: float = Field(default=0.0, ge=0)
    write_key_rate_burst: int = Field(default=20_000, ge=1)
    # Largest REST API request body (imports excepted: files stream to disk).
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    # One line per REST request (who, what, status, time) in access.log in the workspace.
    access_log: bool = True
    # How often `serve` applies the retention policies ([retention]); 0: never.
    retention_interval_hours: float = Field(default=24.0, ge=0)


class RetentionSection(_Section):
    """How long raw data is kept (docs/governance.md, "Retention"); None keeps it for good.
    The daily rollups (and the metrics computed from them) are kept whatever is set here."""

    events_days: int | None = Field(default=None, gt=0)  # track/page/screen events
    identify_days: int | None = Field(default=None, gt=0)  # identify/group/alias events (traits)
    event_days: dict[str, int] = Field(default_factory=dict)  # per event name; overrides events_days
    quarantine_days: int | None = Field(default=None, gt=0)  # quarantined raw events

    @field_validator("event_days")
    @classmethod
    def _positive(cls, days: dict[str, int]) -> dict[str, int]:
        bad = [name for name, value in days.items() if value <= 0]
        if bad:
            raise ValueError(f"days must be positive ({', '.join(bad)})")
        return days


class SparkSection(_Section):
    """The Spark engine (docs/spark.md): where it runs and which Parquet export it reads."""

    master: str = "local[2]"
    remote: str = ""  # Spark Connect URL (sc://host:15002); replaces master when set
    parquet_dir: str = "parquet"  # relative to the workspace folder, or absolute, or a URI
    conf: dict[str, str] = Field(default_factory=dict)  # extra Spark settings


# --- alerts and playbooks: `[alerts]` (docs/alerts.md) -----------------------------------------
AlertKind = Literal["health_drop", "usage_drop", "seat_cap", "champion_left", "renewal_at_risk",
                    "instrumentation_break", "metric"]


class AlertWebhook(_Section):
    """Where alerts go: an HTTP(S) URL receiving a POST of JSON, Slack-compatible
    (`{"text", "blocks"}`, an incoming webhook's shape) or the generic alert object."""

    url: str = Field(pattern=r"^https?://\S+$")
    format: Literal["slack", "json"] = "json"


class AlertRule(_Section):
    """One rule and its playbook (the recommended `action` and its `owner`): an alert per
    account that meets the condition, at most one per rule, account and `period`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: AlertKind
    metric: str | None = None  # metric: the account metric compared; usage_drop: default wau
    op: Literal["<", "<=", ">", ">=", "==", "!="] = "<"  # metric: value OP threshold
    # health_drop: points lost (default 10); usage_drop: percent lost week over week (30);
    # renewal_at_risk: renewal probability under which a renewal is at risk (0.5); metric: required
    threshold: float | None = None
    within_days: int | None = Field(default=None, gt=0)  # renewal_at_risk: 60; champion_left: 14
    period: Literal["day", "week"] = "week"
    severity: Literal["info", "warning", "critical"] = "warning"
    webhooks: list[str] = Field(default_factory=list)
    action: str = ""  # the playbook: what to do
    owner: str = ""  # who does it: an e-mail, or account_owner (the account's CRM owner trait)

    @model_validator(mode="after")
    def _complete(self) -> AlertRule:
        if self.kind == "metric" and (self.metric is None or self.threshold is None):
            raise ValueError(f"rule {self.name}: kind metric needs metric and threshold")
        return self


class AlertsSection(_Section):
    # How often `serve` evaluates the rules (minutes, fractions allowed; 0: never).
    interval_minutes: float = Field(default=15.0, ge=0)
    max_attempts: int = Field(default=8, ge=1, le=100)  # deliveries per webhook, then failed
    backoff_seconds: float = Field(default=30.0, gt=0)  # first retry after ~this; doubles after
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)  # one webhook request
    webhooks: dict[str, AlertWebhook] = Field(default_factory=dict)
    rules: list[AlertRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_webhooks(self) -> AlertsSection:
        names = [rule.name for rule in self.rules]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"rules named more than once: {twice}")
        for rule in self.rules:
            unknown = [w for w in rule.webhooks if w not in self.webhooks]
            if unknown:
                raise ValueError(f"rule {rule.name}: unknown webhook(s) {unknown}; define "
                                 f"[alerts.webhooks.NAME] (defined: {sorted(self.webhooks)})")
        return self


# --- data quality: `[anomalies]` (docs/quality.md, "Anomalies" and "Reconciliation") ---------
FREE_MAIL_DOMAINS = ("gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com",
                     "live.com", "icloud.com", "me.com", "aol.com", "gmx.de", "gmx.net", "web.de",
                     "proton.me", "protonmail.com", "mail.ru", "yandex.ru", "qq.com", "163.com")


class AnomaliesSection(_Section):
    baseline_weeks: int = Field(default=8, ge=2, le=52)  # same-weekday history per expectation
    window_days: int = Field(default=7, ge=1, le=7)  # the last days a finding may lie in
    drop_ratio: float = Field(default=0.3, ge=0, lt=1)  # a drop: observed <= this x expected
    spike_ratio: float = Field(default=3.0, gt=1)  # a spike: observed >= this x expected
    min_expected: float = Field(default=20.0, gt=0)  # fewer expected (extra) events: no finding
    break_share: float = Field(default=0.5, gt=0, le=1)  # accounts dropping at once: a break
    stale_hours: float = Field(default=24.0, gt=0)  # a regular source silent this long: stale
    # reconciliation: email domains of people, not companies; their users map to no account
    free_mail_domains: list[str] = Field(default_factory=lambda: list(FREE_MAIL_DOMAINS))
    active_days: int = Field(default=30, gt=0)  # active_without_contract / users_above_seats
    arr_tolerance: float = Field(default=0.01, ge=0)  # relative ARR difference still equal


class Config(_Section):
    workspace: WorkspaceSection = Field(default_factory=WorkspaceSection)
    ingest: IngestSection = Field(default_factory=IngestSection)
    serve: ServeSection = Field(default_factory=ServeSection)
    handoffs: HandoffsSection = Field(default_factory=HandoffsSection)
    sequences: SequencesSection = Field(default_factory=SequencesSection)
    roles: RolesSection = Field(default_factory=RolesSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    analysis: AnalysisSection = Field(default_factory=AnalysisSection)
    spark: SparkSection = Field(default_factory=SparkSection)
    health: HealthSection = Field(default_factory=HealthSection)
    prediction: PredictionSection = Field(default_factory=PredictionSection)
    signals: SignalsSection = Field(default_factory=SignalsSection)
    retention: RetentionSection = Field(default_factory=RetentionSection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    anomalies: AnomaliesSection = Field(default_factory=AnomaliesSection)


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


def set_workspace_setting(path: Path, key: str, value: str) -> None:
    """Set `[workspace] key = "value"` in the configuration file, keeping the rest of its text
    (comments included); written aside and renamed over, so a crash leaves the old or the new."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    setting = f'{key} = "{value}"\n'
    section, placed = None, False
    for index, line in enumerate(lines):
        header = re.match(r"\s*\[([^\]]+)\]\s*(#.*)?$", line)
        if header:
            if section == "workspace" and not placed:
                lines.insert(index, setting)
                placed = True
                break
            section = header.group(1).strip()
            continue
        if section == "workspace" and re.match(rf"\s*{re.escape(key)}\s*=", line):
            lines[index] = setting
            placed = True
            break
    if not placed:
        if section != "workspace":
            lines.append("\n[workspace]\n")
        lines.append(setting)
    partial = path.with_name(path.name + ".partial")
    partial.touch(mode=0o600)
    partial.write_text("".join(lines), encoding="utf-8")
    load_config(partial)  # still valid: else the error names the file and nothing changes
    partial.replace(path)


def new_write_key() -> str:
    return "wk_" + secrets.token_urlsafe(18)
