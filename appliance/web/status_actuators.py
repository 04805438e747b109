"""The status page's actuator panel: per lane with an ``actuators:`` section, the barrier's position, the
controller's cycle state and its active alarms, and the latest commands with their acknowledgements.

Read-only: it shows ``services.status["actuators"]`` (each lane controller's ``status`` dict,
appliance/actuators/controller.py) as display strings in the request's language; nothing here commands a
device. Crossing ids are shown (they are in the review UI's URLs anyway); fleet IDs, plates and container
numbers are not.
"""

from __future__ import annotations

from typing import Any

from appliance.web import localtime
from appliance.web.i18n import N_

# Per table: (row key, i18n key of the column heading); merged into status_view.COLUMNS.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "actuators": [("lane", N_("lane")), ("barrier_label", N_("act_barrier")), ("cycle_label", N_("act_cycle")),
                  ("alarms_label", N_("act_alarms"))],
    "actuator_commands": [("time", N_("time")), ("lane", N_("lane")), ("device_label", N_("act_device")),
                          ("command_label", N_("act_command")), ("crossing", N_("act_crossing")),
                          ("result_label", N_("act_result"))],
}

# Keys built at run time below (``act_<kind>_<value>``), listed so that ``make i18n-extract`` keeps them.
DYNAMIC_KEYS = (
    N_("act_barrier_open"), N_("act_barrier_closed"), N_("act_barrier_moving"), N_("act_barrier_unknown"),
    N_("act_cycle_starting"), N_("act_cycle_idle"), N_("act_cycle_open"), N_("act_cycle_held"),
    N_("act_cycle_idle_after_alarm"), N_("act_cycle_fault"),
    N_("act_dev_barrier"), N_("act_dev_signal"), N_("act_dev_board"), N_("act_dev_fleet"),
    N_("act_cmd_open"), N_("act_cmd_close"), N_("act_cmd_green"), N_("act_cmd_red"), N_("act_cmd_pass"),
    N_("act_cmd_stop"), N_("act_cmd_wait"), N_("act_cmd_fault"), N_("act_cmd_release"), N_("act_cmd_hold"),
    N_("act_result_ok"), N_("act_result_pending"), N_("act_result_fault"),
    # alarm and fault codes (docs/ACTUATORS.md)
    N_("act_alarm_unreachable"), N_("act_alarm_no_ack"), N_("act_alarm_rejected"), N_("act_alarm_bad_state"),
    N_("act_alarm_missing_backend"), N_("act_alarm_duplicate_command"), N_("act_alarm_out_of_order_command"),
    N_("act_alarm_conflicting_command"), N_("act_alarm_restart_mid_crossing"), N_("act_alarm_restart_after_fault"),
    N_("act_alarm_close_failed"), N_("act_alarm_pass_not_seen"), N_("act_alarm_barrier_not_closed"),
    N_("act_alarm_controller_error"),
)


def _word(t: dict[str, str], kind: str, value: str) -> str:
    """The translation of ``act_<kind>_<value>``; an unknown value shows as itself (never hidden)."""
    return t.get(f"act_{kind}_{value}", value)


def build(status: dict[str, Any], t: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    """``actuators`` (one row per lane) and ``actuator_commands`` (newest first, all lanes)."""
    lanes: list[dict[str, str]] = []
    commands: list[tuple[float, dict[str, str]]] = []
    for lane_id, lane in sorted(dict(status.get("actuators") or {}).items()):
        barrier = str(lane.get("barrier") or "unknown")
        cycle = str(lane.get("state") or "")
        alarms = list(lane.get("active_alarms") or [])
        codes = list(dict.fromkeys(str(a.get("code")) for a in alarms))  # each code once, oldest first
        lanes.append({
            "id": lane_id, "lane": lane_id, "barrier": barrier, "barrier_label": _word(t, "barrier", barrier),
            "cycle_label": _word(t, "cycle", cycle),
            "alarms_label": ", ".join(_word(t, "alarm", c) for c in codes) if codes else t["none"],
            "alarm_codes": " ".join(codes),
            # row colour: an active alarm first, else the barrier's position
            "state": "alarm" if codes else f"barrier_{barrier}",
        })
        for c in list(lane.get("commands") or []):
            result = str(c.get("result") or "")
            label = _word(t, "result", result)
            if result == "ok" and c.get("ack_ms") is not None:
                label += f" ({float(c['ack_ms']):.0f} ms)"
            elif result == "fault" and c.get("code"):
                label += f": {_word(t, 'alarm', str(c['code']))}"
            commands.append((float(c.get("at") or 0.0), {
                "id": f"{lane_id}/{c.get('seq')}", "lane": lane_id, "time": localtime.when(c.get("at")),
                "device_label": _word(t, "dev", str(c.get("actuator"))),
                "command_label": _word(t, "cmd", str(c.get("action"))),
                "crossing": str(c.get("crossing_id") or "-"), "result_label": label, "state": f"cmd_{result}",
            }))
    commands.sort(key=lambda item: item[0], reverse=True)
    return {"actuators": lanes, "actuator_commands": [row for _, row in commands]}
