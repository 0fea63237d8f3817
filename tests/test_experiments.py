"""Account-level experiments end to end (docs/experiments.md): exposures from `Experiment
Viewed` and `$feature_flag_called` events and from imported CSVs, deterministic and stable
assignment, the `experiments` analysis recovering a planted effect, its checks (sample ratio,
multiply-exposed accounts), point-in-time truth, and the same rows through the CLI, REST and
Python. The statistics themselves (CR2, A/A) are tested in tests/test_experiment_stats.py."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from accountlens.analysis.registry import AnalysisError
from accountlens.cli.main import app
from accountlens.ingest.importers import ImportError_
from accountlens.model import exposures
from accountlens.workspace import Workspace

from .conftest import admin_headers, start_server

ACCOUNTS = 120
USERS_PER_ACCOUNT = 3
EFFECT = 3.0  # extra active events per user and month in treated accounts (the depth metric)
EXPOSED_ON = dt.date(2024, 3, 1)
AS_OF = dt.date(2024, 3, 31)
runner = CliRunner()


def _day(day: dt.date, rng: random.Random) -> str:
    moment = dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC) + dt.timedelta(
        minutes=rng.randrange(600))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _track(mid: str, user: str, name: str, ts: str, props: dict | None = None,
           group: str | None = None) -> dict:
    event = {"type": "track", "messageId": mid, "userId": user, "event": name, "timestamp": ts,
             "properties": props or {}}
    if group:
        event["context"] = {"groupId": group}
    return event


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _import_events(ws: Workspace, path: Path, events: list[dict]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    ws.import_events(path)


def crm(ws: Workspace, folder: Path, accounts: int = ACCOUNTS) -> None:
    """Accounts (with employees and ARR to stratify by), users, memberships, subscriptions."""
    rng = random.Random(5)
    ids = [f"acc-{i:03d}" for i in range(accounts)]
    ws.import_entities("accounts", _write(folder / "accounts.csv", "account_id,name,employees\n" + "".join(
        f"{a},Account {a},{rng.choice([20, 120, 600, 3000])}\n" for a in ids)))
    ws.import_entities("users", _write(folder / "users.csv", "user_id,email\n" + "".join(
        f"{a}-u{k},u{k}@{a}.example\n" for a in ids for k in range(USERS_PER_ACCOUNT))))
    ws.import_entities("memberships", _write(
        folder / "memberships.csv", "user_id,account_id,role,valid_from\n" + "".join(
            f"{a}-u{k},{a},member,2024-01-01\n" for a in ids for k in range(USERS_PER_ACCOUNT))))
    ws.import_entities("subscriptions", _write(
        folder / "subscriptions.csv", "subscription_id,account_id,arr,start,end\n" + "".join(
            f"s-{a},{a},{rng.choice([5000, 30000, 120000, 600000])},2024-01-01,2025-01-01\n"
            for a in ids)))


def activity(ws: Workspace, folder: Path, variants: dict[str, str], seed: int = 11,
             exposure: str = "segment") -> None:
    """Each account's users act at the account's own rate before and after the exposure on
    EXPOSED_ON; users of treated accounts (variant != control) act EFFECT times more a month
    after it. Each account is exposed once, by an `Experiment Viewed` event (segment) or a
    `$feature_flag_called` event (posthog)."""
    rng = random.Random(seed)
    events = []
    for account, variant in sorted(variants.items()):
        rate = rng.uniform(2, 9)
        users = [f"{account}-u{k}" for k in range(USERS_PER_ACCOUNT)]
        for user in users:
            before = max(1, round(rate + rng.gauss(0, 1)))
            after = max(1, round(rate + (EFFECT if variant != "control" else 0) + rng.gauss(0, 1)))
            for n in range(before):
                day = dt.date(2024, 2, 1) + dt.timedelta(days=rng.randrange(28))
                events.append(_track(f"{user}-b{n}", user, "Report Created", _day(day, rng)))
            for n in range(after):
                day = dt.date(2024, 3, 2) + dt.timedelta(days=rng.randrange(29))
                events.append(_track(f"{user}-a{n}", user, "Report Created", _day(day, rng)))
        exposed_at = _day(EXPOSED_ON, rng)
        if exposure == "segment":
            events.append(_track(f"{account}-x", users[0], "Experiment Viewed", exposed_at,
                                 {"experiment_id": "onboarding", "experiment_name": "New onboarding",
                                  "variation_id": variant, "variation_name": variant}))
        else:
            events.append(_track(f"{account}-x", users[0], "$feature_flag_called", exposed_at,
                                 {"$feature_flag": "onboarding", "$feature_flag_response": variant}))
    _import_events(ws, folder / f"events-{seed}.jsonl", events)


def assigned(ws: Workspace, experiment: str = "onboarding") -> dict[str, str]:
    return {r["account_id"]: r["variant"] for r in ws.store.rows(
        "SELECT account_id, variant FROM experiment_assignments WHERE experiment = ? ORDER BY 1",
        [experiment])}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A workspace whose accounts `assign` split into control and treatment (stratified by
    size band), exposed by `Experiment Viewed` events, with a planted effect on depth."""
    folder = tmp_path_factory.mktemp("world")
    with Workspace.init(folder / "ws", name="world") as ws, pytest.MonkeyPatch.context() as patch:
        crm(ws, folder)
        # a fixed salt: the same accounts treated in every run (a fresh random salt made the
        # planted effect's 95% interval miss it in about one run in twenty)
        patch.setattr(exposures.secrets, "token_hex", lambda n: "world-salt")
        ws.assign_experiment("onboarding", ["control", "treatment"], stratify="size_band")
        activity(ws, folder, assigned(ws))
    return folder / "ws"


@pytest.fixture
def copy(world: Path, tmp_path: Path) -> Workspace:
    """A copy of the world to change."""
    shutil.copytree(world, tmp_path / "ws")
    workspace = Workspace.open(tmp_path / "ws")
    yield workspace
    workspace.close()


def analyze(ws: Workspace, **params) -> pd.DataFrame:
    return ws.analysis("experiments", as_of=AS_OF, **params)


def notes_of(frame: pd.DataFrame) -> str:
    return "\n".join(frame.attrs["notes"])


def inside(row: pd.Series, value: float) -> bool:
    return row["ci_low"] <= value <= row["ci_high"]


# ---- the effect, recovered ----------------------------------------------------------------------
def test_a_planted_effect_on_a_metric_is_recovered_inside_its_interval(world) -> None:
    with Workspace.open(world) as ws:
        frame = analyze(ws, experiment="onboarding", metric="depth")
        plain = analyze(ws, experiment="onboarding", metric="depth", cuped=False)
        by_name = analyze(ws, experiment="New onboarding", metric="depth")  # its name works too
    assert list(frame.columns) == ["variant", "accounts", "mean", "effect", "relative_lift",
                                   "ci_low", "ci_high", "p_value", "df", "method", "srm_p_value",
                                   "srm_mismatch", "multiple_exposure"]
    control, treatment = frame.iloc[0], frame.iloc[1]
    assert control["variant"] == "control" and control["effect"] == 0
    assert pd.isna(control["p_value"]) and pd.isna(control["ci_low"])
    assert control["accounts"] + treatment["accounts"] == ACCOUNTS
    assert inside(treatment, EFFECT) and treatment["p_value"] < 1e-6
    assert treatment["relative_lift"] == pytest.approx(treatment["effect"] / control["mean"], rel=0.2)
    assert not treatment["srm_mismatch"] and treatment["multiple_exposure"] == 0
    text = notes_of(frame)
    assert "sample ratio: accounts control" in text and "no mismatch" in text
    assert "CUPED: theta" in text and "variance reduced by" in text
    # CUPED narrows the interval around the same effect
    unadjusted = plain.iloc[1]
    assert inside(unadjusted, EFFECT)
    assert treatment["ci_high"] - treatment["ci_low"] < unadjusted["ci_high"] - unadjusted["ci_low"]
    assert "CUPED" not in notes_of(plain)
    pd.testing.assert_frame_equal(by_name, frame)


def test_user_level_observations_are_clustered_by_account(world) -> None:
    with Workspace.open(world) as ws:
        frame = analyze(ws, experiment="onboarding", metric="depth", unit="user")
        with pytest.raises(AnalysisError, match="metric mau has no user level"):
            analyze(ws, experiment="onboarding", metric="mau", unit="user")
    assert list(frame.columns)[-1] == "users"
    treatment = frame.iloc[1]
    assert frame["users"].sum() == ACCOUNTS * USERS_PER_ACCOUNT
    assert inside(treatment, EFFECT) and treatment["method"] == "cr2"
    assert "design effect" in notes_of(frame)  # the user-level bias warning


def test_an_outcome_after_the_exposure_is_compared(copy, tmp_path) -> None:
    """Treated accounts expand more often after their exposure; outcomes dated before it, or
    after as_of, do not count."""
    rng = random.Random(3)
    variants = assigned(copy)
    lines, expanded = [], {"control": 0, "treatment": 0}
    for account, variant in variants.items():
        if rng.random() < (0.7 if variant == "treatment" else 0.2):
            lines.append(f"{account},expansion,2024-03-20,1000\n")
            expanded[variant] += 1
        lines.append(f"{account},expansion,2024-02-10,500\n")  # before the exposure
        lines.append(f"{account},expansion,2024-04-10,500\n")  # after as_of
    copy.import_entities("outcomes", _write(tmp_path / "o.csv", "account_id,kind,date,arr_delta\n"
                                            + "".join(lines)))
    frame = analyze(copy, experiment="onboarding", outcome="expansion", cuped=False)
    share = {v: expanded[v] / list(variants.values()).count(v) for v in expanded}
    control, treatment = frame.iloc[0], frame.iloc[1]
    assert control["mean"] == pytest.approx(share["control"])
    assert treatment["mean"] == pytest.approx(share["treatment"])
    assert treatment["effect"] == pytest.approx(share["treatment"] - share["control"])
    assert inside(treatment, 0.5)
    arr = analyze(copy, experiment="onboarding", outcome="expansion", outcome_value="arr")
    assert arr.iloc[1]["mean"] == pytest.approx(1000 * share["treatment"])
    # every account expanded once in the year before: no variance, CUPED is skipped and said so
    assert "CUPED skipped" in notes_of(arr)


# ---- where exposures come from --------------------------------------------------------------------
def test_posthog_feature_flag_exposures(tmp_path) -> None:
    with Workspace.init(tmp_path / "ws", name="posthog") as ws:
        crm(ws, tmp_path, accounts=60)
        variants = {f"acc-{i:03d}": ("control" if i % 2 else "new-flow") for i in range(60)}
        activity(ws, tmp_path, variants, exposure="posthog")
        frame = analyze(ws, experiment="onboarding", metric="depth")
        listed = ws.experiments()
    assert list(frame["variant"]) == ["control", "new-flow"]
    assert list(frame["accounts"]) == [30, 30] and inside(frame.iloc[1], EFFECT)
    assert "few accounts (the smallest arm has 30, fewer than 50)" in notes_of(frame)
    assert [(r["experiment"], r["variant"], r["exposed_accounts"], r["sources"]) for r in listed] == [
        ("onboarding", "control", 30, "events"), ("onboarding", "new-flow", 30, "events")]


EXPOSURES = "account_id,experiment,variant,exposed_at,user_id\n"


def test_imported_exposures_and_their_checks(copy, tmp_path) -> None:
    """An exposures CSV: its accounts' variants, re-imported idempotently; a bad row (an unknown
    account, a bad timestamp) refuses the file naming FILE:LINE and the column."""
    rows = [f"acc-{i:03d},pricing,{'A' if i % 2 else 'B'},2024-03-0{1 + i % 3}T10:00:00Z,"
            f"acc-{i:03d}-u0\n" for i in range(40)]
    path = _write(tmp_path / "exposures.csv", EXPOSURES + "".join(rows))
    assert copy.import_entities("exposures", path) == 40
    assert copy.import_entities("exposures", path) == 40  # the same rows replace themselves
    assert copy.store.scalar("SELECT count(*) FROM experiment_exposures") == 40
    frame = analyze(copy, experiment="pricing", metric="depth", control="B")
    assert list(frame["variant"]) == ["B", "A"] and list(frame["accounts"]) == [20, 20]
    listed = [r for r in copy.experiments() if r["experiment"] == "pricing"]
    assert [(r["variant"], r["exposed_accounts"], r["first_exposure"], r["sources"]) for r in listed] == [
        ("A", 20, "2024-03-01T10:00:00Z", "import"), ("B", 20, "2024-03-01T10:00:00Z", "import")]

    for bad, message in (
            ("acc-999,pricing,A,2024-03-01T10:00:00Z,\n",
             "bad.csv:3 column account_id: 'acc-999' names no account (import accounts first)"),
            ("acc-001,pricing,A,yesterday,\n",
             "bad.csv:3 column exposed_at: not a valid timestamptz (got 'yesterday')")):
        bad_path = _write(tmp_path / "bad.csv", EXPOSURES + rows[0] + bad)
        with pytest.raises(ImportError_) as caught:
            copy.import_entities("exposures", bad_path)
        assert message in [e.replace(str(tmp_path) + "/", "") for e in caught.value.errors]
        cli = runner.invoke(app, ["import", "exposures", str(bad_path), "--dir", str(copy.root)])
        assert cli.exit_code == 1 and message.split(":", 1)[1] in cli.stderr
    assert copy.store.scalar("SELECT count(*) FROM experiment_exposures") == 40  # unchanged
    # user_id is optional: a file without the column imports too
    no_users = _write(tmp_path / "accounts-only.csv", "account_id,experiment,variant,exposed_at\n"
                      + "".join(f"acc-{i:03d},pricing-2,A,2024-03-01T10:00:00Z\n" for i in range(4)))
    assert copy.import_entities("exposures", no_users) == 4


def test_multiply_exposed_accounts_are_reported_and_left_out(copy, tmp_path) -> None:
    twice = ["acc-000", "acc-001", "acc-002"]
    variants = assigned(copy)
    _import_events(copy, tmp_path / "again.jsonl", [
        _track(f"again-{a}", f"{a}-u1", "Experiment Viewed", "2024-03-04T10:00:00Z",
               {"experiment_id": "onboarding",
                "variation_name": "treatment" if variants[a] == "control" else "control"})
        for a in twice])
    frame = analyze(copy, experiment="onboarding", metric="depth")
    assert list(frame["multiple_exposure"]) == [3, 3]  # each was exposed to both variants
    assert frame["accounts"].sum() == ACCOUNTS - 3
    assert "3 account(s) were exposed to several variants (acc-000, acc-001, acc-002): left out" \
        in notes_of(frame)
    kept = analyze(copy, experiment="onboarding", metric="depth", include_multiple=True)
    assert kept["accounts"].sum() == ACCOUNTS and "kept under the variant of their first" in notes_of(kept)


def test_a_skewed_split_is_flagged_as_a_sample_ratio_mismatch(copy, tmp_path) -> None:
    copy.assign_experiment("skewed", ["control", "treatment"], weights=[50, 50])
    rows = [f"acc-{i:03d},skewed,{'treatment' if i % 4 else 'control'},2024-03-02T10:00:00Z,\n"
            for i in range(ACCOUNTS)]  # 75% treatment where 50% was planned
    copy.import_entities("exposures", _write(tmp_path / "skew.csv", EXPOSURES + "".join(rows)))
    frame = analyze(copy, experiment="skewed", metric="depth")
    assert frame["srm_mismatch"].all() and frame["srm_p_value"].iloc[0] < 0.001
    assert "SAMPLE RATIO MISMATCH" in notes_of(frame) and "control 30, treatment 90" in notes_of(frame)


# ---- assignment -------------------------------------------------------------------------------
def _hash_variant(salt: str, account: str, shares: list[tuple[str, float]]) -> str:
    """The documented rule, written again: sha256(salt:account)'s first 8 bytes / 2^64 through
    the cumulative weights."""
    import hashlib

    point = int.from_bytes(hashlib.sha256(f"{salt}:{account}".encode()).digest()[:8], "big") / 2**64
    total, cumulative = sum(w for _, w in shares), 0.0
    for variant, weight in shares:
        cumulative += weight / total
        if point < cumulative:
            return variant
    return shares[-1][0]


def test_assignment_is_deterministic_stable_and_assigns_only_new_accounts(tmp_path) -> None:
    with Workspace.init(tmp_path / "ws", name="assign") as ws:
        crm(ws, tmp_path, accounts=40)
        first = ws.assign_experiment("pricing", ["control", "cheaper"], weights=[80, 20])
        salt = ws.store.scalar("SELECT salt FROM experiments WHERE experiment = 'pricing'")
        before = assigned(ws, "pricing")
        assert first["assigned"] == 40 and first["kept"] == 0 and len(before) == 40
        assert before == {a: _hash_variant(salt, a, [("control", 80), ("cheaper", 20)])
                          for a in before}
        assert 20 <= list(before.values()).count("control") <= 39
        again = ws.assign_experiment("pricing", ["control", "cheaper"])  # the stored weights
        assert again["assigned"] == 0 and again["kept"] == 40 and assigned(ws, "pricing") == before
        crm(ws, tmp_path, accounts=55)  # 15 accounts more (the first 40 re-imported unchanged)
        grown = ws.assign_experiment("pricing", ["control", "cheaper"], weights=[80, 20])
        after = assigned(ws, "pricing")
        assert grown["assigned"] == 15 and grown["kept"] == 40
        assert {a: after[a] for a in before} == before and len(after) == 55
        assert sum(r["new"] for r in grown["strata"]) == 15
        with pytest.raises(AnalysisError, match="already has variants control,cheaper with weights 80,20"):
            ws.assign_experiment("pricing", ["control", "cheaper"], weights=[50, 50])
        with pytest.raises(AnalysisError, match="2 weights for 3 variants"):
            ws.assign_experiment("other", ["a", "b", "c"], weights=[1, 2])
        audited = ws.audit.entries(action="experiment.assign")
        assert [(e["target"], e["details"]["assigned"], e["details"]["kept"]) for e in audited] == [
            ("pricing", 40, 0), ("pricing", 0, 40), ("pricing", 15, 40)]


def test_stratified_assignment_balances_every_stratum(world, tmp_path) -> None:
    shutil.copytree(world, tmp_path / "ws")
    with Workspace.open(tmp_path / "ws") as ws:
        by_size = ws.assign_experiment("onboarding", ["control", "treatment"], stratify="size_band")
        by_arr = ws.assign_experiment("arr-test", ["a", "b", "c"], weights=[2, 1, 1], stratify="arr",
                                      accounts="customers")
    assert by_size["assigned"] == 0 and by_size["kept"] == ACCOUNTS  # the world's, kept
    sizes: dict[str, dict[str, int]] = {}
    for row in by_size["strata"]:
        sizes.setdefault(row["stratum"], {})[row["variant"]] = row["accounts"]
    assert set(sizes) == {"<50", "50-249", "250-999", "1000+"}
    assert all(abs(n["control"] - n["treatment"]) <= 1 for n in sizes.values())
    arr: dict[str, dict[str, int]] = {}
    for row in by_arr["strata"]:
        arr.setdefault(row["stratum"], {})[row["variant"]] = row["accounts"]
    assert set(arr) == {"<10000", "10000-49999", "50000-249999", "250000+"}
    for counts in arr.values():  # within a stratum each variant is within one of its share
        total = sum(counts.values())
        for variant, share in (("a", 0.5), ("b", 0.25), ("c", 0.25)):
            assert abs(counts.get(variant, 0) - share * total) <= 1


# ---- point-in-time --------------------------------------------------------------------------------
def test_nothing_after_as_of_changes_the_result(copy, tmp_path) -> None:
    """SPEC §8: events, exposures (events and imported) and outcomes after as_of change
    nothing of a result as of it."""
    copy.import_entities("outcomes", _write(tmp_path / "o1.csv", "account_id,kind,date\n" + "".join(
        f"acc-{i:03d},renewal,2024-03-15\n" for i in range(0, ACCOUNTS, 3))))
    asks = [{"metric": "depth"}, {"metric": "depth", "unit": "user"}, {"outcome": "renewal"}]
    before = [copy.analysis_result("experiments", experiment="onboarding", as_of=AS_OF, **ask)
              for ask in asks]
    listed = copy.experiments(AS_OF)
    later = "2024-04-02T10:00:00Z"
    variants = assigned(copy)
    events = [_track(f"late-x-{a}", f"{a}-u2", "Experiment Viewed", later,
                     {"experiment_id": "onboarding",
                      "variation_name": "treatment" if v == "control" else "control"})
              for a, v in list(variants.items())[:30]]
    events += [_track(f"late-{a}-{n}", f"{a}-u0", "Report Created", later)
               for a in variants for n in range(3)]
    _import_events(copy, tmp_path / "late.jsonl", events)
    copy.import_entities("exposures", _write(tmp_path / "late.csv", EXPOSURES + "".join(
        f"acc-{i:03d},onboarding,control,2024-04-03T00:00:00Z,\n" for i in range(10, 40))))
    copy.import_entities("outcomes", _write(tmp_path / "o2.csv", "account_id,kind,date\n" + "".join(
        f"acc-{i:03d},renewal,2024-04-05\n" for i in range(1, ACCOUNTS, 3))))
    for ask, earlier in zip(asks, before):
        again = copy.analysis_result("experiments", experiment="onboarding", as_of=AS_OF,
                                     cached=False, **ask)
        pd.testing.assert_frame_equal(again.frame, earlier.frame)
        assert again.notes == earlier.notes
    assert copy.experiments(AS_OF) == listed
    moved = copy.analysis("experiments", experiment="onboarding", metric="depth",
                          as_of=dt.date(2024, 4, 30))
    assert moved["multiple_exposure"].sum() > 0  # after as_of they count, as they should


# ---- the same rows through the CLI, REST and Python ----------------------------------------------
def _cli(*args: str) -> object:
    return runner.invoke(app, list(args))


def test_cli_rest_and_python_give_the_same_rows(copy) -> None:
    root = str(copy.root)
    params = {"experiment": "onboarding", "metric": "depth", "as_of": AS_OF.isoformat()}
    python = copy.analysis_result("experiments", **params)
    listed = copy.experiments()
    power = copy.experiment_power(accounts_per_arm=60, metric="depth", unit="user")
    needed = copy.experiment_power(effect=1.0, sd=2.0)
    copy.close()
    cli = _cli("experiments", "analyze", "--dir", root, "--experiment", "onboarding", "--metric",
               "depth", "--as-of", AS_OF.isoformat(), "--format", "json")
    assert cli.exit_code == 0, cli.output
    cli_rows = json.loads(cli.stdout)
    assert cli_rows == python.records() and len(cli_rows) == 2
    assert json.loads(_cli("experiments", "list", "--dir", root, "--format", "json").stdout) == listed
    cli_power = json.loads(_cli("experiments", "power", "--dir", root, "--accounts-per-arm", "60",
                                "--metric", "depth", "--unit", "user", "--format", "json").stdout)
    assert cli_power == [power] and power["users_per_account"] == USERS_PER_ACCOUNT
    assert 0 < power["icc"] < 1 and power["mde"] > 0
    assert needed["accounts_needed"] > 2 and needed["accounts_per_arm"] >= needed["accounts_needed"]
    table = _cli("experiments", "analyze", "--dir", root, "--experiment", "onboarding",
                 "--metric", "depth", "--as-of", AS_OF.isoformat())
    assert table.exit_code == 0 and "note: sample ratio" in table.stdout

    server = start_server(copy.root)
    try:
        body = httpx.get(server.url + "/api/v1/analyses/experiments", params=params, timeout=60).json()
        assert body["rows"] == cli_rows and body["notes"] == python.notes
        assert httpx.get(server.url + "/api/v1/experiments", timeout=30).json() == listed
        rest_power = httpx.get(server.url + "/api/v1/experiments/power", timeout=30, params={
            "accounts_per_arm": 60, "metric": "depth", "unit": "user"}).json()
        assert rest_power == power
        assert httpx.get(server.url + "/api/v1/experiments/power", params={"effect": 1.0, "sd": 2.0},
                         timeout=30).json() == needed
        # assigning is an admin's: refused without the token, done with it (and audited)
        body = {"variants": ["control", "treatment"], "stratify": "arr"}
        refused = httpx.post(server.url + "/api/v1/experiments/checkout/assign", json=body, timeout=30)
        assert refused.status_code == 401
        done = httpx.post(server.url + "/api/v1/experiments/checkout/assign", json=body,
                          headers=admin_headers(copy.root), timeout=30)
        assert done.status_code == 200, done.text
        assert done.json()["assigned"] == ACCOUNTS and done.json()["stratify_by"] == "arr"
        again = httpx.post(server.url + "/api/v1/experiments/checkout/assign", json=body,
                           headers=admin_headers(copy.root), timeout=30).json()
        assert again["assigned"] == 0 and again["kept"] == ACCOUNTS
        # bad requests: 400 naming the problem; 422 for a missing or mistyped parameter
        for query, status, words in (
                ({**params, "outcome": "renewal"}, 400, "exactly one of metric"),
                ({**params, "experiment": "nope"}, 404, "unknown experiment 'nope'"),
                ({**params, "metric": "nope"}, 400, "nope"),
                ({"metric": "depth"}, 422, "experiment"),
                ({**params, "method": "bogus"}, 422, "method")):
            response = httpx.get(server.url + "/api/v1/analyses/experiments", params=query, timeout=30)
            assert response.status_code == status and words in response.json()["error"], query
        bad = httpx.post(server.url + "/api/v1/experiments/checkout/assign", timeout=30,
                         json={"variants": ["a", "b"], "weights": [1]}, headers=admin_headers(copy.root))
        assert bad.status_code == 400 and "1 weights for 2 variants" in bad.json()["error"]
        power_bad = httpx.get(server.url + "/api/v1/experiments/power", timeout=30)
        assert power_bad.status_code == 400 and "exactly one of accounts_per_arm" in power_bad.json()["error"]
        # PostHog's own capture of a feature flag call is an exposure of the flag's variant
        flags = {"api_key": server.write_key, "batch": [
            {"event": "$feature_flag_called", "distinct_id": f"acc-00{i}-u0", "uuid": f"flag-{i}",
             "timestamp": "2024-03-10T10:00:00Z",
             "properties": {"$feature_flag": "dark-mode", "$feature_flag_response": i % 2 == 0,
                            "$groups": {"company": f"acc-00{i}"}}} for i in range(4)]}
        assert httpx.post(server.url + "/batch/", json=flags, timeout=30).status_code == 200
        server.flush()
        seen = [r for r in httpx.get(server.url + "/api/v1/experiments", timeout=30).json()
                if r["experiment"] == "dark-mode"]
        assert [(r["variant"], r["exposed_accounts"], r["sources"]) for r in seen] == [
            ("false", 2, "events"), ("true", 2, "events")]
    finally:
        server.stop()
    with Workspace.open(copy.root) as ws:
        assert ws.audit.entries(action="experiment.assign")[-1]["target"] == "checkout"


@pytest.mark.parametrize(("args", "message"), [
    (["--experiment", "nope", "--metric", "depth"], "unknown experiment 'nope'"),
    (["--experiment", "onboarding", "--metric", "nope"], "unknown metric"),
    (["--experiment", "onboarding"], "name exactly one of metric"),
    (["--experiment", "onboarding", "--metric", "depth", "--outcome", "churn"], "not both"),
    (["--experiment", "onboarding", "--metric", "depth", "--control", "x"], "control 'x' is not a variant"),
    (["--experiment", "onboarding", "--metric", "funnel"], "several rows per account"),
    (["--experiment", "onboarding", "--outcome", "churn", "--unit", "user"], "outcomes are per account"),
    (["--metric", "depth"], "--experiment"),
    (["--experiment", "onboarding", "--metric", "depth", "--account", "acc-001"], "cannot be restricted"),
])
def test_bad_requests_fail_naming_the_problem(world, args, message) -> None:
    result = _cli("experiments", "analyze", "--dir", str(world), "--as-of", AS_OF.isoformat(), *args)
    assert result.exit_code == 1 and message in result.stderr, result.output


def test_a_variant_needs_two_accounts(copy, tmp_path) -> None:
    copy.import_entities("exposures", _write(tmp_path / "tiny.csv", EXPOSURES + (
        "acc-000,tiny,control,2024-03-02T10:00:00Z,\nacc-001,tiny,control,2024-03-02T10:00:00Z,\n"
        "acc-002,tiny,treatment,2024-03-02T10:00:00Z,\n")))
    with pytest.raises(AnalysisError, match="variant 'treatment' of 'tiny' has 1 account"):
        analyze(copy, experiment="tiny", metric="depth")


@pytest.mark.parametrize(("args", "message"), [
    (["assign", "--experiment", "x", "--variants", "a"], "at least two variants"),
    (["assign", "--experiment", "x", "--variants", "a,b", "--weights", "1,z"], "--weights must be numbers"),
    (["assign", "--experiment", "x", "--variants", "a,b", "--stratify", "region"], "stratify by one of"),
    (["power"], "exactly one of accounts_per_arm"),
    (["power", "--accounts-per-arm", "20", "--icc", "2"], "icc"),
    (["power", "--accounts-per-arm", "2", "--alpha", "5e-324"], "alpha must be in [1e-06, 0.5)"),
])
def test_bad_assign_and_power_requests(world, tmp_path, args, message) -> None:
    shutil.copytree(world, tmp_path / "ws")
    result = _cli("experiments", *args, "--dir", str(tmp_path / "ws"))
    assert result.exit_code == 1 and message in result.stderr, result.output
