"""Bulk imports: JSONL/CSV/Parquet events and CRM/billing CSVs, with exact errors and no half-loads."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from accountlens.ingest.importers import ImportError_
from accountlens.workspace import Workspace
from tests.conftest import wait_for

EVENTS = [
    {"type": "track", "messageId": "m1", "userId": "u1", "event": "Report Created",
     "timestamp": "2024-01-01T10:00:00Z", "properties": {"object_id": "r1", "product": "reports"},
     "context": {"groupId": "acme"}},
    {"type": "page", "messageId": "m2", "userId": "u1", "name": "Home",
     "timestamp": "2024-01-01T10:05:00Z"},
    {"type": "track", "messageId": "m3", "userId": "u2", "timestamp": "2024-01-01T10:06:00Z"},
]


def counts(ws: Workspace) -> tuple[int, int]:
    return (ws.store.scalar("SELECT count(*) FROM events"),
            ws.store.scalar("SELECT count(*) FROM quarantine"))


def test_jsonl_import_is_idempotent_and_quarantines_invalid(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    first = ws.import_events(path)
    assert (first.received, first.inserted, first.quarantined) == (3, 2, 1)
    assert first.quarantine_reasons == {"track without event name": 1}
    again = ws.import_events(path)
    assert (again.inserted, again.duplicates) == (0, 2)
    assert counts(ws) == (2, 1)  # quarantine is deduplicated by message id too
    row = ws.store.arrow("SELECT * FROM events WHERE message_id = 'm1'").to_pylist()[0]
    assert (row["object_id"], row["product"], row["account_id"]) == ("r1", "reports", "acme")
    assert ws.quarantine()[0]["source"] == "import:events.jsonl:3"


def test_bad_json_line_refuses_whole_file(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(EVENTS[0]) + "\n" + '{"type": "track",\n' + json.dumps(EVENTS[1]) + "\n")
    with pytest.raises(ImportError_) as err:
        ws.import_events(path)
    assert f"{path}:2: invalid JSON" in str(err.value)
    assert counts(ws) == (0, 0)


def test_json_array_line_is_refused(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "arr.jsonl"
    path.write_text(json.dumps(EVENTS[0]) + "\n[1, 2]\n")
    with pytest.raises(ImportError_, match=r"arr.jsonl:2: not a JSON object"):
        ws.import_events(path)
    assert counts(ws) == (0, 0)


def test_csv_and_parquet_events_with_flattened_fields(ws: Workspace, tmp_path: Path) -> None:
    csv = tmp_path / "events.csv"
    csv.write_text(
        "type,messageId,userId,event,timestamp,properties.object_id,context.groupId\n"
        "track,c1,u1,Report Created,2024-01-01T10:00:00Z,r9,acme\n"
        "track,c2,u1,,2024-01-01T10:01:00Z,,\n"
    )
    result = ws.import_events(csv)
    assert (result.inserted, result.quarantined) == (1, 1)
    assert ws.quarantine()[0]["source"] == "import:events.csv:3"  # header is line 1
    table = pa.table({
        "type": ["track", "page"], "messageId": ["p1", "p2"], "userId": ["u3", "u3"],
        "event": ["Workflow Approved", None], "name": [None, "Settings"],
        "timestamp": ["2024-02-01T00:00:00Z", "2024-02-01T00:01:00Z"],
        "properties.object_id": ["w1", None],
    })
    pq.write_table(table, tmp_path / "events.parquet")
    result = ws.import_events(tmp_path / "events.parquet")
    assert result.inserted == 2
    rows = {r["message_id"]: r for r in ws.store.arrow("SELECT * FROM events").to_pylist()}
    assert rows["c1"]["object_id"] == "r9" and rows["c1"]["account_id"] == "acme"
    assert rows["p1"]["object_id"] == "w1" and rows["p2"]["name"] == "Settings"


def test_unknown_event_file_type(ws: Workspace, tmp_path: Path) -> None:
    for name in ("events.xml", "events.xml.gz", "events.gz"):
        path = tmp_path / name
        path.write_text("<x/>")
        with pytest.raises(ImportError_, match=r"unknown event file type; use one of .*\.jsonl\.gz"):
            ws.import_events(path)


def test_gzipped_jsonl_and_csv_import_like_plain_files(ws: Workspace, tmp_path: Path) -> None:
    """Exports arrive gzip-compressed (`.json.gz` lines from Segment's and RudderStack's S3
    destinations): they import as the plain file would, with the same line numbers."""
    import gzip

    jsonl = tmp_path / "export.json.gz"
    with gzip.open(jsonl, "wt") as fh:
        fh.write("".join(json.dumps(e) + "\n" for e in EVENTS))
    first = ws.import_events(jsonl)
    assert (first.received, first.inserted, first.quarantined) == (3, 2, 1)
    assert ws.quarantine()[0]["source"] == "import:export.json.gz:3"
    csv = tmp_path / "events.CSV.GZ"
    with gzip.open(csv, "wt") as fh:
        fh.write("type,messageId,userId,event,timestamp,context.groupId\n"
                 "track,g1,u1,Report Created,2024-01-01T10:00:00Z,acme\n")
    assert ws.import_events(csv).inserted == 1
    assert ws.store.scalar("SELECT account_id FROM events WHERE message_id = 'g1'") == "acme"

    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as fh:
        fh.write(json.dumps(EVENTS[0]) + "\n{oops\n")
    with pytest.raises(ImportError_, match=r"bad.jsonl.gz:2: invalid JSON"):
        ws.import_events(bad)
    assert ws.store.scalar("SELECT count(*) FROM events") == 3


def test_timestamp_correction_and_invalid_timestamps(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "skew.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in [
        # device clock 1 hour fast: sent 10 s after the event by the device's clock
        {"type": "track", "messageId": "s1", "userId": "u", "event": "X",
         "timestamp": "2024-01-01T11:00:00Z", "sentAt": "2024-01-01T11:00:10Z",
         "receivedAt": "2024-01-01T10:00:12Z"},
        {"type": "track", "messageId": "s2", "userId": "u", "event": "X",
         "timestamp": "not a date"},
    ]) + "\n")
    result = ws.import_events(path)
    assert result.quarantine_reasons == {"invalid timestamp not a date": 1}
    ts = ws.store.scalar("SELECT strftime(timestamp, '%H:%M:%S') FROM events WHERE message_id = 's1'")
    assert ts == "10:00:02"


def test_entity_csv_errors_name_file_line_and_column(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "subs.csv"
    path.write_text(
        "subscription_id,account_id,product,plan,seats,arr,start,end,status,entitlements\n"
        "s1,acme,core,pro,10,12000,2024-01-01,2025-01-01,active,\"{\"\"api_calls\"\": 1000}\"\n"
        "s2,acme,core,pro,ten,12000,2024-01-01,,active,\n"
        "s3,,core,pro,5,100,2024-13-01,,active,{bad\n"
    )
    with pytest.raises(ImportError_) as err:
        ws.import_entities("subscriptions", path)
    message = str(err.value)
    assert f"{path}:3 column seats: not a valid bigint (got 'ten')" in message
    assert f"{path}:4 column account_id: value is required" in message
    assert f"{path}:4 column start: not a valid date (got '2024-13-01')" in message
    assert f"{path}:4 column entitlements: not valid JSON" in message
    assert ws.store.scalar("SELECT count(*) FROM subscriptions") == 0


def test_entity_csv_missing_and_unknown_columns(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "outcomes.csv"
    path.write_text("account_id,date\nacme,2024-01-01\n")
    with pytest.raises(ImportError_, match="missing required column"):
        ws.import_entities("outcomes", path)
    path.write_text("account_id,kind,date,color\nacme,renewal,2024-01-01,red\n")
    with pytest.raises(ImportError_, match="unknown column"):
        ws.import_entities("outcomes", path)
    path.write_text("account_id,kind,date\nacme,renewed,2024-01-01\n")
    with pytest.raises(ImportError_, match="must be one of renewal"):
        ws.import_entities("outcomes", path)


def test_entity_import_replaces_by_key_and_keeps_extra_traits(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("account_id,name,domain,employees,parent_account_id,tier\n"
                    "acme,Acme,acme.com,120,,gold\nsub,Acme EU,acme.eu,30,acme,silver\n")
    assert ws.import_entities("accounts", path) == 2
    path.write_text("account_id,name,domain,employees,parent_account_id,tier\n"
                    "acme,Acme Corp,acme.com,150,,platinum\n")
    ws.import_entities("accounts", path)
    rows = {r["account_id"]: r for r in ws.store.arrow("SELECT * FROM accounts").to_pylist()}
    assert len(rows) == 2
    assert (rows["acme"]["name"], rows["acme"]["employees"]) == ("Acme Corp", 150)
    assert json.loads(rows["acme"]["traits"]) == {"tier": "platinum"}
    assert rows["sub"]["parent_account_id"] == "acme"
    subs = tmp_path / "subs.csv"
    subs.write_text("subscription_id,account_id,seats,arr,start,end,entitlements\n"
                    's1,acme,10,1200.5,2024-01-01,2025-01-01,"{""modules"": [""reports""]}"\n')
    ws.import_entities("subscriptions", subs)
    sub = ws.store.arrow("SELECT * FROM subscriptions").to_pylist()[0]
    assert (sub["seats"], sub["arr"], str(sub["start_date"])) == (10, 1200.5, "2024-01-01")
    assert json.loads(sub["entitlements"]) == {"modules": ["reports"]}


def test_duplicates_in_one_file_missing_ids_and_quarantined_raw(ws: Workspace, tmp_path: Path) -> None:
    """The file is parsed once, straight from disk: in-file duplicates load once, events without
    a messageId get a stable one, and a quarantined event keeps its raw JSON for replay."""
    no_id = {"type": "track", "userId": "u3", "event": "Opened", "timestamp": "2024-01-02T00:00:00Z"}
    bad = {"type": "track", "messageId": "m9", "userId": "u3", "timestamp": "2024-01-02T00:00:00Z",
           "properties": {"kept": True}}
    path = tmp_path / "dups.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in [EVENTS[0], EVENTS[0], no_id, bad, EVENTS[1]]))
    first = ws.import_events(path)
    assert (first.received, first.inserted, first.duplicates, first.quarantined) == (5, 3, 1, 1)
    again = ws.import_events(path)
    assert (again.inserted, again.duplicates) == (0, 4)
    assert ws.store.scalar("SELECT count(*) FROM events WHERE message_id LIKE 'h-%'") == 1
    sources = ws.store.arrow("SELECT source FROM events ORDER BY source").column("source").to_pylist()
    assert sources == ["import:dups.jsonl:1", "import:dups.jsonl:3", "import:dups.jsonl:5"]
    (quarantined,) = ws.quarantine()
    assert json.loads(quarantined["raw"]) == bad
    ws.replay_quarantine(patch={"event": "Fixed"})
    assert ws.store.scalar("SELECT name FROM events WHERE message_id = 'm9'") == "Fixed"


def test_staged_lines_are_numbered_in_file_order(ws: Workspace, tmp_path: Path) -> None:
    """Line numbers (which copy of a message id is first, an event's `file:line` source) come
    from the staged rows' ids: here over files of several of the reader's buffers each, inside
    a transaction (where row ids do not start at 0) as every load does."""
    from accountlens.ingest.pipeline import STAGING, stage_jsonl

    pad = "x" * 100
    paths = []
    for part in range(2):
        path = tmp_path / f"part{part}.jsonl"
        path.write_text("".join(f'{{"n":{part * 300_000 + i},"pad":"{pad}"}}\n'
                                for i in range(300_000)))
        paths.append(path)
    with ws.store.transaction():
        stage_jsonl(ws.store, paths, source_prefix="test:")
        wrong = ws.store.scalar(f"SELECT count(*) FROM {STAGING} "
                                "WHERE line_no <> CAST(json_extract(raw, '$.n') AS BIGINT) + 1")
        sources = ws.store.arrow(f"SELECT source, min(line_no) AS first FROM {STAGING} "
                                 "GROUP BY source ORDER BY first").to_pylist()
        ws.store.execute(f"DROP TABLE {STAGING}")
    assert wrong == 0
    assert [r["source"] for r in sources] == ["test:part0.jsonl", "test:part1.jsonl"]


def test_a_batch_of_many_segments_loads_under_a_small_memory_limit(ws: Workspace) -> None:
    """DuckDB's JSON reader holds a 32 MiB buffer per thread and file it reads: staging a batch
    of many small segments on two threads needed over 96 MiB, past the loader's small ingest
    limit, for a few events. Staging reads on one thread, and puts the thread count back."""
    from accountlens.ingest.loader import load_segments
    from accountlens.ingest.log import EventLog

    threads = ws.store.scalar("SELECT current_setting('threads')")
    event_log = EventLog(ws.log_dir, segment_bytes=1)  # every append fills a segment
    try:
        for i in range(40):
            event = {**EVENTS[0], "messageId": f"small-{i}"}
            event_log.append(json.dumps(event).encode() + b"\n").result()
        paths = event_log.seal()
        with ws.store.setting("threads", "2"), ws.store.setting("memory_limit", "64MB"):
            result = load_segments(ws.store, ws.config.ingest, ws.log_dir, paths)
            assert ws.store.scalar("SELECT current_setting('threads')") == 2
    finally:
        event_log.close()
    assert (len(paths), result.inserted) == (40, 40)
    assert ws.store.scalar("SELECT current_setting('threads')") == threads


def test_log_segments_load_as_one_batch_exactly_once(ws: Workspace) -> None:
    """The loader takes several sealed segments in one pipeline run and records each segment
    with its own counts; loading the same segments again changes nothing."""
    from accountlens.ingest.loader import load_segments
    from accountlens.ingest.log import EventLog

    event_log = EventLog(ws.log_dir, segment_bytes=1)  # every append fills a segment
    try:
        for batch in ([EVENTS[0], EVENTS[1]], [EVENTS[1], EVENTS[2]]):
            event_log.append(b"".join(json.dumps(e).encode() + b"\n" for e in batch)).result()
        paths = event_log.seal()
        copies = [(p, p.read_bytes()) for p in paths]
        result = load_segments(ws.store, ws.config.ingest, ws.log_dir, paths)
    finally:
        event_log.close()
    assert (result.received, result.inserted, result.duplicates, result.quarantined) == (4, 2, 1, 1)
    rows = ws.store.arrow("SELECT segment, received, inserted, duplicates, quarantined "
                          "FROM ingest_segments ORDER BY segment").to_pylist()
    assert [tuple(r.values())[1:] for r in rows] == [(2, 2, 0, 0), (2, 0, 1, 1)]
    assert [r["segment"] for r in rows] == [p.name for p in paths]
    assert ws.store.scalar("SELECT min(source) FROM events") == "collector:" + paths[0].name
    for path, data in copies:  # as if a crash came after the commit, before the files went
        path.write_bytes(data)
    again = load_segments(ws.store, ws.config.ingest, ws.log_dir, [p for p, _ in copies])
    assert again.received == 0 and counts(ws) == (2, 1)
    assert not any(p.exists() for p, _ in copies)


def test_loader_keeps_a_small_memory_limit_while_ingesting(ws: Workspace) -> None:
    """The background loader sets DuckDB's ingest memory limit while events arrive or wait to
    be loaded, and the normal one once the log is loaded."""
    import time

    from accountlens.ingest.loader import BackgroundLoader
    from accountlens.ingest.log import EventLog

    def limit() -> str:
        return ws.store.scalar("SELECT current_setting('memory_limit')")

    shown = {}
    for value in ("100MB", "300MB"):
        ws.store.execute("SET memory_limit = ?", [value])
        shown[value] = limit()
    cfg = ws.config.ingest.model_copy(update={"load_interval_seconds": 0.05})
    event_log = EventLog(ws.log_dir, segment_bytes=1)
    loader = BackgroundLoader(ws.store, cfg, event_log, memory_limits=("100MB", "300MB"))
    loader.start()
    try:
        seen = set()
        for i in range(40):  # requests keep arriving for ~1 s
            event = {**EVENTS[0], "messageId": f"arriving-{i}"}
            event_log.append(json.dumps(event).encode() + b"\n").result()
            seen.add(limit())
            time.sleep(0.025)
        deadline = time.monotonic() + 10
        while limit() != shown["300MB"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert shown["100MB"] in seen
        assert limit() == shown["300MB"]
    finally:
        loader.stop()
        event_log.close()
    assert ws.store.scalar("SELECT count(*) FROM events WHERE message_id LIKE 'arriving-%'") == 40


def test_loader_waits_under_heavy_traffic_but_no_longer_than_the_delay(ws: Workspace) -> None:
    """Under heavy traffic (over ~1 MB/s) loads wait for `max_load_delay_seconds`; traffic that
    goes on is loaded while it arrives; what remains is loaded once it stops."""
    from accountlens.ingest.loader import BackgroundLoader
    from accountlens.ingest.log import EventLog

    cfg = ws.config.ingest.model_copy(update={"load_interval_seconds": 0.2,
                                              "max_load_delay_seconds": 1.5})
    event_log = EventLog(ws.log_dir, segment_bytes=1 << 20)
    loader = BackgroundLoader(ws.store, cfg, event_log)
    loader.start()
    padding = "x" * 900  # ~1 KB events: 100 per append, ~10 MB/s
    stored_during: list[tuple[float, int]] = []
    sent = 0
    try:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < 4.0:
            lines = [json.dumps({**EVENTS[0], "messageId": f"heavy-{sent + i}",
                                 "properties": {"pad": padding}}).encode() for i in range(100)]
            event_log.append(b"\n".join(lines) + b"\n").result()
            sent += 100
            if int(elapsed * 10) % 5 == 0:
                stored_during.append((elapsed, ws.store.scalar("SELECT count(*) FROM events")))
            time.sleep(0.01)
        wait_for(lambda: ws.store.scalar("SELECT count(*) FROM events") == sent, timeout=60)
    finally:
        loader.stop()
        event_log.close()
    assert all(count == 0 for elapsed, count in stored_during if elapsed < 1.0)
    assert any(count > 0 for elapsed, count in stored_during), "loaded while traffic arrived"
    assert counts(ws) == (sent, 0)


def test_a_load_that_outgrows_the_ingest_memory_limit_runs_under_the_normal_one(
        ws: Workspace, caplog) -> None:
    """When a load runs out of memory under the small ingest limit (a store grown past what
    it can load: here the limit is tiny), the loader loads under the normal limit from then on
    instead of failing on every retry, and says in which pipeline step; nothing is lost or
    loaded twice."""
    from accountlens.ingest.loader import BackgroundLoader
    from accountlens.ingest.log import EventLog

    def limit() -> str:
        return ws.store.scalar("SELECT current_setting('memory_limit')")

    ws.store.execute("SET memory_limit = '512MB'")
    normal = limit()
    event_log = EventLog(ws.log_dir, segment_bytes=1 << 20)
    loader = BackgroundLoader(ws.store, ws.config.ingest, event_log,
                              memory_limits=("16MB", "512MB"))
    try:
        for part in range(2):  # two segments: two batches of the first load
            lines = [json.dumps({**EVENTS[0], "messageId": f"big-{part}-{i}"}).encode()
                     for i in range(20_000)]
            event_log.append(b"\n".join(lines) + b"\n").result()
            event_log.seal()
        loader._set_ingesting(True)  # as when events arrive
        assert limit() != normal
        with caplog.at_level("WARNING", logger="accountlens.loader"):
            result = loader.flush()
        assert loader.last_error is None
        assert result.inserted == 40_000
        warned = [r.getMessage() for r in caplog.records if "ingest limit" in r.getMessage()]
        # the step the load was in (with this tiny limit: reading the segments)
        assert len(warned) == 1 and "in its step stage, with " in warned[0], warned
        assert limit() == normal
        loader._set_ingesting(False)
        loader._set_ingesting(True)  # later traffic: the normal limit stays
        assert limit() == normal
    finally:
        loader.stop()
        event_log.close()
    assert ws.store.scalar("SELECT count(*) FROM events WHERE message_id LIKE 'big-%'") == 40_000
    assert ws.store.scalar("SELECT count(DISTINCT message_id) FROM events") == counts(ws)[0]


def _many_events(count: int) -> str:
    return "".join(
        json.dumps({"type": "track", "messageId": f"p{i}", "userId": f"u{i % 50}",
                    "event": "Report Created", "timestamp": "2024-01-01T10:00:00Z",
                    "context": {"groupId": f"a{i % 7}"}}) + "\n"
        for i in range(count))


def test_import_reports_its_progress_step_by_step(ws: Workspace, tmp_path: Path) -> None:
    """A progress bar's feed: the steps in the order they run, a share that never goes back,
    and `done` at 1.0; a refused file stops the feed without `done`."""
    import threading

    from accountlens.ingest.progress import DONE, STEPS

    path = tmp_path / "many.jsonl"
    path.write_text(_many_events(20_000))
    seen: list[tuple[str, float]] = []
    setting = "SELECT current_setting('enable_progress_bar')"
    before = ws.store.scalar(setting)
    result = ws.import_events(path, progress=lambda what, share: seen.append((what, share)))
    assert result.inserted == 20_000
    assert ws.store.scalar(setting) == before  # later queries do not track their progress
    labels = [what for what, _ in seen]
    order = [label for label, _ in STEPS.values()] + [DONE]
    steps = list(dict.fromkeys(labels))  # each label once, in the order first seen
    assert steps == [label for label in order if label in steps]
    assert {"reading", "parsing", "writing events", "committing"} <= set(steps)
    shares = [share for _, share in seen]
    assert shares == sorted(shares) and shares[0] == 0.0 and seen[-1] == (DONE, 1.0)

    bad = tmp_path / "bad.jsonl"
    bad.write_text(_many_events(10) + "{oops\n")
    seen.clear()
    with pytest.raises(ImportError_, match="bad.jsonl:11: invalid JSON"):
        ws.import_events(bad, progress=lambda what, share: seen.append((what, share)))
    assert seen and DONE not in [what for what, _ in seen]
    assert not [t for t in threading.enumerate() if t.name == "accountlens-import-progress"]


def test_cli_import_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """`accountlens import events` on a terminal (a pseudo-terminal here) draws the bar with
    the step each file is in; the summary table follows. (Which intermediate steps get drawn
    depends on the bar's refresh rate; the feed itself is checked step by step above.)"""
    import os
    import pty
    import subprocess
    import sys

    Workspace.init(tmp_path / "ws").close()
    path = tmp_path / "many.jsonl"
    path.write_text(_many_events(50_000))
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "accountlens", "import", "events", str(path), "-d", str(tmp_path / "ws")],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "120"})
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=120) == 0
    text = output.decode("utf-8", "replace")
    assert "many.jsonl: done" in text  # the bar's last refresh, when it stops
    assert "50000" in text  # the summary table: received and inserted


def test_cli_imports_every_event_file_under_a_folder(tmp_path: Path) -> None:
    """`accountlens import events FOLDER` imports the event files anywhere under it, in name
    order (an S3 export's dated folders of `.json.gz` files), each file whole or not at all;
    other and hidden files are left alone, and a folder without event files is an error."""
    import gzip
    import subprocess
    import sys

    Workspace.init(tmp_path / "ws").close()
    export = tmp_path / "export"
    for day, events in (("2024-01-02", [EVENTS[1]]), ("2024-01-01", [EVENTS[0], EVENTS[2]])):
        (export / day).mkdir(parents=True)
        with gzip.open(export / day / "part-0.json.gz", "wt") as fh:
            fh.write("".join(json.dumps(e) + "\n" for e in events))
    (export / "manifest.txt").write_text("not events")
    (export / ".cache").mkdir()
    (export / ".cache" / "old.jsonl").write_text("{broken\n")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "accountlens", "import", "events", *args,
                               "-d", str(tmp_path / "ws"), "--format", "json"],
                              capture_output=True, text=True, timeout=120)

    done = cli(str(export))
    assert done.returncode == 0, done.stderr
    assert [(Path(r["file"]).parent.name, r["inserted"], r["quarantined"])
            for r in json.loads(done.stdout)] == [("2024-01-01", 1, 1), ("2024-01-02", 1, 0)]
    (tmp_path / "empty").mkdir()
    refused = cli(str(tmp_path / "empty"))
    assert refused.returncode == 1 and "no event files in this folder" in refused.stderr
