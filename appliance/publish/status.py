"""Operator view of the outbox: backlog, oldest undelivered age and last acknowledgement per sink.

Events never expire. The one policy for old events is an alarm: a sink whose oldest undelivered
event is older than ``publish.backlog_alarm_s`` shows ALARM here and in the status API, and the
publisher logs a WARNING when it enters and leaves that state.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from appliance.inbound.repo import InboundRepo
from appliance.store.db import Store


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def format_outbox_status(store: Store, now: float | None = None) -> str:
    """A plain-text table for ``appliance outbox status`` (no event payloads)."""
    ts = time.time() if now is None else now
    sinks = store.outbox_status(now=ts)
    lines = [f"outbox: {store.outbox_count()} events stored"]
    dead, last_reason = InboundRepo(store).dead_letter_stats()
    if dead:
        lines.append(f"inbound: {dead} messages dead-lettered, last: {last_reason}"[:200])
    if not sinks:
        lines.append("no sinks registered (publish.sinks in the config is empty): events are kept, not sent")
        return "\n".join(lines)
    header = ("SINK", "LANE", "BACKLOG", "OLDEST", "ALARM", "LAST ACK", "ATTEMPTS", "LAST ERROR")
    rows = [header]
    for s in sinks:
        last_ack = (
            "never" if s.last_ack_at is None
            else datetime.fromtimestamp(s.last_ack_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            + f" ({_age(ts - s.last_ack_at)} ago)"
        )
        alarm = f"> {_age(store.backlog_alarm_s)}" if s.alarm else "-"
        rows.append((s.sink, s.lane_id or "*", str(s.backlog), _age(s.oldest_undelivered_age_s), alarm, last_ack,
                     str(s.max_attempts), (s.last_error or "")[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
