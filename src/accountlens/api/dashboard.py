"""What the web app's pages ask the API, declared once: `GET /api/v1/dashboard` serves it, the
pages (web/static/pages/*.js) take each request from it by its panel id and add the reader's
choices (as-of, filters, level, account, …), and the warmer (serve/warmer.py) computes the
analyses the pages open with, so that they answer from kept results.

A page never names an analysis or a metric itself: what it asks is here, and the choices its
controls offer (levels, views, outcomes) come from the requests' own types."""

from __future__ import annotations

import typing
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field

from accountlens.analysis.health import GRADES as HEALTH_GRADES
from accountlens.analysis.signals import KINDS as SIGNAL_KINDS

ParamValue = int | str | bool | list[str]


class Panel(BaseModel):
    id: str = Field(description="the name a page asks for it by")
    page: str = Field(description="the page that shows it: overview, accounts, account, analyses/NAME")
    title: str
    analysis: str | None = Field(default=None, description="GET /api/v1/analyses/{analysis}")
    metric: str | None = Field(default=None, description="GET /api/v1/metrics/{metric} (`table`: "
                                                        "/api/v1/metrics/table)")
    params: dict[str, ParamValue] = Field(description="its query parameters as the page opens")
    per_account: bool = Field(default=False, description="the page adds account=ID (not warmed)")
    controls: list[str] = Field(default=[], description="parameters the reader can change")
    choices: dict[str, list[str]] = Field(
        default={}, description="the values each control offers (from the request's type)")


class Dashboard(BaseModel):
    panels: list[Panel] = Field(description=(
        "analyses as the pages open them: the server keeps these computed"))
    on_demand: list[Panel] = Field(description=(
        "metrics (read from the daily rollup, fast) and one account's analyses: computed when asked"))


def _a(page: str, id: str, title: str, analysis: str, controls: tuple[str, ...] = (),
       per_account: bool = False, **params: ParamValue) -> Panel:
    return Panel(id=id, page=page, title=title, analysis=analysis, params=params,
                 per_account=per_account, controls=list(controls))


def _m(page: str, id: str, title: str, metric: str, controls: tuple[str, ...] = (),
       **params: ParamValue) -> Panel:
    return Panel(id=id, page=page, title=title, metric=metric, params=params, controls=list(controls))


GRADES = (*HEALTH_GRADES, "unknown")  # "unknown": no input for any factor (docs/health.md)
# Funnel levels the overview offers (the metric has more: industry, region, … are filters there)
FUNNEL_LEVELS = ("user", "account", "team", "department", "role")

# In the order the warmer computes them: the overview first, then the accounts list, then the
# analyses pages. Limits are the rows a page shows; a kept result serves every limit.
PANELS: tuple[Panel, ...] = (
    _a("overview", "activity", "Active accounts and users", "activity", ("grain",), grain="day", days=90),
    *(_a("overview", f"grade-{grade}", f"{grade.title()} accounts", "accounts", grade=grade, limit=1)
      for grade in GRADES),
    _a("overview", "renewals-due", "Upcoming renewals", "renewals", days=90, limit=8),
    _a("overview", "renewals-by-grade", "ARR up for renewal by health", "renewals", days=90,
       view="segments", by="grade"),
    *(_a("overview", f"signals-{kind}", f"{kind.title()} signals", "signals", kind=kind, limit=1)
      for kind in SIGNAL_KINDS),
    _a("accounts", "accounts", "Accounts", "accounts", ("grade", "sort"), limit=50),
    _a("analyses/handoffs", "bottlenecks", "Handoff bottlenecks", "handoffs", ("level",),
       view="bottlenecks", min_handoffs=3, limit=50),
    _a("analyses/handoffs", "handoff-pairs", "Who hands work to whom", "handoffs", ("level",),
       view="pairs", limit=200),
    _a("analyses/stalls", "stalls", "Stalled objects", "handoffs", view="stalls", limit=500),
    _a("analyses/collaboration", "collaboration", "Collaboration per account", "collaboration",
       ("level",), limit=500),
    _a("analyses/sequences", "sequences", "Sequences that precede the outcome", "sequences",
       ("outcome", "view"), outcome="renewal", limit=100),
    _a("analyses/paths", "ttv", "Time-to-value", "paths", ("level",), view="ttv", limit=100),
    _a("analyses/paths", "paths", "Onboarding paths", "paths", ("level",), view="paths", limit=500),
    _a("analyses/champions", "champions", "Champions", "champions", limit=500),
    _a("analyses/signals", "signals", "Signals", "signals", ("kind",), limit=500),
    _a("analyses/value", "value", "Value realization", "value", ("benchmark_by",), limit=500),
    _a("analyses/health", "health", "Health", "health", limit=500),
    _a("analyses/renewals", "renewals", "Renewals due", "renewals", days=90, limit=500),
    _a("analyses/renewals", "renewal-segments", "Renewals by segment", "renewals", ("by",),
       days=90, view="segments", by="plan"),
    _a("analyses/predict", "predict", "Predictions", "predict", ("outcome",), outcome="churn", limit=500),
    _a("analyses/backtest", "backtest", "Backtest", "backtest", ("outcome",), outcome="churn"),
    _a("analyses/backtest", "calibration", "Calibration", "backtest", ("outcome",), outcome="churn",
       view="calibration"),
)

ON_DEMAND: tuple[Panel, ...] = (
    _m("overview", "kpis", "Workspace", "table", names=["active_accounts", "mau", "arr"], level="all"),
    _m("overview", "funnel", "AARRR funnel", "funnel", ("level",), level="account"),
    # the values of an account attribute (the page sets `level` to the attribute)
    _m("*", "facets", "Filter values", "mau"),
    _a("account", "account-health", "Health factors", "health", per_account=True, view="factors"),
    # (not `history=True`: its points are scores on earlier days, each computed anew — tens of
    # seconds for the first account; the trend and the lever come with the score)
    _a("account", "account-health-summary", "Health", "health", per_account=True),
    *(_a("account", f"account-{outcome}", f"{outcome.title()} prediction", "predict",
         per_account=True, outcome=outcome) for outcome in ("churn", "renewal", "expansion")),
    _a("account", "account-champion", "Champion", "champions", per_account=True),
    _a("account", "account-bottlenecks", "Handoff bottlenecks", "handoffs", per_account=True,
       view="bottlenecks", min_handoffs=1, limit=10),
    _a("account", "account-handoffs", "Handoff graph", "handoffs", per_account=True,
       view="pairs", limit=100),
    _a("account", "account-sequences", "Sequences seen here", "sequences", per_account=True,
       outcome="renewal", limit=10),
    _a("account", "account-signals", "Signals", "signals", per_account=True),
    _a("analyses/collaboration", "collaboration-graph", "Who works with whom", "collaboration",
       ("nodes",), per_account=True, view="graph", nodes="role", limit=500),
    _m("analyses/retention", "retention", "Retention", "retention", ("level", "period"),
       level="user", period="week"),
    # one request per credit model the reader compares (ten models, Shapley and Markov among
    # them: computed when asked, not warmed)
    _a("attribution", "attribution", "Credit by model", "attribution",
       ("outcome", "model", "by", "value"), outcome="renewal", by="role", value="count",
       resamples=200, limit=500),
    # the page adds the experiment and the metric or outcome the reader chose
    _a("experiments", "experiment-result", "Experiment result", "experiments",
       ("outcome", "method", "unit")),
)


def _literal_values(annotation: Any) -> list[str]:
    """The values of a `Literal[...]` (or `Literal[...] | None`) annotation."""
    if typing.get_origin(annotation) is Literal:
        return [str(v) for v in typing.get_args(annotation)]
    return [v for arg in typing.get_args(annotation) for v in _literal_values(arg)]


def _choices(panel: Panel) -> dict[str, list[str]]:
    from accountlens.analysis.registry import load_all as analyses
    from accountlens.metrics.registry import load_all as metrics

    if panel.analysis is not None:
        analysis = analyses().get(panel.analysis)
        if analysis is None:  # not installed here: the page shows the API's 404
            return {}
        fields = analysis.request.model_fields
        levels: list[str] = list(analysis.levels)
    else:
        metric = metrics().get(panel.metric or "")
        if metric is None:
            return {}
        fields = metric.params.model_fields
        levels = list(metric.levels)
    out: dict[str, list[str]] = {}
    for control in panel.controls:
        if control == "level":
            out[control] = [lv for lv in FUNNEL_LEVELS if lv in levels] if panel.id == "funnel" else levels
        elif control in fields:
            out[control] = _literal_values(fields[control].annotation)
    return out


@cache
def dashboard() -> Dashboard:
    """The panels with their controls' choices (read once from the registries)."""
    def filled(panels: tuple[Panel, ...]) -> list[Panel]:
        return [p.model_copy(update={"choices": _choices(p)}) for p in panels]

    return Dashboard(panels=filled(PANELS), on_demand=filled(ON_DEMAND))
