"""Experiment exposures and assignments (docs/experiments.md): which accounts saw which variant
of an experiment, and when — read from `Experiment Viewed` (Segment) and `$feature_flag_called`
(PostHog) events and from imported exposure CSVs — and the deterministic, stable assignment of
accounts to variants that `accountlens experiments assign` persists.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import math
import secrets
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from accountlens.store.base import Store, WritableStore

if TYPE_CHECKING:
    import pandas as pd

# Segment's spec names the experiment and the variation by id and by name (some libraries send
# `experiment` / `variant`): the experiment is matched by any of its names, its key is the first
# one present; a variation is read by name first, so that `control` reads as the control.
SEGMENT_EXPOSURE = "Experiment Viewed"
POSTHOG_EXPOSURE = "$feature_flag_called"
_SEGMENT_EXPERIMENT = ("experiment_id", "experiment_name", "experiment")
_SEGMENT_VARIANT = ("variation_name", "variation_id", "variant")


def _prop(name: str) -> str:
    # the names are constants of this module, never a user's value
    return f"""json_extract_string(e.properties, '$."{name}"')"""


def _first(names: Sequence[str]) -> str:
    return "coalesce(" + ", ".join(_prop(n) for n in names) + ")"


def _names(names: Sequence[str]) -> str:
    return "list_value(" + ", ".join(_prop(n) for n in names) + ")"


# Every exposure known up to `$end` (exclusive), of experiment `$experiment` (by any of its names;
# NULL: of all experiments): account, experiment (its key), variant, time, user and source.
EXPOSURES_SQL = f"""
    SELECT account_id, experiment, variant, exposed_at, user_id, source FROM (
        SELECT e.account_id, {_first(_SEGMENT_EXPERIMENT)} AS experiment,
               {_names(_SEGMENT_EXPERIMENT)} AS names,
               {_first(_SEGMENT_VARIANT)} AS variant, e.timestamp AS exposed_at, e.user_id,
               'events' AS source
        FROM events e WHERE e.type = 'track' AND e.name = '{SEGMENT_EXPOSURE}'
        UNION ALL
        SELECT e.account_id, {_prop('$feature_flag')}, list_value({_prop('$feature_flag')}),
               {_prop('$feature_flag_response')}, e.timestamp, e.user_id, 'events'
        FROM events e WHERE e.type = 'track' AND e.name = '{POSTHOG_EXPOSURE}'
        UNION ALL
        SELECT account_id, experiment, list_value(experiment), variant, exposed_at, user_id,
               'import'
        FROM experiment_exposures
    )
    WHERE account_id IS NOT NULL AND experiment IS NOT NULL AND variant IS NOT NULL
      AND exposed_at < $end
      AND (CAST($experiment AS VARCHAR) IS NULL OR list_contains(names, CAST($experiment AS VARCHAR)))
"""

# Per exposed account of `$experiment`: its variants (first exposure first), its first exposure,
# and how many exposures it had.
ACCOUNT_EXPOSURES_SQL = f"""
    SELECT account_id, list(DISTINCT variant ORDER BY variant) AS variants,
           arg_min(variant, exposed_at) AS first_variant, min(exposed_at) AS first_exposed_at,
           count(*) AS exposures, count(DISTINCT user_id) AS exposed_users
    FROM ({EXPOSURES_SQL}) x GROUP BY account_id ORDER BY account_id
"""


class ExperimentError(ValueError):
    """An experiment request that cannot be done; the message says why."""


def account_exposures(store: Store, experiment: str, end: dt.datetime) -> pd.DataFrame:
    """One row per account exposed to `experiment` before `end`: `variants` (sorted),
    `first_variant`, `first_exposed_at`, `exposures`, `exposed_users`."""
    return store.df(ACCOUNT_EXPOSURES_SQL, {"experiment": experiment, "end": end})


# --- the design: variants, weights, salt ------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Design:
    """An experiment as `assign` created it: its variants with their weights, the salt of its
    hash (random, made once) and the account attribute it balances within (or None)."""

    experiment: str
    variants: tuple[str, ...]
    weights: tuple[float, ...]
    salt: str
    stratify_by: str | None = None

    @property
    def shares(self) -> dict[str, float]:
        total = sum(self.weights)
        return {v: w / total for v, w in zip(self.variants, self.weights)}


def design(store: Store, experiment: str) -> Design | None:
    """The stored design of `experiment`, or None when `assign` never ran for it."""
    rows = store.rows("SELECT experiment, CAST(variants AS VARCHAR) AS variants, salt, stratify_by "
                      "FROM experiments WHERE experiment = ?", [experiment])
    if not rows:
        return None
    row = rows[0]
    variants = orjson.loads(row["variants"])
    return Design(row["experiment"], tuple(v["name"] for v in variants),
                  tuple(float(v["weight"]) for v in variants), row["salt"], row["stratify_by"])


def checked_design(experiment: str, variants: Sequence[str], weights: Sequence[float] | None,
                   stratify_by: str | None) -> Design:
    """A new design from the request's values (checked), with a fresh random salt."""
    names = [v.strip() for v in variants]
    if not experiment.strip():
        raise ExperimentError("name the experiment (--experiment)")
    if len(names) < 2 or any(not n for n in names):
        raise ExperimentError("an experiment needs at least two variants, e.g. control,treatment")
    if len(set(names)) != len(names):
        raise ExperimentError(f"variants must differ: {', '.join(names)}")
    shares = [1.0] * len(names) if not weights else [float(w) for w in weights]
    if len(shares) != len(names):
        raise ExperimentError(f"{len(shares)} weights for {len(names)} variants: give one weight "
                              "per variant, e.g. --weights 50,50")
    if any(not (w > 0 and math.isfinite(w)) for w in shares) or not math.isfinite(sum(shares)):
        raise ExperimentError("weights must be positive numbers, e.g. 50,50")
    return Design(experiment.strip(), tuple(names), tuple(shares), secrets.token_hex(16),
                  stratify_by)


def hash_unit(salt: str, account_id: str) -> float:
    """The account's point in [0, 1): the first 8 bytes of sha256(salt:account_id) / 2^64."""
    digest = hashlib.sha256(f"{salt}:{account_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hashed_variant(design: Design, account_id: str) -> str:
    """The variant whose cumulative-weight interval holds the account's hash point."""
    point, cumulative = hash_unit(design.salt, account_id), 0.0
    for variant, share in design.shares.items():
        cumulative += share
        if point < cumulative:
            return variant
    return design.variants[-1]  # rounding of the last share


def balanced(design: Design, accounts: Sequence[str], kept: Mapping[str, int]) -> dict[str, str]:
    """Variants for the new `accounts` of one stratum, which already holds `kept` accounts per
    variant: in the order of their hash, each goes to the variant furthest below its share of
    the stratum (blocks following the weights; ties to the variant listed first)."""
    counts = {v: int(kept.get(v, 0)) for v in design.variants}
    chosen = {}
    for account in sorted(accounts, key=lambda a: (hash_unit(design.salt, a), a)):
        total = sum(counts.values()) + 1
        variant = max(design.variants, key=lambda v: (design.shares[v] * total - counts[v],
                                                      -design.variants.index(v)))
        chosen[account] = variant
        counts[variant] += 1
    return chosen


def assign(store: WritableStore, new: Design, accounts: Mapping[str, str | None],
           created_by: str, description: str | None = None) -> dict[str, Any]:
    """Assign `accounts` (account id → stratum, None when not stratified) to the variants of
    the experiment, persisting the assignments; an account assigned before keeps its variant.
    The design is stored on the first run; a rerun must ask for the same variants, weights and
    stratification. Returns `design`, `new` (account → variant) and `kept` (how many)."""
    with store.transaction():
        stored = design(store, new.experiment)
        if stored is None:
            store.execute(
                "INSERT INTO experiments VALUES (?, ?, ?, ?, ?, ?, now())",
                [new.experiment, orjson.dumps([{"name": v, "weight": w} for v, w
                                               in zip(new.variants, new.weights)]).decode(),
                 new.salt, new.stratify_by, description, created_by])
            current = new
        else:
            _same_design(stored, new)
            current = stored
        existing = {r["account_id"]: (r["variant"], r["stratum"]) for r in store.rows(
            "SELECT account_id, variant, stratum FROM experiment_assignments WHERE experiment = ?",
            [current.experiment])}
        fresh = [a for a in accounts if a not in existing]
        chosen: dict[str, str] = {}
        if current.stratify_by is None:
            chosen = {a: hashed_variant(current, a) for a in fresh}
        else:
            by_stratum: dict[str | None, list[str]] = {}
            for account in fresh:
                by_stratum.setdefault(accounts[account], []).append(account)
            for stratum, members in by_stratum.items():
                kept: dict[str, int] = {}
                for variant, kept_stratum in existing.values():
                    if kept_stratum == stratum:
                        kept[variant] = kept.get(variant, 0) + 1
                chosen.update(balanced(current, members, kept))
        if chosen:
            store.execute(
                """INSERT INTO experiment_assignments
                   SELECT ?, unnest(?), unnest(?), unnest(?), now()""",
                [current.experiment, list(chosen), list(chosen.values()),
                 [accounts[a] for a in chosen]])
    return {"design": current, "new": chosen, "kept": len(existing)}


def _same_design(stored: Design, new: Design) -> None:
    if stored.variants != new.variants or stored.shares != new.shares:
        weights = ",".join(f"{w:g}" for w in stored.weights)
        raise ExperimentError(
            f"experiment {stored.experiment!r} already has variants {','.join(stored.variants)} "
            f"with weights {weights}: a rerun assigns new accounts with the same design (give "
            "those), or name a new experiment")
    if stored.stratify_by != new.stratify_by:
        raise ExperimentError(
            f"experiment {stored.experiment!r} is stratified by {stored.stratify_by or 'nothing'}"
            f", not {new.stratify_by or 'nothing'}: a rerun keeps the design")


def assignment_counts(store: Store, experiment: str) -> list[dict[str, Any]]:
    """Accounts per stratum and variant of `experiment`'s assignments."""
    return store.rows(
        """SELECT coalesce(stratum, '(all)') AS stratum, variant, count(*) AS accounts
           FROM experiment_assignments WHERE experiment = ?
           GROUP BY ALL ORDER BY stratum, variant""", [experiment])


def assigned_accounts(store: Store, experiment: str) -> dict[str, str]:
    """account → assigned variant."""
    return {r["account_id"]: r["variant"] for r in store.rows(
        "SELECT account_id, variant FROM experiment_assignments WHERE experiment = ?",
        [experiment])}


def experiments_overview(store: Store, end: dt.datetime) -> list[dict[str, Any]]:
    """Every experiment known — created by `assign`, or seen in exposures before `end` — one
    row per variant: accounts assigned, accounts exposed, first and last exposure, sources."""
    return store.rows(
        f"""WITH x AS ({EXPOSURES_SQL}),
            exposed AS (
                SELECT experiment, variant, count(DISTINCT account_id) AS exposed_accounts,
                       min(exposed_at) AS first_exposure, max(exposed_at) AS last_exposure,
                       string_agg(DISTINCT source, ', ' ORDER BY source) AS sources
                FROM x GROUP BY ALL),
            assigned AS (
                SELECT experiment, variant, count(*) AS assigned_accounts
                FROM experiment_assignments GROUP BY ALL),
            designed AS (
                SELECT experiment, unnest(CAST(json_extract_string(variants, '$[*].name')
                                               AS VARCHAR[])) AS variant
                FROM experiments)
            SELECT k.experiment, k.variant,
                   coalesce(a.assigned_accounts, 0) AS assigned_accounts,
                   coalesce(e.exposed_accounts, 0) AS exposed_accounts,
                   strftime(e.first_exposure, '%Y-%m-%dT%H:%M:%SZ') AS first_exposure,
                   strftime(e.last_exposure, '%Y-%m-%dT%H:%M:%SZ') AS last_exposure,
                   concat_ws(', ', CASE WHEN d.experiment IS NOT NULL THEN 'assign' END,
                             e.sources) AS sources
            FROM (SELECT experiment, variant FROM designed UNION SELECT experiment, variant
                  FROM exposed UNION SELECT experiment, variant FROM assigned) k
            LEFT JOIN exposed e USING (experiment, variant)
            LEFT JOIN assigned a USING (experiment, variant)
            LEFT JOIN (SELECT DISTINCT experiment FROM experiments) d USING (experiment)
            ORDER BY k.experiment, k.variant""",
        {"end": end, "experiment": None})
