"""The local store: SQLite in WAL mode for crossings, observations, evidence and verdicts.

One ``save_crossing`` call writes the crossing, its observations, its evidence references and
its verdict in a single transaction: either all of it is there after a power cut, or none.
Evidence images are files named by their sha256, written (atomically) before the transaction,
so a row never points at a missing file. Schema changes are numbered migrations.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import StoreError
from appliance.lanes.crossing import Crossing, read_kind
from appliance.publish.events import encode_event
from appliance.reads import BBox, Observation
from appliance.verdicts.rules import Verdict

log = logging.getLogger(__name__)

# Search keys (migration 5): the settled values of a crossing, normalised like the manifest's plate_key
# for the usual separators (upper case; no space, '-', '.', '·', '/', '_'). ``{c}`` is the crossings row.
_KEY = ("upper(replace(replace(replace(replace(replace(replace(trim({v}), ' ', ''), '-', ''), '.', ''), '·', ''), "
        "'/', ''), '_', ''))")
_SEARCH_KEY_SOURCES = (
    ("plate", "json_extract(c.summary_json, '$.tractor_plate.value')", ""),
    ("plate", "json_extract(c.summary_json, '$.trailer_plate.value')", ""),
    ("plate", "json_extract(c.summary_json, '$.fleet_id.value')", ""),
    ("container", "json_extract(j.value, '$.value')", ", json_each(c.summary_json, '$.containers') AS j"),
    ("seal", "json_extract(c.summary_json, '$.seal.serial.value')", ""),
    ("declaration", "j.value", ", json_each(c.summary_json, '$.declarations') AS j"),
    ("declaration", "c.declaration", ""),
)
_SEARCH_KEY_SQL = tuple(
    f"INSERT OR IGNORE INTO search_keys (crossing_id, kind, key) SELECT c.id, '{kind}', {_KEY.format(v=value)} "
    f"FROM {{c}}{join} WHERE {_KEY.format(v=value)} <> '';\n"
    for kind, value, join in _SEARCH_KEY_SOURCES
)
_NEW_ROW = "(SELECT NEW.id AS id, NEW.summary_json AS summary_json, NEW.declaration AS declaration) AS c"

MIGRATIONS: list[str] = [
    # 1: crossings, observations, evidence
    """
    CREATE TABLE crossings (
        id TEXT PRIMARY KEY,
        lane_id TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('CLEAR', 'REVIEW', 'HOLD')),
        declaration TEXT,
        reasons_json TEXT NOT NULL,
        summary_json TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX crossings_by_time ON crossings (ended_at);
    CREATE INDEX crossings_by_decision ON crossings (decision, ended_at);
    CREATE TABLE observations (
        id INTEGER PRIMARY KEY,
        crossing_id TEXT NOT NULL REFERENCES crossings (id) ON DELETE CASCADE,
        source_id TEXT NOT NULL,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        value TEXT,
        confidence REAL,
        bbox_json TEXT,
        evidence_sha256 TEXT REFERENCES evidence (sha256)
    );
    CREATE INDEX observations_by_crossing ON observations (crossing_id);
    CREATE TABLE evidence (
        sha256 TEXT PRIMARY KEY,
        relpath TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        mime TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    # 2: transactional outbox (one row per event) and per-sink delivery state (each sink its own cursor)
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        lane_id TEXT NOT NULL,
        crossing_id TEXT,
        created_at REAL NOT NULL,
        payload BLOB NOT NULL
    );
    CREATE INDEX outbox_by_lane ON outbox (lane_id, id);
    CREATE TABLE outbox_sinks (
        sink TEXT PRIMARY KEY,
        lane_id TEXT,
        registered_at REAL NOT NULL,
        last_ack_at REAL
    );
    CREATE TABLE outbox_delivery (
        sink TEXT NOT NULL REFERENCES outbox_sinks (sink) ON DELETE CASCADE,
        outbox_id INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_attempt_at REAL,
        next_attempt_at REAL NOT NULL DEFAULT 0,
        delivered_at REAL,
        PRIMARY KEY (sink, outbox_id)
    ) WITHOUT ROWID;
    CREATE INDEX outbox_delivery_pending ON outbox_delivery (sink, delivered_at, outbox_id);
    """,
    # 3: inbound from central (see appliance/inbound): applied event ids, manifests, watchlists, dead letters
    """
    CREATE TABLE inbound_events (
        event_id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload_sha256 TEXT NOT NULL,
        received_at REAL NOT NULL
    );
    CREATE TABLE inbound_manifest (
        declaration TEXT PRIMARY KEY,
        entry_json TEXT,
        cancelled INTEGER NOT NULL DEFAULT 0,
        event_id TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE watchlist (
        kind TEXT NOT NULL CHECK (kind IN ('plate', 'container', 'person')),
        value_key TEXT NOT NULL,
        reason TEXT NOT NULL,
        expires_at REAL,
        event_id TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (kind, value_key)
    );
    CREATE TABLE inbound_meta (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        received_at REAL NOT NULL,
        topic TEXT NOT NULL,
        reason TEXT NOT NULL,
        payload_bytes INTEGER NOT NULL,
        payload_sha256 TEXT NOT NULL,
        payload_head TEXT
    );
    CREATE INDEX dead_letters_by_time ON dead_letters (received_at);
    """,
    # 4: web UI accounts (appliance/store/users.py) and the hash-chained audit log (appliance/store/audit.py)
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('inspector', 'supervisor', 'model_engineer', 'admin')),
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        password_changed_at REAL NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        csrf_token TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen_at REAL NOT NULL
    );
    CREATE INDEX sessions_by_user ON sessions (user_id);
    CREATE TABLE login_failures (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        username TEXT NOT NULL,
        ip TEXT NOT NULL
    );
    CREATE INDEX login_failures_by_user ON login_failures (username, ts);
    CREATE INDEX login_failures_by_ip ON login_failures (ip, ts);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        details_json TEXT NOT NULL,
        prev_hash TEXT NOT NULL UNIQUE,
        hash TEXT NOT NULL UNIQUE
    );
    """,
    # 5: inspector review (appliance/store/decisions.py, review_queue.py, search.py): the review state of a
    # crossing and the queue index (undecided REVIEW/HOLD first, newest first), decisions with corrections
    # as labels for retraining, per-read details, and normalised search keys kept by a trigger
    """
    ALTER TABLE crossings ADD COLUMN reviewed_at REAL;
    ALTER TABLE crossings ADD COLUMN review_action TEXT;
    ALTER TABLE observations ADD COLUMN extras_json TEXT;
    CREATE INDEX crossings_queue ON crossings ((decision IN ('REVIEW', 'HOLD') AND reviewed_at IS NULL), ended_at, id);
    CREATE INDEX crossings_by_lane ON crossings (lane_id, ended_at);
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        crossing_id TEXT NOT NULL REFERENCES crossings (id) ON DELETE CASCADE,
        ts REAL NOT NULL,
        username TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('approve', 'hold', 'correct')),
        field TEXT CHECK (field IN ('tractor_plate', 'trailer_plate', 'fleet_id', 'container', 'seal', 'declaration')),
        old_value TEXT,
        new_value TEXT,
        reason TEXT NOT NULL CHECK (length(trim(reason)) > 0),
        evidence_sha256 TEXT REFERENCES evidence (sha256),
        event_id TEXT NOT NULL UNIQUE,
        CHECK ((action = 'correct') = (field IS NOT NULL AND new_value IS NOT NULL))
    );
    CREATE INDEX decisions_by_crossing ON decisions (crossing_id, id);
    CREATE VIEW labels AS
        SELECT id, crossing_id, ts, username, field, old_value AS read_value, new_value AS value, evidence_sha256
        FROM decisions WHERE action = 'correct';
    CREATE TABLE search_keys (
        crossing_id TEXT NOT NULL REFERENCES crossings (id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('plate', 'container', 'seal', 'declaration')),
        key TEXT NOT NULL,
        PRIMARY KEY (kind, key, crossing_id)
    ) WITHOUT ROWID;
    CREATE INDEX search_keys_by_crossing ON search_keys (crossing_id);
    """
    + "CREATE TRIGGER crossings_search_keys AFTER INSERT ON crossings BEGIN\n"
    + "".join(sql.format(c=_NEW_ROW) for sql in _SEARCH_KEY_SQL)
    + "END;\n"
    + "".join(sql.format(c="crossings AS c") for sql in _SEARCH_KEY_SQL),
    # 6: model registry (appliance/inference/registry.py): per task the active model, the previous one (for
    # rollback), an optional shadow candidate with its comparison stats, a generation counter the running
    # appliance polls, and an append-only history of every change and refusal
    """
    CREATE TABLE model_registry (
        task TEXT PRIMARY KEY,
        active_name TEXT NOT NULL,
        active_version TEXT NOT NULL,
        active_sha256 TEXT NOT NULL,
        previous_name TEXT,
        previous_version TEXT,
        previous_sha256 TEXT,
        shadow_name TEXT,
        shadow_version TEXT,
        shadow_sha256 TEXT,
        shadow_stats_json TEXT,
        shadow_stats_at REAL,
        generation INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    CREATE TABLE model_history (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        task TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('activate', 'rollback', 'shadow-start', 'shadow-stop', 'refused')),
        name TEXT,
        version TEXT,
        sha256 TEXT,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        forced INTEGER NOT NULL DEFAULT 0,
        generation INTEGER,
        details_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX model_history_by_task ON model_history (task, id);
    CREATE TRIGGER model_history_no_update BEFORE UPDATE ON model_history
    BEGIN SELECT RAISE(ABORT, 'model_history is append-only'); END;
    CREATE TRIGGER model_history_no_delete BEFORE DELETE ON model_history
    BEGIN SELECT RAISE(ABORT, 'model_history is append-only'); END;
    """,
    # 7: passenger lane passages (appliance/lanes/passenger.py): the verdict and the facts behind it, no
    # biometric data (the best face crop lives encrypted in the faces store, named here by its sha256)
    """
    CREATE TABLE passages (
        id TEXT PRIMARY KEY,
        lane_id TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL NOT NULL,
        decision TEXT NOT NULL CHECK (decision IN ('OPEN', 'DENY', 'MANUAL')),
        reasons TEXT NOT NULL,
        facts TEXT NOT NULL,
        person_ref TEXT,
        crop_sha256 TEXT,
        models TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX passages_by_time ON passages (started_at);
    """,
    # 8: X-ray results (appliance/xray/results.py): one row per scan, hash-addressed by its raw bytes, tied to
    # the crossing it belongs to (or to none, with the reason), the anomaly and consistency results, the
    # evidence image, and the DICOS-TDR-shaped report that was published
    """
    CREATE TABLE xray_results (
        scan_id TEXT PRIMARY KEY,
        scanner_id TEXT NOT NULL,
        lane_id TEXT,
        scanned_at REAL NOT NULL,
        received_at REAL NOT NULL,
        crossing_id TEXT,
        match TEXT NOT NULL CHECK (match IN ('container', 'plate', 'none')),
        match_detail TEXT NOT NULL,
        alarm INTEGER NOT NULL,
        score REAL NOT NULL,
        threshold REAL NOT NULL,
        goods TEXT,
        findings_json TEXT NOT NULL,
        consistency_json TEXT,
        models_json TEXT NOT NULL,
        evidence_sha256 TEXT REFERENCES evidence (sha256),
        tdr_json TEXT NOT NULL
    );
    CREATE INDEX xray_results_by_crossing ON xray_results (crossing_id);
    CREATE INDEX xray_results_by_time ON xray_results (scanned_at);
    """,
    # retention (appliance/retention): evidence files evicted under a disk budget keep their rows and say when;
    # a crossing says when its evidence went; legal holds an admin sets and releases keep a crossing's (or a
    # passage's) evidence whatever the budget; indexes for "who still needs this file"
    """
    ALTER TABLE evidence ADD COLUMN evicted_at REAL;
    ALTER TABLE crossings ADD COLUMN evidence_evicted_at REAL;
    CREATE INDEX evidence_live_by_age ON evidence (created_at, sha256) WHERE evicted_at IS NULL;
    CREATE INDEX observations_by_evidence ON observations (evidence_sha256);
    CREATE INDEX xray_results_by_evidence ON xray_results (evidence_sha256);
    CREATE INDEX decisions_by_evidence ON decisions (evidence_sha256);
    CREATE INDEX outbox_by_crossing ON outbox (crossing_id);
    CREATE INDEX outbox_by_time ON outbox (created_at);
    CREATE TABLE legal_holds (
        crossing_id TEXT PRIMARY KEY,
        reason TEXT NOT NULL CHECK (length(trim(reason)) > 0),
        actor TEXT NOT NULL,
        held_at REAL NOT NULL
    );
    """,
    # lane actuators (appliance/actuators/audit.py): every command, acknowledgement, fault and alarm of the barrier,
    # lights, board and IGV fleet link (append-only), and each lane's cycle state (a state other than idle at
    # start-up means the box stopped mid-crossing)
    """
    CREATE TABLE actuator_log (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        lane_id TEXT NOT NULL,
        crossing_id TEXT,
        seq INTEGER NOT NULL,
        actuator TEXT NOT NULL,
        record TEXT NOT NULL CHECK (record IN ('command', 'ack', 'fault', 'alarm', 'note')),
        action TEXT NOT NULL,
        code TEXT,
        detail_json TEXT NOT NULL,
        event_id TEXT NOT NULL UNIQUE
    );
    CREATE INDEX actuator_log_by_lane ON actuator_log (lane_id, id);
    CREATE INDEX actuator_log_by_crossing ON actuator_log (crossing_id, id);
    CREATE TRIGGER actuator_log_no_update BEFORE UPDATE ON actuator_log
    BEGIN SELECT RAISE(ABORT, 'actuator_log is append-only'); END;
    CREATE TRIGGER actuator_log_no_delete BEFORE DELETE ON actuator_log
    BEGIN SELECT RAISE(ABORT, 'actuator_log is append-only'); END;
    CREATE TABLE actuator_state (
        lane_id TEXT PRIMARY KEY,
        state TEXT NOT NULL CHECK (state IN ('idle', 'opening', 'open', 'closing', 'fault')),
        crossing_id TEXT,
        fleet_id TEXT,
        last_seq INTEGER NOT NULL DEFAULT 0,
        last_ended_at REAL,
        updated_at REAL NOT NULL
    );
    """,
    # verdict revisions (appliance/xray/verdict_revision.py): an X-ray alarm raises a crossing's verdict (CLEAR ->
    # REVIEW, never down) and puts an already decided crossing back into the queue; one row per revision, in the
    # X-ray result's transaction, with the reasons it added and the inspector decision it reopened
    """
    CREATE TABLE verdict_revisions (
        id INTEGER PRIMARY KEY,
        crossing_id TEXT NOT NULL REFERENCES crossings (id) ON DELETE CASCADE,
        revision INTEGER NOT NULL CHECK (revision >= 1),
        ts REAL NOT NULL,
        cause TEXT NOT NULL,
        scan_id TEXT,
        previous_decision TEXT NOT NULL CHECK (previous_decision IN ('CLEAR', 'REVIEW', 'HOLD')),
        decision TEXT NOT NULL CHECK (decision IN ('CLEAR', 'REVIEW', 'HOLD')),
        reasons_json TEXT NOT NULL,
        reopened_action TEXT,
        reopened_at REAL,
        event_id TEXT NOT NULL UNIQUE,
        UNIQUE (crossing_id, revision)
    );
    """,
]


class EvidenceWriteError(StoreError):
    """An evidence file could not be written (disk full, read-only, ...); the message names the file."""


# Builds the outbox event of a crossing's verdict (see appliance.publish.events.VerdictEventBuilder).
EventBuilder = Callable[[Crossing, Verdict], Mapping[str, Any]]


@dataclass(frozen=True)
class OutboxRow:
    """One undelivered event for one sink."""

    id: int
    event_id: str
    lane_id: str
    created_at: float
    payload: bytes
    attempts: int
    next_attempt_at: float


DEFAULT_BACKLOG_ALARM_S = 900.0


@dataclass(frozen=True)
class SinkStatus:
    """Delivery state of one sink, for `appliance outbox status` and the status API."""

    sink: str
    lane_id: str | None
    backlog: int
    oldest_undelivered_age_s: float | None
    last_ack_at: float | None
    last_error: str | None
    max_attempts: int
    alarm: bool = False  # the oldest undelivered event is older than the store's backlog_alarm_s


@dataclass(frozen=True)
class CrossingRow:
    id: str
    lane_id: str
    started_at: float
    ended_at: float
    decision: str
    declaration: str | None
    reasons: list[dict[str, Any]]
    summary: dict[str, Any]


def _observation_extras(obs: Observation) -> str | None:
    """What else a read said (JSON, for the inspector's review): candidates, raw text, colour, source ..."""
    read = obs.read
    extras: dict[str, Any] = {k: getattr(read, k) for k in _READ_EXTRAS
                              if getattr(read, k, None) not in (None, "", ()) and getattr(read, k) is not False}
    if getattr(read, "verified", True) is False:  # a container number no frame verified: the reviewer must see it
        extras["verified"] = False
    extras |= {f"extra.{k}": v for k, v in obs.extras.items()}
    if obs.models:
        extras["models"] = ", ".join(obs.models)
    return json.dumps(extras, ensure_ascii=False, default=list) if extras else None


_READ_EXTRAS = ("raw_text", "country", "layout", "colour", "is_trailer", "candidates", "verified", "size_type",
                "source", "format")


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script, one by one (a trigger's body keeps its own ``;``)."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""


def _observation_value(read: object) -> tuple[str | None, float | None, BBox | None]:
    for attr in ("text", "number", "serial"):
        if hasattr(read, attr):
            value = getattr(read, attr)
            break
    else:
        value = None
    if hasattr(read, "present") and value is None:
        value = "present" if read.present else "absent"
    return value, getattr(read, "confidence", None), getattr(read, "bbox", None)


class Store:
    """Thread-safe access to one SQLite file (one connection, serialised by a lock)."""

    def __init__(
        self,
        path: Path,
        evidence_dir: Path,
        event_builder: EventBuilder | None = None,
        backlog_alarm_s: float = DEFAULT_BACKLOG_ALARM_S,
    ):
        self.path = path
        self.evidence_dir = evidence_dir
        # Events never expire: a sink whose oldest undelivered event is older than this is in
        # alarm (status API, `appliance outbox status`, a WARNING from the publisher).
        self.backlog_alarm_s = backlog_alarm_s
        # When set, save_crossing also writes the verdict event into the outbox (same transaction).
        self.event_builder = event_builder
        self._saved_listeners: list[Callable[[], None]] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            evidence_dir.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc
        self._lock = threading.RLock()
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version()
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: store schema v{current} is newer than this appliance (v{len(MIGRATIONS)}); "
                "upgrade the appliance or restore a matching backup"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            with self.transaction() as conn:
                for statement in _statements(MIGRATIONS[version - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version}")
            log.info("store %s migrated to schema v%d", self.path, version)

    def put_evidence(self, data: bytes, mime: str = "image/jpeg") -> str:
        """Write an evidence file named by its sha256 (atomic rename) and return the hash."""
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        ext = {"image/jpeg": ".jpg", "image/png": ".png"}.get(mime, ".bin")
        rel = Path(digest[:2]) / f"{digest}{ext}"
        target = self.evidence_dir / rel
        written = False
        if not target.exists():
            tmp = target.with_suffix(target.suffix + ".tmp")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with tmp.open("wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                tmp.replace(target)
            except OSError as exc:  # e.g. ENOSPC: no half file stays, the caller keeps its read without the image
                tmp.unlink(missing_ok=True)
                raise EvidenceWriteError(
                    f"{target}: cannot write a {len(data)}-byte evidence file: {exc.strerror or exc} "
                    f"(errno {exc.errno}); check the evidence disk and the retention budget (docs/RETENTION.md)"
                ) from exc
            written = True
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO evidence (sha256, relpath, bytes, mime, created_at) VALUES (?,?,?,?,?)",
                (digest, str(rel), len(data), mime, time.time()),
            )
            if written:  # the same image again after retention evicted it: it is back on disk
                conn.execute("UPDATE evidence SET evicted_at = NULL, created_at = ? WHERE sha256 = ? "
                             "AND evicted_at IS NOT NULL", (time.time(), digest))
        return digest

    def evidence_path(self, sha256: str) -> Path | None:
        row = self._conn.execute("SELECT relpath FROM evidence WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else self.evidence_dir / row["relpath"]

    def save_crossing(self, crossing: Crossing, verdict: Verdict) -> None:
        """Crossing + observations + verdict (+ its outbox event, with an event builder) in one transaction."""
        event = self.event_builder(crossing, verdict) if self.event_builder is not None else None
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO crossings (id, lane_id, started_at, ended_at, decision, declaration, "
                "reasons_json, summary_json, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    crossing.id,
                    crossing.lane_id,
                    crossing.started_at,
                    crossing.ended_at,
                    verdict.decision,
                    verdict.declaration,
                    json.dumps([r.__dict__ for r in verdict.reasons], ensure_ascii=False),
                    json.dumps(crossing.summary(), ensure_ascii=False),
                    time.time(),
                ),
            )
            rows = []
            for obs in crossing.observations:
                value, confidence, bbox = _observation_value(obs.read)
                rows.append(
                    (
                        crossing.id,
                        obs.source_id,
                        obs.ts,
                        read_kind(obs.read),
                        value,
                        confidence,
                        json.dumps(bbox.__dict__) if bbox is not None else None,
                        obs.evidence_sha256,
                        _observation_extras(obs),
                    )
                )
            conn.executemany(
                "INSERT INTO observations (crossing_id, source_id, ts, kind, value, confidence, bbox_json, "
                "evidence_sha256, extras_json) VALUES (?,?,?,?,?,?,?,?,?)",
                rows,
            )
            if event is not None:
                self._enqueue(conn, event, crossing.lane_id, crossing.id)
        if event is not None:
            for listener in list(self._saved_listeners):
                listener()

    def _row(self, row: sqlite3.Row) -> CrossingRow:
        return CrossingRow(
            row["id"],
            row["lane_id"],
            row["started_at"],
            row["ended_at"],
            row["decision"],
            row["declaration"],
            json.loads(row["reasons_json"]),
            json.loads(row["summary_json"]),
        )

    def list_crossings(self, decision: str | None = None, limit: int = 50, offset: int = 0) -> list[CrossingRow]:
        with self._lock:
            if decision:
                cur = self._conn.execute(
                    "SELECT * FROM crossings WHERE decision = ? ORDER BY ended_at DESC LIMIT ? OFFSET ?",
                    (decision, limit, offset),
                )
            else:
                cur = self._conn.execute(
                    "SELECT * FROM crossings ORDER BY ended_at DESC LIMIT ? OFFSET ?", (limit, offset)
                )
            return [self._row(r) for r in cur.fetchall()]

    def get_crossing(self, crossing_id: str) -> CrossingRow | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM crossings WHERE id = ?", (crossing_id,)).fetchone()
        return None if row is None else self._row(row)

    def observations(self, crossing_id: str) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn.execute(
                "SELECT source_id, ts, kind, value, confidence, bbox_json, evidence_sha256 FROM observations "
                "WHERE crossing_id = ? ORDER BY ts", (crossing_id,)
            )
            return [dict(r) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        with self._lock:
            cur = self._conn.execute("SELECT decision, COUNT(*) AS n FROM crossings GROUP BY decision")
            return {r["decision"]: r["n"] for r in cur.fetchall()}

    def integrity_check(self) -> str:
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read-only statement (for the store's sibling modules: users, audit)."""
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # --- audit log (appliance/store/audit.py) ------------------------------------------------------

    def append_audit(self, actor: str, action: str, target: str | None = None,
                     details: Mapping[str, Any] | None = None) -> int:
        """Append one hash-chained audit entry in its own transaction; returns its id.

        Inside an open ``transaction()`` use ``appliance.store.audit.append(conn, ...)`` instead.
        """
        from appliance.store import audit

        with self.transaction() as conn:
            return audit.append(conn, actor, action, target, details)

    def verify_audit_chain(self) -> int | None:
        """Id of the first audit entry whose hash chain is broken, or None when it is intact."""
        from appliance.store import audit

        with self._lock:
            return audit.first_broken(self._conn)

    # --- outbox -------------------------------------------------------------------------------

    def _enqueue(
        self, conn: sqlite3.Connection, event: Mapping[str, Any], lane_id: str, crossing_id: str | None
    ) -> int:
        cur = conn.execute(
            "INSERT INTO outbox (event_id, lane_id, crossing_id, created_at, payload) VALUES (?,?,?,?,?)",
            (str(event["id"]), lane_id, crossing_id, time.time(), encode_event(event)),
        )
        outbox_id = int(cur.lastrowid or 0)
        conn.execute(
            "INSERT INTO outbox_delivery (sink, outbox_id) SELECT sink, ? FROM outbox_sinks "
            "WHERE lane_id IS NULL OR lane_id = ?",
            (outbox_id, lane_id),
        )
        return outbox_id

    def enqueue_in(
        self, conn: sqlite3.Connection, event: Mapping[str, Any], lane_id: str, crossing_id: str | None = None
    ) -> int:
        """Put an event into the outbox inside the caller's open ``transaction()`` (so it commits with the
        caller's rows); call ``notify_outbox()`` after the commit."""
        return self._enqueue(conn, event, lane_id, crossing_id)

    def notify_outbox(self) -> None:
        """Wake the outbox listeners (the publisher) after events were committed."""
        for listener in list(self._saved_listeners):
            listener()

    def enqueue_event(self, event: Mapping[str, Any], lane_id: str, crossing_id: str | None = None) -> int:
        """Put an event that is not a crossing verdict (e.g. an inspector decision) into the outbox."""
        with self.transaction() as conn:
            outbox_id = self._enqueue(conn, event, lane_id, crossing_id)
        for listener in list(self._saved_listeners):
            listener()
        return outbox_id

    def add_outbox_listener(self, listener: Callable[[], None]) -> None:
        """Called (outside the transaction) after each event is committed to the outbox."""
        self._saved_listeners.append(listener)

    def register_sink(self, sink: str, lane_id: str | None = None, backfill: bool = True) -> None:
        """Make ``sink`` receive every new event (of ``lane_id`` only, when given).

        A sink seen for the first time with ``backfill`` also gets every event already in the
        outbox: nothing written before a sink was configured is silently skipped.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT lane_id FROM outbox_sinks WHERE sink = ?", (sink,)).fetchone()
            if row is not None:
                if row["lane_id"] != lane_id:
                    raise StoreError(
                        f"{self.path}: sink {sink!r} is registered for lane {row['lane_id']!r}, not {lane_id!r}; "
                        "give the sink a new name"
                    )
                return
            conn.execute(
                "INSERT INTO outbox_sinks (sink, lane_id, registered_at) VALUES (?,?,?)", (sink, lane_id, time.time())
            )
            if backfill:
                conn.execute(
                    "INSERT INTO outbox_delivery (sink, outbox_id) SELECT ?, id FROM outbox "
                    "WHERE ? IS NULL OR lane_id = ?",
                    (sink, lane_id, lane_id),
                )
        log.info("outbox sink %s registered (lane %s, backfill %s)", sink, lane_id or "all", backfill)

    def pending(self, sink: str, limit: int = 100) -> list[OutboxRow]:
        """The oldest undelivered events of ``sink``, in outbox order."""
        with self._lock:
            cur = self._conn.execute(
                "SELECT o.id, o.event_id, o.lane_id, o.created_at, o.payload, d.attempts, d.next_attempt_at "
                "FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id "
                "WHERE d.sink = ? AND d.delivered_at IS NULL ORDER BY d.outbox_id LIMIT ?",
                (sink, limit),
            )
            return [
                OutboxRow(r["id"], r["event_id"], r["lane_id"], r["created_at"], bytes(r["payload"]), r["attempts"],
                          r["next_attempt_at"])
                for r in cur.fetchall()
            ]

    def mark_delivered(self, sink: str, ids: Iterable[int], now: float | None = None) -> int:
        """Record the sink's acknowledgement of these outbox ids; returns how many were newly delivered."""
        id_list = list(ids)
        if not id_list:
            return 0
        ts = time.time() if now is None else now
        with self.transaction() as conn:
            cur = conn.executemany(
                "UPDATE outbox_delivery SET delivered_at = ?, attempts = attempts + 1, last_attempt_at = ?, "
                "last_error = NULL WHERE sink = ? AND outbox_id = ? AND delivered_at IS NULL",
                [(ts, ts, sink, i) for i in id_list],
            )
            conn.execute("UPDATE outbox_sinks SET last_ack_at = ? WHERE sink = ?", (ts, sink))
            return cur.rowcount

    def record_failure(self, sink: str, outbox_id: int, error: str, next_attempt_at: float) -> None:
        """Count a failed attempt and when to try again (the event stays pending)."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE outbox_delivery SET attempts = attempts + 1, last_error = ?, last_attempt_at = ?, "
                "next_attempt_at = ? WHERE sink = ? AND outbox_id = ? AND delivered_at IS NULL",
                (error[:500], time.time(), next_attempt_at, sink, outbox_id),
            )

    def outbox_status(self, now: float | None = None) -> list[SinkStatus]:
        """Backlog, oldest undelivered age, last acknowledgement and last error of each sink."""
        ts = time.time() if now is None else now
        with self._lock:
            sinks = self._conn.execute("SELECT sink, lane_id, last_ack_at FROM outbox_sinks ORDER BY sink").fetchall()
            result = []
            for s in sinks:
                agg = self._conn.execute(
                    "SELECT COUNT(*) AS n, MIN(o.created_at) AS oldest, MAX(d.attempts) AS max_attempts "
                    "FROM outbox_delivery d JOIN outbox o ON o.id = d.outbox_id "
                    "WHERE d.sink = ? AND d.delivered_at IS NULL",
                    (s["sink"],),
                ).fetchone()
                err = self._conn.execute(
                    "SELECT last_error FROM outbox_delivery WHERE sink = ? AND delivered_at IS NULL "
                    "AND last_error IS NOT NULL ORDER BY last_attempt_at DESC LIMIT 1",
                    (s["sink"],),
                ).fetchone()
                result.append(
                    SinkStatus(
                        sink=s["sink"],
                        lane_id=s["lane_id"],
                        backlog=int(agg["n"]),
                        oldest_undelivered_age_s=None if agg["oldest"] is None else max(0.0, ts - agg["oldest"]),
                        last_ack_at=s["last_ack_at"],
                        last_error=None if err is None else err["last_error"],
                        max_attempts=int(agg["max_attempts"] or 0),
                        alarm=agg["oldest"] is not None and ts - agg["oldest"] > self.backlog_alarm_s,
                    )
                )
            return result

    def outbox_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
