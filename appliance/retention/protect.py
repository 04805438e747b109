"""Why bytes must stay: the rules eviction never breaks.

A crossing's evidence is held while
* it is on legal hold (``legal_holds``),
* its verdict is REVIEW or HOLD and no inspector has decided it yet (``reviewed_at`` is null),
* any outbox event of the crossing (verdict, decision, X-ray result) is not yet delivered to every sink.

An evidence file is held when a crossing that names it is held, when an undelivered event that names no
crossing (an unmatched X-ray scan, a passage) carries its hash, or when no stored row names it yet and it is
younger than the orphan grace (its crossing is still open: evidence is written before the crossing's row).
"""

from __future__ import annotations

import sqlite3

LEGAL_HOLD = "legal_hold"
UNDECIDED = "undecided"
UNDELIVERED = "undelivered"
OPEN_CROSSING = "open_crossing"
REASONS = (LEGAL_HOLD, UNDECIDED, UNDELIVERED, OPEN_CROSSING)

# An event that names no crossing is written this long after its evidence at most (seconds).
_EVENT_WINDOW_S = 6 * 3600.0


def crossing_hold(conn: sqlite3.Connection, crossing_id: str) -> str | None:
    """The reason a crossing's (or passage's) evidence must stay, or None."""
    if conn.execute("SELECT 1 FROM legal_holds WHERE crossing_id = ?", (crossing_id,)).fetchone():
        return LEGAL_HOLD
    if conn.execute("SELECT 1 FROM crossings WHERE id = ? AND decision IN ('REVIEW', 'HOLD') AND reviewed_at IS NULL",
                    (crossing_id,)).fetchone():
        return UNDECIDED
    if conn.execute("SELECT 1 FROM outbox o JOIN outbox_delivery d ON d.outbox_id = o.id "
                    "WHERE o.crossing_id = ? AND d.delivered_at IS NULL LIMIT 1", (crossing_id,)).fetchone():
        return UNDELIVERED
    return None


def undelivered_event_names(conn: sqlite3.Connection, text: str, since: float) -> bool:
    """Whether an undelivered event that names no crossing, written after ``since``, carries ``text``."""
    row = conn.execute(
        "SELECT 1 FROM outbox o JOIN outbox_delivery d ON d.outbox_id = o.id "
        "WHERE o.crossing_id IS NULL AND o.created_at >= ? AND o.created_at <= ? AND d.delivered_at IS NULL "
        "AND instr(o.payload, ?) > 0 LIMIT 1",
        (since - 60.0, since + _EVENT_WINDOW_S, text.encode()),
    ).fetchone()
    return row is not None


def evidence_hold(conn: sqlite3.Connection, sha256: str, created_at: float, now: float,
                  orphan_grace_s: float) -> str | None:
    """The reason an evidence file must stay, or None (it may be evicted)."""
    crossings = [r[0] for r in conn.execute(
        "SELECT crossing_id FROM observations WHERE evidence_sha256 = ? "
        "UNION SELECT crossing_id FROM decisions WHERE evidence_sha256 = ? "
        "UNION SELECT crossing_id FROM xray_results WHERE evidence_sha256 = ? AND crossing_id IS NOT NULL",
        (sha256, sha256, sha256),
    ).fetchall()]
    for crossing_id in crossings:
        reason = crossing_hold(conn, crossing_id)
        if reason is not None:
            return reason
    unmatched_scan = conn.execute("SELECT 1 FROM xray_results WHERE evidence_sha256 = ? AND crossing_id IS NULL "
                                  "LIMIT 1", (sha256,)).fetchone() is not None
    if unmatched_scan and undelivered_event_names(conn, sha256, created_at):
        return UNDELIVERED
    if not crossings and not unmatched_scan and now - created_at < orphan_grace_s:
        return OPEN_CROSSING
    return None
