"""Legal holds: an admin keeps a crossing's (or a passage's) evidence whatever the disk budget.

A hold and its release are audited (hash-chained audit log) with the actor and the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from appliance.errors import ApplianceError
from appliance.store import audit
from appliance.store.db import Store


class HoldError(ApplianceError):
    """A legal hold that cannot be set or released; the message says why."""


@dataclass(frozen=True)
class LegalHold:
    crossing_id: str
    reason: str
    actor: str
    held_at: float


def _known(store: Store, crossing_id: str) -> bool:
    rows = store.query(
        "SELECT 1 FROM crossings WHERE id = ? UNION ALL SELECT 1 FROM passages WHERE id = ? "
        "UNION ALL SELECT 1 FROM xray_results WHERE crossing_id = ? LIMIT 1",
        (crossing_id, crossing_id, crossing_id),
    )
    return bool(rows)


def _check_reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise HoldError("a legal hold needs a reason (e.g. the case number): --reason TEXT")
    return text[:500]


def set_hold(store: Store, crossing_id: str, reason: str, actor: str, now: float | None = None) -> LegalHold:
    """Put a crossing (or passage) on legal hold; a second hold on the same id keeps the first one."""
    text = _check_reason(reason)
    if not _known(store, crossing_id):
        raise HoldError(f"{store.path}: no crossing or passage {crossing_id!r} in this store")
    ts = time.time() if now is None else now
    with store.transaction() as conn:
        row = conn.execute("SELECT crossing_id, reason, actor, held_at FROM legal_holds WHERE crossing_id = ?",
                           (crossing_id,)).fetchone()
        if row is not None:
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["held_at"]))
            raise HoldError(f"{crossing_id}: already on legal hold since {since} UTC by {row['actor']} "
                            f"({row['reason']})")
        conn.execute("INSERT INTO legal_holds (crossing_id, reason, actor, held_at) VALUES (?,?,?,?)",
                     (crossing_id, text, actor, ts))
        audit.append(conn, actor, "retention.hold", crossing_id, {"reason": text}, now=ts)
    return LegalHold(crossing_id, text, actor, ts)


def release_hold(store: Store, crossing_id: str, reason: str, actor: str, now: float | None = None) -> LegalHold:
    """Release a legal hold; the evidence falls back under the ordinary rules (budget, delivery, review)."""
    text = _check_reason(reason)
    ts = time.time() if now is None else now
    with store.transaction() as conn:
        row = conn.execute("SELECT crossing_id, reason, actor, held_at FROM legal_holds WHERE crossing_id = ?",
                           (crossing_id,)).fetchone()
        if row is None:
            raise HoldError(f"{crossing_id}: not on legal hold (see `appliance retention status`)")
        conn.execute("DELETE FROM legal_holds WHERE crossing_id = ?", (crossing_id,))
        audit.append(conn, actor, "retention.release", crossing_id,
                     {"reason": text, "held_reason": row["reason"], "held_by": row["actor"]}, now=ts)
    return LegalHold(row["crossing_id"], row["reason"], row["actor"], row["held_at"])


def list_holds(store: Store) -> list[LegalHold]:
    return [LegalHold(r["crossing_id"], r["reason"], r["actor"], r["held_at"])
            for r in store.query("SELECT crossing_id, reason, actor, held_at FROM legal_holds ORDER BY held_at")]
