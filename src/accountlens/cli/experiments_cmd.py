"""`accountlens experiments …`: account-level experiments (docs/experiments.md) — list those
known, assign accounts to variants, analyze one (the registered `experiments` analysis) and
plan one (power)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from accountlens.cli.analysis_cmd import analysis_command
from accountlens.cli.common import DirOption, FormatOption, fail, open_workspace
from accountlens.cli.formats import OutputFormat, emit

experiments_app = typer.Typer(help="Account-level experiments: assignment, exposures, effects "
                                   "and power.", no_args_is_help=True)
experiments_app.command("analyze")(analysis_command("experiments"))


def _numbers(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        fail(f"--{what} must be numbers separated by commas, e.g. 50,50 (got {text!r})")


@experiments_app.command("list")
def experiments_list(
    as_of: Annotated[dt.datetime | None, typer.Option(
        formats=["%Y-%m-%d"], help="Exposures up to the end of this day (default: the latest "
        "event day).")] = None,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Experiments known (created by assign, or seen in exposures), one row per variant:
    accounts assigned and exposed, first and last exposure."""
    with open_workspace(directory) as ws:
        rows = ws.experiments(as_of.date() if as_of else None)
    emit(rows, fmt, title="experiments")


@experiments_app.command("assign")
def experiments_assign(
    experiment: Annotated[str, typer.Option(help="The experiment's name (its exposures use it).")],
    variants: Annotated[str, typer.Option(help="Variants separated by commas, e.g. control,treatment.")],
    weights: Annotated[str | None, typer.Option(help="Weights per variant, e.g. 50,50 (default: equal).")] = None,
    stratify: Annotated[str | None, typer.Option(help="Balance within strata: size_band or arr.")] = None,
    accounts: Annotated[str, typer.Option(help="all, or customers (a subscription in force).")] = "all",
    description: Annotated[str | None, typer.Option(help="What the experiment tests.")] = None,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Assign accounts to variants: deterministic by account (salted hash), balanced within
    strata with --stratify, persisted; a rerun keeps every assignment and assigns only new
    accounts. Audited."""
    from accountlens.analysis.registry import AnalysisError

    shares = _numbers(weights, "weights")
    with open_workspace(directory) as ws:
        try:
            done = ws.assign_experiment(experiment, variants.split(","), shares, stratify,
                                        accounts, description)
        except AnalysisError as exc:
            fail(str(exc))
    emit(done["strata"], fmt, title=(
        f"experiment {done['experiment']}: {done['assigned']} account(s) assigned, "
        f"{done['kept']} kept from earlier runs"))


@experiments_app.command("power")
def experiments_power(
    accounts_per_arm: Annotated[int | None, typer.Option(help="Accounts per arm: gives the minimum detectable effect.")] = None,
    effect: Annotated[float | None, typer.Option(help="The effect to detect: gives the accounts per arm needed.")] = None,
    users_per_account: Annotated[float | None, typer.Option(help="Observations (users) per account (default 1, or estimated with --metric --unit user).")] = None,
    icc: Annotated[float | None, typer.Option(help="Intra-account correlation (default 0, or estimated).")] = None,
    sd: Annotated[float | None, typer.Option(help="Standard deviation of the metric (default 1, or estimated).")] = None,
    metric: Annotated[str | None, typer.Option(help="Estimate sd (and users per account, ICC) from this metric's data.")] = None,
    unit: Annotated[str, typer.Option(help="account or user: the unit the metric is estimated at.")] = "account",
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    power: Annotated[float, typer.Option(help="Probability of detecting the effect.")] = 0.8,
    as_of: Annotated[dt.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Estimate as of this day (default: the latest event day).")] = None,
    directory: DirOption = Path("."),
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """The minimum detectable effect of an account-level experiment (--accounts-per-arm), or
    the accounts per arm it needs (--effect)."""
    from accountlens.analysis.registry import AnalysisError

    with open_workspace(directory) as ws:
        try:
            row = ws.experiment_power(accounts_per_arm, effect, users_per_account, icc, sd,
                                      metric, unit, alpha, power, as_of.date() if as_of else None)
        except AnalysisError as exc:
            fail(str(exc))
    if fmt is OutputFormat.table:  # one wide row reads best as a list of what / value
        emit([{"what": k, "value": v} for k, v in row.items() if v is not None], fmt,
             title="experiment power")
    else:
        emit([row], fmt)
