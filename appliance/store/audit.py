"""The append-only audit log, hash-chained so that editing or removing an entry shows.

Each entry's ``hash`` is sha256(prev_hash + canonical JSON of the entry: id, ts, actor, action,
target, details_json); the first entry's ``prev_hash`` is 64 zeros. ``append`` runs inside the
caller's ``BEGIN IMMEDIATE`` transaction (``Store.transaction()``), so concurrent writers, even in
other processes, are serialised and the chain never forks. Details must hold no passwords, faces
or QR payloads: usernames, ids and reasons only.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

GENESIS = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """The chained hash of one entry (``entry`` holds id, ts, actor, action, target, details_json)."""
    fields = {k: entry[k] for k in ("id", "ts", "actor", "action", "target", "details_json")}
    return hashlib.sha256((prev_hash + canonical_json(fields)).encode("utf-8")).hexdigest()


def append(
    conn: sqlite3.Connection, actor: str, action: str, target: str | None = None,
    details: Mapping[str, Any] | None = None, now: float | None = None,
) -> int:
    """Append one entry; ``conn`` must be inside a write transaction. Returns the entry's id."""
    if not conn.in_transaction:
        raise RuntimeError("audit.append needs an open transaction (use Store.transaction() or Store.append_audit)")
    last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    entry_id = 1 if last is None else int(last[0]) + 1
    entry = {
        "id": entry_id,
        "ts": time.time() if now is None else now,
        "actor": actor,
        "action": action,
        "target": target,
        "details_json": canonical_json(dict(details or {})),
    }
    prev = GENESIS if last is None else str(last[1])
    conn.execute(
        "INSERT INTO audit_log (id, ts, actor, action, target, details_json, prev_hash, hash) "
        "VALUES (:id, :ts, :actor, :action, :target, :details_json, :prev, :hash)",
        entry | {"prev": prev, "hash": entry_hash(prev, entry)},
    )
    return entry_id


def first_broken(conn: sqlite3.Connection) -> int | None:
    """Id of the first entry that does not chain (edited, removed before it, or re-ordered), else None.

    Removing the newest entries cannot be seen from the chain alone: keep the head hash
    (``appliance audit verify`` prints it) somewhere else to detect that.
    """
    prev, expected_id = GENESIS, 1
    cur = conn.execute("SELECT id, ts, actor, action, target, details_json, prev_hash, hash FROM audit_log ORDER BY id")
    for row in cur:
        entry = dict(zip(("id", "ts", "actor", "action", "target", "details_json"), row[:6], strict=True))
        if row[0] != expected_id or row[6] != prev or row[7] != entry_hash(prev, entry):
            return int(row[0])
        prev, expected_id = row[7], expected_id + 1
    return None

