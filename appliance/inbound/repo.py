"""SQLite side of the inbound messages (tables of migration 3 in appliance.store.db).

Each accepted message is applied in one transaction together with its event id, so a message
is applied once however often the broker redelivers it, and a restart finds exactly what was
applied. Dead letters keep the reason, size and sha256 of the payload, and its first bytes only
when the caller says they are safe to keep.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from appliance.store.db import Store
from appliance.verdicts.manifest import ManifestEntry
from appliance.verdicts.watchlist import WatchEntry

HEAD_BYTES = 128
WatchOp = tuple[Literal["add", "remove"], WatchEntry]


@dataclass(frozen=True)
class DeadLetter:
    id: int
    received_at: float
    topic: str
    reason: str
    payload_bytes: int
    payload_sha256: str
    payload_head: str | None


class InboundRepo:
    def __init__(self, store: Store):
        self.store = store

    def person_salt(self) -> bytes:
        """This box's salt for person document numbers, created on first use."""
        with self.store.transaction() as conn:
            row = conn.execute("SELECT value FROM inbound_meta WHERE key = 'person_salt'").fetchone()
            if row is not None:
                return bytes(row["value"])
            salt = secrets.token_bytes(32)
            conn.execute("INSERT INTO inbound_meta (key, value) VALUES ('person_salt', ?)", (salt,))
            return salt

    @staticmethod
    def _claim(conn: sqlite3.Connection, event_id: str, type_: str, topic: str, sha256: str, now: float) -> bool:
        """Record the event id; False when it was applied before (a duplicate)."""
        cur = conn.execute(
            "INSERT OR IGNORE INTO inbound_events (event_id, type, topic, payload_sha256, received_at) "
            "VALUES (?,?,?,?,?)",
            (event_id, type_, topic, sha256, now),
        )
        return cur.rowcount == 1

    def apply_manifest(
        self, event_id: str, topic: str, sha256: str, entries: Sequence[ManifestEntry], cancel: Sequence[str],
        now: float,
    ) -> bool:
        with self.store.transaction() as conn:
            if not self._claim(conn, event_id, "manifest", topic, sha256, now):
                return False
            conn.executemany(
                "INSERT OR REPLACE INTO inbound_manifest (declaration, entry_json, cancelled, event_id, updated_at) "
                "VALUES (?,?,0,?,?)",
                [(e.declaration, e.model_dump_json(), event_id, now) for e in entries],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO inbound_manifest (declaration, entry_json, cancelled, event_id, updated_at) "
                "VALUES (?,NULL,1,?,?)",
                [(number, event_id, now) for number in cancel],
            )
        return True

    def apply_watchlist(self, event_id: str, topic: str, sha256: str, ops: Sequence[WatchOp], now: float) -> bool:
        with self.store.transaction() as conn:
            if not self._claim(conn, event_id, "watchlist", topic, sha256, now):
                return False
            for action, entry in ops:
                if action == "add":
                    conn.execute(
                        "INSERT OR REPLACE INTO watchlist (kind, value_key, reason, expires_at, event_id, updated_at) "
                        "VALUES (?,?,?,?,?,?)",
                        (entry.kind, entry.key, entry.reason, entry.expires_at, event_id, now),
                    )
                else:
                    conn.execute("DELETE FROM watchlist WHERE kind = ? AND value_key = ?", (entry.kind, entry.key))
        return True

    def manifest_rows(self) -> list[tuple[str, ManifestEntry | None]]:
        """(declaration, entry) in arrival order; entry None: central cancelled the declaration."""
        with self.store.transaction() as conn:
            rows = conn.execute(
                "SELECT declaration, entry_json, cancelled FROM inbound_manifest ORDER BY updated_at, declaration"
            ).fetchall()
        return [
            (r["declaration"], None if r["cancelled"] else ManifestEntry.model_validate_json(r["entry_json"]))
            for r in rows
        ]

    def watch_entries(self, now: float) -> list[WatchEntry]:
        """Active watchlist entries; expired ones are deleted (kept no longer than they apply)."""
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM watchlist WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
            rows = conn.execute("SELECT kind, value_key, reason, expires_at FROM watchlist").fetchall()
        return [WatchEntry(r["kind"], r["value_key"], r["reason"], r["expires_at"]) for r in rows]

    def dead_letter(
        self, topic: str, reason: str, size: int, sha256: str, head: bytes | None, now: float
    ) -> bool:
        """Keep a refused message; False when the same payload on the same topic is already kept (the
        broker redelivers an unacknowledged QoS 1 message after a reconnect: one dead letter is enough)."""
        text = head[:HEAD_BYTES].decode("utf-8", "replace") if head is not None else None
        topic = topic[:256]
        with self.store.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO dead_letters (received_at, topic, reason, payload_bytes, payload_sha256, payload_head) "
                "SELECT ?,?,?,?,?,? WHERE NOT EXISTS "
                "(SELECT 1 FROM dead_letters WHERE topic = ? AND payload_sha256 = ?)",
                (now, topic, reason[:1000], size, sha256, text, topic, sha256),
            )
            return cur.rowcount == 1

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first."""
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [DeadLetter(r["id"], r["received_at"], r["topic"], r["reason"], r["payload_bytes"],
                           r["payload_sha256"], r["payload_head"]) for r in rows]

    def dead_letter_stats(self) -> tuple[int, str | None]:
        """How many dead letters there are, and the reason of the last one."""
        with self.store.transaction() as conn:
            count = int(conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0])
            last = conn.execute("SELECT reason FROM dead_letters ORDER BY id DESC LIMIT 1").fetchone()
        return count, None if last is None else str(last["reason"])
