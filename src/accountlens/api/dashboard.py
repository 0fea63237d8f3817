"""The dashboard's analysis panels, declared once: `GET /api/v1/dashboard` serves them,
web/static/app.js renders them in this order, and the warmer (serve/warmer.py) keeps their
analyses computed."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Chart(BaseModel):
    """A horizontal bar chart of the panel's rows."""

    labels: list[str] = Field(description="columns whose values, joined by ' → ', label each bar")
    value: str = Field(description="the column the bars show")
    axis: str = Field(description="the value axis' title")


class Panel(BaseModel):
    id: str = Field(description="the panel's table element id (its chart's: `{id}-chart`)")
    title: str
    note: str | None = Field(default=None, description="shown small after the title")
    analysis: str = Field(description="the analysis shown: GET /api/v1/analyses/{analysis}")
    params: dict[str, int | str] = Field(description="its query parameters")
    columns: list[str] = Field(default=[], description="the table's columns; none: no table")
    chart: Chart | None = None
    row_class: str | None = Field(
        default=None, description="a column whose value classes each row as `{row_class}-{value}`")


class Dashboard(BaseModel):
    panels: list[Panel]


PANELS: tuple[Panel, ...] = (
    Panel(id="bottlenecks", title="Handoff bottlenecks", note="(role → role, median hours)",
          analysis="handoffs", params={"view": "bottlenecks", "limit": 10, "min_handoffs": 3},
          columns=["rank", "from_actor", "to_actor", "handoffs", "latency_ratio", "stall_rate",
                   "most_affected_accounts"],
          chart=Chart(labels=["from_actor", "to_actor"], value="median_latency_hours",
                      axis="median latency (hours)")),
    Panel(id="champions", title="Champion risk", analysis="champions", params={"limit": 12},
          columns=["account_name", "champion", "role", "share_of_activity", "status", "days_since_seen",
                   "risk"],
          row_class="risk"),
    Panel(id="sequences", title="Sequences that precede renewal", analysis="sequences",
          params={"outcome": "renewal", "limit": 10},
          columns=["pattern", "outcome_cases", "pattern_cases", "confidence", "lift"]),
    Panel(id="ttv", title="Time-to-value by role", note="(median days)", analysis="paths",
          params={"view": "ttv", "limit": 20},
          chart=Chart(labels=["role"], value="median_ttv_days", axis="median days to first value")),
    Panel(id="collaboration", title="Collaboration per account", analysis="collaboration",
          params={"limit": 12},
          columns=["account_name", "handoffs", "collaborators", "cross_department_share", "most_connected_user",
                   "top_user_share"]),
    Panel(id="stalls", title="Stalled objects", analysis="handoffs", params={"view": "stalls", "limit": 10},
          columns=["account_name", "object_id", "waiting_after", "last_event_at"]),
)

DASHBOARD = Dashboard(panels=list(PANELS))
