"""IGV arrival telemetry joins the crossing: identity from the fleet, checked against the cameras.

An IGV has no plate. When a lane has a fleet link, the oldest arrival not yet joined (and not older than
``arrival_window_s``) becomes the crossing's fleet ID (``method="fleet"``), so the verdict rules find its
manifest entry by fleet ID. Its declared load is then checked against the container numbers the cameras
read: a container read that the fleet did not report is a HOLD, a reported container the cameras did not
read is a REVIEW, a painted fleet ID that differs from the telemetry's is a HOLD. So a mismatch is never
CLEAR. The pipeline calls ``IgvJoin.join`` before ``decide`` and ``Joined.adjust`` after it (a two-line
hook in appliance/lanes/pipeline.py).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from appliance.actuators.fleet import ReceivedArrival
from appliance.lanes.crossing import Crossing, FieldResult
from appliance.verdicts.manifest import plate_key
from appliance.verdicts.rules import Decision, Reason, Verdict

MAX_WAITING = 32
_RANK = {"CLEAR": 0, "REVIEW": 1, "HOLD": 2}


@dataclass(frozen=True)
class Joined:
    crossing: Crossing
    reasons: tuple[Reason, ...]
    arrival: ReceivedArrival | None

    def adjust(self, verdict: Verdict) -> Verdict:
        """The verdict with the join's reasons added (the most severe reason decides, as in the rules)."""
        if not self.reasons:
            return verdict
        reasons = verdict.reasons + self.reasons
        decision: Decision = verdict.decision
        for r in self.reasons:
            if _RANK[r.severity] > _RANK[decision]:
                decision = r.severity
        return Verdict(decision, reasons, verdict.declaration)


class IgvJoin:
    """Arrivals waiting for their crossing on one lane (thread-safe: MQTT thread in, lane thread out)."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._cond = threading.Condition()
        self._waiting: deque[ReceivedArrival] = deque(maxlen=MAX_WAITING)

    def add(self, arrival: ReceivedArrival) -> None:
        with self._cond:
            # The same IGV reporting again before it crossed replaces its earlier report.
            for old in [a for a in self._waiting if a.arrival.fleet_id == arrival.arrival.fleet_id]:
                self._waiting.remove(old)
            self._waiting.append(arrival)
            self._cond.notify_all()

    def wait_for(self, fleet_id: str, timeout_s: float) -> bool:
        """True once an arrival of ``fleet_id`` is waiting (for the simulator and the benchmark)."""
        with self._cond:
            return self._cond.wait_for(lambda: any(a.arrival.fleet_id == fleet_id for a in self._waiting), timeout_s)

    def _take(self) -> ReceivedArrival | None:
        now = time.monotonic()
        with self._cond:
            while self._waiting and now - self._waiting[0].received_mono > self.window_s:
                self._waiting.popleft()
            return self._waiting.popleft() if self._waiting else None

    def join(self, crossing: Crossing) -> Joined | None:
        """The crossing joined with its IGV's arrival; None for a plated vehicle (nothing to join)."""
        if crossing.tractor_plate is not None or crossing.trailer_plate is not None:
            return None
        got = self._take()
        if got is None:
            if crossing.fleet_id is None:
                return None  # neither a plate nor an IGV: the rules hold it (no_manifest_entry)
            return Joined(crossing, (Reason("igv_arrival_missing", "REVIEW", "fleet_id", crossing.fleet_id.value),),
                          None)
        arrival = got.arrival
        reasons: list[Reason] = []
        painted = crossing.fleet_id
        if painted is not None and plate_key(painted.value) != plate_key(arrival.fleet_id):
            reasons.append(Reason("igv_fleet_id_mismatch", "HOLD", "fleet_id", painted.value, arrival.fleet_id))
        fleet_id = FieldResult(arrival.fleet_id, 1.0, 1, None, "fleet")
        read = [c.value for c in crossing.containers]
        declared = ",".join(arrival.containers) or None
        for number in read:
            if number not in arrival.containers:
                reasons.append(Reason("igv_container_mismatch", "HOLD", "container", number, declared))
        for number in arrival.containers:
            if number not in read:
                reasons.append(Reason("igv_container_unread", "REVIEW", "container", None, number))
        return Joined(replace(crossing, fleet_id=fleet_id), tuple(reasons), got)
