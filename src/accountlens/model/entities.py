"""The kinds of the data model (SPEC §3), declared once: the entities users import (their table,
CSV columns and key), the unit, outcome, actor and event kinds, and the attribution rules.

The importers, the `accountlens import KIND` commands, the workspace status and its REST model
are generated from `ENTITIES`; column types come from the catalog (store/catalog.py). The CHECK
constraints of store/schema.py's migrations stay literal history; tests/test_catalog.py checks
they allow exactly these kinds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from accountlens.store import catalog

# Outermost first: a business unit holds departments, a department holds teams.
UNIT_KINDS = ("business_unit", "department", "team")
# How far up the org-unit tree metrics and analyses look for a unit's team, department or
# business unit (a cycle in the imported tree ends there). Each level is one more join in every
# query that maps units: at 20, DuckDB's plan for the signals query ran out of `serve`'s memory
# limit (~366 MB) on a 30-account demo; at 12 it used a few MB. Real trees are rarely 5 deep.
UNIT_DEPTH = 10
OUTCOME_KINDS = ("renewal", "expansion", "contraction", "churn", "conversion")
# In the order they are tried (model/attribution.py); `unattributed` events are kept and counted.
ATTRIBUTION_RULES = ("explicit", "membership", "domain", "unattributed")
ACTOR_KINDS = ("human", "automation")
# What a suppression-list entry hashes (store/schema.py migration 5; governance/deletion.py).
SUPPRESSION_KINDS = ("user_id", "email", "anonymous_id")
EVENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")  # Segment's spec
# What someone did in the product; identify/group/alias only describe who they are.
ACTIVE_EVENT_TYPES = ("track", "page", "screen")


@dataclass(frozen=True)
class Column:
    """A column of an import CSV; its type is the catalog's type of the table column it fills."""

    name: str
    required: bool = False
    choices: tuple[str, ...] = ()
    target: str | None = None  # the table column, when the CSV name differs (start → start_date)
    default: str | None = None  # stored when the cell is empty or the column absent
    type: str = ""  # set by EntitySpec from the catalog

    @property
    def column(self) -> str:
        return self.target or self.name


@dataclass(frozen=True)
class EntitySpec:
    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # rows with the same key replace earlier ones (re-import is idempotent)
    extra_traits: bool = False  # unknown CSV columns are kept as JSON traits
    reattribute: bool = False  # changes which account events belong to
    # A table the imported traits are also recorded in, as known from the start of time (a CRM
    # snapshot carries no date), so that point-in-time reads see them under later SDK changes.
    traits_history: str | None = None
    # What an imported value may not be (ingest/import_checks.py checks them, docs/data-model.md
    # lists them): columns that may not be negative, (first, second) columns where the second,
    # when given, may not be before the first, and columns that must name a row of another kind
    # (stored, or in the same file when the kind is the file's own). A `warn_references`
    # column may name a row not seen yet: the row is kept and the import warns.
    non_negative: tuple[str, ...] = ()
    ordered: tuple[tuple[str, str], ...] = ()
    references: Mapping[str, str] = field(default_factory=dict)
    warn_references: Mapping[str, str] = field(default_factory=dict)
    # A table every import also appends its rows to, with the import's id and time.
    per_import: str | None = None

    def __post_init__(self) -> None:
        types = catalog.columns(self.table)
        object.__setattr__(self, "columns", tuple(replace(c, type=types[c.column]) for c in self.columns))

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def _required(*names: str) -> tuple[Column, ...]:
    return tuple(Column(name, required=True) for name in names)


def _optional(*names: str) -> tuple[Column, ...]:
    return tuple(Column(name) for name in names)


# The import kinds (`accountlens import KIND`), in the order the status lists their tables.
ENTITIES: dict[str, EntitySpec] = {
    "accounts": EntitySpec(
        "accounts",
        (*_required("account_id"),
         *_optional("name", "domain", "industry", "region", "employees", "plan", "parent_account_id",
                    "created_at")),
        key=("account_id",), extra_traits=True, reattribute=True,
        traits_history="account_traits_history",
        non_negative=("employees",), references={"parent_account_id": "accounts"},
    ),
    "units": EntitySpec(
        "org_units",
        (*_required("unit_id", "account_id"), Column("kind", required=True, choices=UNIT_KINDS),
         *_optional("name", "parent_unit_id")),
        key=("unit_id",), references={"account_id": "accounts"},
    ),
    "users": EntitySpec(
        "users",
        (*_required("user_id"), *_optional("email", "name", "created_at")),
        key=("user_id",), extra_traits=True, reattribute=True,
    ),
    "memberships": EntitySpec(
        "memberships",
        (*_required("user_id", "account_id"), *_optional("unit_id", "role"),
         Column("valid_from", required=True), Column("valid_to")),
        key=("user_id", "account_id", "valid_from"), reattribute=True,
        ordered=(("valid_from", "valid_to"),),
        # Users come from identify calls too: the CRM may list someone before their first login.
        references={"account_id": "accounts"}, warn_references={"user_id": "users"},
    ),
    "subscriptions": EntitySpec(
        "subscriptions",
        (*_required("subscription_id", "account_id"), *_optional("product", "plan", "seats", "arr"),
         Column("start", required=True, target="start_date"), Column("end", target="end_date"),
         *_optional("status", "entitlements"), Column("source", default="import")),
        key=("subscription_id",), non_negative=("seats", "arr"), ordered=(("start", "end"),),
        references={"account_id": "accounts"}, per_import="subscription_sources",
    ),
    "outcomes": EntitySpec(
        "outcomes",
        (*_required("account_id"), Column("kind", required=True, choices=OUTCOME_KINDS),
         Column("date", required=True), *_optional("arr_delta", "source")),
        key=("account_id", "kind", "date"), references={"account_id": "accounts"},
    ),
    # Who saw which variant of an experiment when (docs/experiments.md); exposures sent as
    # `Experiment Viewed` / `$feature_flag_called` events need no import.
    "exposures": EntitySpec(
        "experiment_exposures",
        (*_required("account_id", "experiment", "variant", "exposed_at"), *_optional("user_id")),
        key=("account_id", "experiment", "user_id", "exposed_at"),
        references={"account_id": "accounts"},
    ),
}

# Their tables, whose row counts `accountlens status` (and GET /api/v1/status) reports.
ENTITY_TABLES = tuple(spec.table for spec in ENTITIES.values())
# Imports of these kinds re-attribute stored events (the daily rollup is stale after them).
REATTRIBUTING = tuple(kind for kind, spec in ENTITIES.items() if spec.reattribute)

# --- the levels metrics are grouped at (SPEC §5) ----------------------------------------------
# Org unit kinds from the smallest: a level lists teams before departments.
UNIT_LEVELS = tuple(reversed(UNIT_KINDS))
USER_LEVELS = ("user", "role", "unit", *UNIT_LEVELS)
# Account attributes, computed as of the query's day.
SLICES = ("industry", "region", "plan", "size_band", "maturity", "deployment_scale")
ACCOUNT_LEVELS = ("account", *SLICES, "all")
LEVELS = (*USER_LEVELS, *ACCOUNT_LEVELS)
# What a metric request may keep only some of.
FILTERS = ("account", "user", *SLICES)
