"""The commented `accountlens.toml` that `accountlens init` writes: every section with its
defaults (config.py holds the typed model; docs/configuration.md documents every key)."""

from __future__ import annotations

from accountlens.config import Config


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
# API tokens with roles are made by `accountlens tokens create` (stored hashed, not here;
# docs/governance.md). Plain tokens listed here still work, as analyst tokens: migrate them.
api_tokens = []
# Where the events live: "table" (in the DuckDB file) or "lake" (Parquet files in lake/ that
# DuckDB and Spark read directly; docs/lake.md). Change it with `accountlens lake enable|disable`.
events_storage = "table"

[workspace.origins]
# Web pages that may send events from a browser (analytics.js, posthog-js), per write key:
# origins as scheme://host[:port], or ["*"] for any page. A key not listed here is refused
# to browsers on other origins; server-side SDKs send no Origin and are not affected.
# "{write_key}" = ["https://app.example.com", "http://localhost:3000"]

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
# Under heavy traffic (over ~1 MB/s of events) loading waits, so that the collector keeps the
# CPU, until the oldest waiting event is this old or the log holds this many bytes.
max_load_delay_seconds = {ingest.max_load_delay_seconds}
max_unloaded_bytes = {ingest.max_unloaded_bytes}
# Timestamp plausibility: an event dated more than this many seconds after it was received
# (after the sentAt correction) is stored at the receive time, with an ingestion warning
# (`accountlens status`); one dated before earliest_timestamp goes to quarantine.
future_tolerance_seconds = {ingest.future_tolerance_seconds:g}
earliest_timestamp = {ingest.earliest_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")}
# Personal data at ingest, per property / trait name: "keep", "drop", "hash" (salted) or
# "hash_email" (hash the address, keep its domain), e.g. {{ email = "hash_email", phone = "drop" }}.
pii = {{}}
# The tracking plan (docs/quality.md; `accountlens plan import`). Events that break it:
# "record" (stored, each violation recorded) or "quarantine" (replayable).
plan_violations = "{ingest.plan_violations}"
# Track events the plan does not list: "allow", "record" or "quarantine".
unplanned_events = "{ingest.unplanned_events}"

[serve]
host = "127.0.0.1"
port = 8844
# DuckDB memory limit of the server process (loads spill to disk beyond it).
memory_limit = "384MB"
# The limit while events arrive and are being loaded: a small footprint while ingesting
# (analyses asked meanwhile get less memory and may be slower).
ingest_memory_limit = "128MB"
# Collector processes serving the ingestion endpoints on `collector_port` too, for more
# events/s than the server process handles on one core (0: none; the server's own port
# always accepts events).
collectors = 0
collector_port = 8845
# A collector process that does not answer the server within this many seconds is stuck:
# it is killed and started again, and its successor loads what it logged.
collector_timeout_seconds = 30
# An ingestion request whose body has not fully arrived within this many seconds gets
# HTTP 408 (a stalled upload must not hold the server).
body_read_timeout_seconds = 10
# Host header names accepted besides the address served on and localhost (DNS rebinding
# protection), e.g. ["analytics.example.com"] behind a reverse proxy.
allowed_hosts = []
# Requests per second and burst per API token (or client address) and per write key
# (0: no limit); over it, HTTP 429 with Retry-After.
token_rate_limit = 50
token_rate_burst = 200
write_key_rate_limit = 0
write_key_rate_burst = 20000
# Largest REST API request body in bytes (imports excepted).
max_request_bytes = 1048576
# One line per REST request in access.log.
access_log = true
# How often serve applies [retention] (hours; 0: never).
retention_interval_hours = 24

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
# A champion with no activity for this many days is "quiet".
champion_quiet_days = {defaults.roles.champion_quiet_days}
# Days of activity used to find each account's champion.
champion_lookback_days = {defaults.roles.champion_lookback_days}
{_metrics_template(defaults)}{_outcomes_template(defaults)}{_quality_template(defaults)}{_alerts_template(defaults)}'''


def _metrics_template(defaults: Config) -> str:
    m = defaults.metrics
    quotas = ", ".join(f'{k} = {_toml_list(v)}' for k, v in m.quota_events.items())
    return f'''
[metrics]
# Definitions of docs/metrics.md. Events that deliver value (activation, time-to-value).
value_events = {_toml_list(m.value_events)}
# A user is activated by a value event within this many days of acquisition.
activation_days = {m.activation_days}
# An account is activated when min_users users had value events within this many days.
account_activation_days = {m.account_activation_days}
min_users = {m.min_users}
# Adoption velocity: users first active in an account's first N weeks, divided by N.
velocity_weeks = {m.velocity_weeks}
# AARRR funnel stages in order; add "awareness" (awareness_events) to start earlier.
funnel_stages = {_toml_list(m.funnel_stages)}
awareness_events = {_toml_list(m.awareness_events)}
# The retention stage needs activity this many days after the previous stage.
retention_after_days = {m.retention_after_days}
# Referral: the invite event and the property holding the invitee's email.
referral_event = "{m.referral_event}"
referral_email_property = "{m.referral_email_property}"
# User-level revenue stage.
monetization_event = "{m.monetization_event}"
# NRR, GRR, logo retention and ARR movements look back this many days.
revenue_period_days = {m.revenue_period_days}
# Contract alignment: quota entitlement → events that consume it, counted over quota_window_days.
quota_window_days = {m.quota_window_days}
quota_events = {{ {quotas} }}
# Purchased module → events that count as using it (an event whose product is the module counts too).
module_events = {{}}
# Band edges of the size_band (employees), maturity (months) and deployment_scale (MAU) slices.
size_bands = {m.size_bands}
maturity_bands_months = {m.maturity_bands_months}
deployment_scale_bands = {m.deployment_scale_bands}

[analysis]
# user | account | loose | linked | advanced: which levels and drill-downs metrics offer.
model = "{defaults.analysis.model}"

[spark]
# The Spark engine (`accountlens metrics --engine spark`) reads `accountlens export parquet`
# output. master: local[N] or a cluster URL; remote: a Spark Connect URL (sc://…) instead.
master = "{defaults.spark.master}"
remote = ""
# The export folder, relative to this workspace (or absolute, or a URI such as s3a://…).
parquet_dir = "{defaults.spark.parquet_dir}"
# Extra Spark settings, e.g. {{ "spark.driver.memory" = "4g" }}.
conf = {{}}
'''


def _outcomes_template(defaults: Config) -> str:
    h, p, g = defaults.health, defaults.prediction, defaults.signals
    factors = "".join(
        f'\n[health.factors.{name}]\ninput = "{f.input}"\nweight = {f.weight:g}\n'
        f'points = [{", ".join(f"[{v:g}, {s:g}]" for v, s in f.points)}]\n'
        + ("steps = true\n" if f.steps else "")
        for name, f in h.factors.items())
    return f'''
[health]
# The health score (docs/health.md): grades, trend and `--history` spacing. The factors below
# replace the built-in set as a whole once any is given; input = "trait:NAME" reads an
# account trait (e.g. nps, support_tickets). [[health.segments]] sets weights per segment:
# by = "plan", value = "enterprise", weights = {{ seat_utilization = 30 }}.
healthy_from = {h.healthy_from:g}
poor_below = {h.poor_below:g}
trend_days = {h.trend_days}
history_step_days = {h.history_step_days}
history_points = {h.history_points}
{factors}
[prediction]
# Churn / renewal / expansion models and their backtest (docs/prediction.md): an outcome
# within horizon_days after a cut-off is the label; cut-offs lie cutoff_step_days apart.
horizon_days = {p.horizon_days}
cutoff_step_days = {p.cutoff_step_days}
max_training_cutoffs = {p.max_training_cutoffs}
backtest_cutoffs = {p.backtest_cutoffs}
# Fewer labelled accounts, or fewer of either class, and nothing is predicted.
min_outcomes = {p.min_outcomes}
min_class = {p.min_class}
seed = {p.seed}

[signals]
# Product-qualified accounts, expansion and contraction signals (docs/signals.md).
pqa_window_days = {g.pqa_window_days}
pqa_min_active_users = {g.pqa_min_active_users}
pqa_min_paid_features = {g.pqa_min_paid_features}
paid_features = {_toml_list(g.paid_features)}
seat_cap_utilization = {g.seat_cap_utilization:g}
new_unit_days = {g.new_unit_days}
unused_seat_days = {g.unused_seat_days}
unused_seat_share = {g.unused_seat_share:g}

[retention]
# Days raw data is kept (docs/governance.md); unset keeps it. The daily rollups, and the
# metrics read from them, are kept whatever is set here.
# events_days = 400
# identify_days = 730
# quarantine_days = 90
event_days = {{}}
'''


def _quality_template(defaults: Config) -> str:
    a = defaults.anomalies
    return f'''
[anomalies]
# Anomalies on event volumes and reconciliation of CRM, billing and telemetry (docs/quality.md).
# Expected = the same weekday's median over baseline_weeks weeks; findings lie in the last
# window_days days. A drop: observed <= drop_ratio x expected; a spike: >= spike_ratio x.
baseline_weeks = {a.baseline_weeks}
window_days = {a.window_days}
drop_ratio = {a.drop_ratio:g}
spike_ratio = {a.spike_ratio:g}
min_expected = {a.min_expected:g}
# This share of the accounts that send an event (or library version) dropping at once: an
# instrumentation break, not N quiet accounts.
break_share = {a.break_share:g}
stale_hours = {a.stale_hours:g}
# Reconciliation: email domains that are no company's, active days, ARR difference tolerated.
free_mail_domains = {_toml_list(a.free_mail_domains)}
active_days = {a.active_days}
arr_tolerance = {a.arr_tolerance:g}
'''


def _alerts_template(defaults: Config) -> str:
    a = defaults.alerts
    return f'''
[alerts]
# Alert rules and playbooks (docs/alerts.md). `serve` evaluates the rules every
# interval_minutes (0: never; `accountlens alerts run` evaluates now). A webhook delivery is
# tried up to max_attempts times, waiting backoff_seconds, then twice as long each time.
interval_minutes = {a.interval_minutes:g}
max_attempts = {a.max_attempts}
backoff_seconds = {a.backoff_seconds:g}
timeout_seconds = {a.timeout_seconds:g}
# Webhooks: [alerts.webhooks.NAME] with url and format ("slack" or "json"), e.g.
# [alerts.webhooks.cs_channel]
# url = "https://hooks.slack.com/services/..."
# format = "slack"
# Rules, each with its playbook (action, owner: an e-mail or "account_owner"), e.g.
# [[alerts.rules]]
# name = "renewal_risk"
# kind = "renewal_at_risk"   # health_drop, usage_drop, seat_cap, champion_left,
#                            # renewal_at_risk, instrumentation_break, metric
# within_days = 60
# period = "week"            # at most one alert per rule, account and week (or day)
# webhooks = ["cs_channel"]
# action = "Book an executive business review before the renewal"
# owner = "account_owner"
'''


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join('"' + v.replace('"', '\\"') + '"' for v in values) + "]"
