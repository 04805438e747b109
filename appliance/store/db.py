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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import StoreError
from appliance.lanes.crossing import Crossing, read_kind
from appliance.reads import BBox
from appliance.verdicts.rules import Verdict

log = logging.getLogger(__name__)

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
]


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

    def __init__(self, path: Path, evidence_dir: Path):
        self.path = path
        self.evidence_dir = evidence_dir
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
                for statement in MIGRATIONS[version - 1].split(";"):
                    if statement.strip():
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
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".tmp")
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(target)
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO evidence (sha256, relpath, bytes, mime, created_at) VALUES (?,?,?,?,?)",
                (digest, str(rel), len(data), mime, time.time()),
            )
        return digest

    def evidence_path(self, sha256: str) -> Path | None:
        row = self._conn.execute("SELECT relpath FROM evidence WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else self.evidence_dir / row["relpath"]

    def save_crossing(self, crossing: Crossing, verdict: Verdict) -> None:
        """Crossing + observations + verdict in one transaction."""
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
                    )
                )
            conn.executemany(
                "INSERT INTO observations (crossing_id, source_id, ts, kind, value, confidence, bbox_json, "
                "evidence_sha256) VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )

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
