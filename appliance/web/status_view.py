"""What the status page shows, from ``services.status`` (filled by the lanes, the inbound
subscriber and the boot), the outbox and the thumbnails: every value already a display string
in the request's language and the gate's time zone, so static/status.js only copies text.

Each table is a list of rows with an ``id`` (rows are matched by it when the page refreshes) and
one value per column of ``COLUMNS``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from appliance.lanes.thumbnails import Thumbnails
from appliance.store.db import SinkStatus
from appliance.web import localtime, status_actuators
from appliance.web.i18n import N_

# Per table: (row key, i18n key of the column heading).
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "lanes": [("lane", N_("lane")), ("state_label", N_("state")), ("crossings", N_("crossings")),
              ("analysed_frames", N_("analysed_frames")), ("last_frame", N_("last_frame"))],
    "sources": [("thumb", N_("thumbnail")), ("lane", N_("lane")), ("source", N_("source")),
                ("type", N_("source_type")), ("state_label", N_("state")), ("fps", N_("fps")),
                ("frames_read", N_("frames_read")), ("frames_dropped", N_("frames_dropped")),
                ("last_frame", N_("last_frame"))],
    "models": [("task", N_("task")), ("name", N_("model")), ("version", N_("version")),
               ("provider", N_("provider"))],
    "outbox": [("sink", N_("sink")), ("lane", N_("lane")), ("backlog", N_("backlog")),
               ("oldest", N_("oldest_undelivered")), ("last_ack", N_("last_ack")), ("last_error", N_("last_error"))],
}
COLUMNS.update(status_actuators.COLUMNS)  # the lanes' barriers and actuator commands


def thumb_url(lane_id: str, source_id: str, thumbnails: Thumbnails | None) -> str:
    """The thumbnail's URL (changes with every new thumbnail), or "" when there is none yet."""
    thumb = thumbnails.get(lane_id, source_id) if thumbnails is not None else None
    if thumb is None:
        return ""
    return f"/status/thumb/{quote(lane_id, safe='')}/{quote(source_id, safe='')}.jpg?v={thumb.seq}"


def _last_frame(ts: float | None, at: float | None, now: float) -> str:
    if ts is None:
        return "-"
    return localtime.when(ts) + (f" ({localtime.ago(now - at)})" if at is not None else "")


def _lanes(status: dict[str, Any], t: dict[str, str], thumbnails: Thumbnails | None, now: float
           ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    lanes, sources = [], []
    for lane_id, lane in sorted(dict(status.get("lanes") or {}).items()):
        state = str(lane.get("state", ""))
        lanes.append({"id": lane_id, "lane": lane_id, "state": state, "state_label": t.get(f"lane_{state}", state),
                      "crossings": str(lane.get("crossings", 0)),
                      "analysed_frames": str(lane.get("analysed_frames", "-")),
                      "last_frame": localtime.when(lane.get("last_frame_ts"))})
        for source_id, src in sorted(dict(lane.get("sources") or {}).items()):
            src_state = str(src.get("state", ""))
            sources.append({
                "id": f"{lane_id}/{source_id}", "lane": lane_id, "source": source_id, "type": str(src.get("type", "")),
                "state": src_state, "state_label": t.get(f"src_{src_state}", src_state),
                "fps": f"{float(src.get('fps') or 0.0):.1f}", "frames_read": str(src.get("frames_read", 0)),
                "frames_dropped": str(src.get("frames_dropped", 0)),
                "last_frame": _last_frame(src.get("last_frame_ts"), src.get("last_frame_at"), now),
                "thumb": thumb_url(lane_id, source_id, thumbnails), "error": str(src.get("error") or ""),
            })
    return lanes, sources


def _models(status: dict[str, Any]) -> list[dict[str, str]]:
    return [{"id": f"{m['task']}/{m['name']}/{m['version']}", "task": str(m["task"]), "name": str(m["name"]),
             "version": str(m["version"]), "provider": ", ".join(m.get("providers") or [])}
            for m in status.get("models") or []]


def _outbox(sinks: list[SinkStatus], t: dict[str, str]) -> list[dict[str, str]]:
    return [{"id": s.sink, "sink": s.sink, "lane": s.lane_id or "*", "backlog": str(s.backlog),
             "oldest": localtime.duration(s.oldest_undelivered_age_s) if s.backlog else "-",
             "last_ack": localtime.when(s.last_ack_at) if s.last_ack_at is not None else t["never"],
             "last_error": s.last_error or "", "state": "behind" if s.backlog else "ok"}
            for s in sinks]


def _inbound(status: dict[str, Any]) -> dict[str, str] | None:
    inbound = status.get("inbound")
    if not isinstance(inbound, dict):
        return None
    return {"applied": str(inbound.get("applied", 0)), "dead_letters": str(inbound.get("dead_letters", 0)),
            "last_dead_letter": str(inbound.get("last_dead_letter") or "-")}


def build(status: dict[str, Any], sinks: list[SinkStatus], t: dict[str, str], thumbnails: Thumbnails | None = None,
          now: float | None = None) -> dict[str, Any]:
    """The status page's tables and lines, for the template and for ``/api/status/view``."""
    now = time.time() if now is None else now
    lanes, sources = _lanes(status, t, thumbnails, now)
    return {"lanes": lanes, "sources": sources, "models": _models(status), "outbox": _outbox(sinks, t),
            "inbound": _inbound(status), "updated": localtime.clock(now), "timezone": localtime.zone().key,
            **status_actuators.build(status, t)}
