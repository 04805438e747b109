"""The simulated lane devices of `appliance demo`: the barrier/lights/loops PLC (a real pymodbus server) and,
when a Mosquitto binary is installed, a broker with a simulated IGV fleet on it.

``LaneDevices.start`` starts them; ``actuators_section`` is the cargo lane's ``actuators:`` config pointing
at them; ``feed_arrivals`` makes the simulated fleet report each IGV of the simulated lane (truth.json) a
little before the replay reaches it, as a fleet system reports an IGV approaching the stop line. A vehicle
drives through the open barrier by itself (``SimModbusDevice(auto_pass_s=...)``), so the exit loop closes it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.sim.broker import DemoBroker, free_port, mosquitto_binary
from appliance.sim.fleet import SimFleet
from appliance.sim.modbus_device import SimModbusDevice

log = logging.getLogger(__name__)

# The simulated barrier: 0.5 s to move, the vehicle drives through 1.5 s after it is up, 0.3 s on the exit
# loop. A barrier cycle (about 2.5 s) fits in the demo's gap between two vehicles.
TRAVEL_S, AUTO_PASS_S, DWELL_S = 0.5, 1.5, 0.3
# How long before the replay reaches an IGV its arrival is reported (the appliance's start-up adds more).
ARRIVAL_LEAD_S = 2.0


@dataclass
class LaneDevices:
    gate: str
    lane: str
    device: SimModbusDevice
    broker: DemoBroker | None = None
    fleet: SimFleet | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _feeder: threading.Thread | None = None

    @classmethod
    def start(cls, workdir: Path, gate: str, lane: str, with_fleet: bool = True) -> LaneDevices:
        device = SimModbusDevice(free_port(), travel_s=TRAVEL_S, auto_pass_s=AUTO_PASS_S, dwell_s=DWELL_S).start()
        devices = cls(gate, lane, device)
        log.info("demo: simulated barrier/lights/loops (Modbus TCP) on 127.0.0.1:%d", device.port)
        binary = mosquitto_binary() if with_fleet else None
        if binary is None:
            if with_fleet:
                log.warning("demo: no mosquitto binary (apt-get install mosquitto, or scripts/setup.sh): running "
                            "without the simulated IGV fleet and message board; IGVs are judged by their painted "
                            "fleet ID only and no release/hold is sent")
            return devices
        try:
            devices.broker = DemoBroker(workdir / "broker", binary).start()
            devices.fleet = SimFleet(devices.broker.host, devices.broker.port, gate, lane).start()
        except Exception:
            devices.stop()
            raise
        log.info("demo: simulated IGV fleet on the demo broker mqtt://127.0.0.1:%d", devices.broker.port)
        return devices

    def actuators_section(self) -> dict[str, Any]:
        """The lane's ``actuators:`` config (docs/ACTUATORS.md) for these devices."""
        device = {"host": self.device.host, "port": self.device.port, "timeout_s": 0.5}
        section: dict[str, Any] = {
            "barrier": {"type": "modbus", "device": device, "ack_timeout_s": 3.0},
            "signal": {"type": "modbus", "device": device},
            "loops": {"type": "modbus", "device": device, "poll_s": 0.05},
            "pass_timeout_s": 15.0,
        }
        if self.broker is not None:
            section["mqtt"] = {"host": self.broker.host, "port": self.broker.port}
            section["fleet"] = {"ack_timeout_s": 3.0}
            section["board"] = {"type": "mqtt"}
        return section

    def feed_arrivals(self, truth_path: Path, video_start: float, lead_s: float = ARRIVAL_LEAD_S) -> None:
        """Report each IGV of ``truth_path`` ``lead_s`` before its ``t_enter`` (counted from now as the video's
        ``video_start``), on a background thread; nothing without a fleet."""
        if self.fleet is None:
            return
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        igvs = [v for v in truth["vehicles"] if v.get("kind") == "igv" and v.get("fleet_id")]
        if not igvs:
            return
        fleet, started = self.fleet, time.monotonic()

        def run() -> None:
            for v in igvs:
                if self._stop.wait(max(0.0, started + float(v["t_enter"]) - video_start - lead_s - time.monotonic())):
                    return
                try:
                    fleet.arrive(str(v["fleet_id"]), [str(c["number"]) for c in v.get("containers") or []])
                except Exception:  # the demo goes on; the lane holds the IGV for want of its telemetry
                    log.warning("demo: the simulated fleet could not report an IGV arrival", exc_info=True)

        self._feeder = threading.Thread(target=run, name="sim-fleet-arrivals", daemon=True)
        self._feeder.start()

    def stop(self) -> None:
        self._stop.set()
        if self._feeder is not None:
            self._feeder.join(5)
        if self.fleet is not None:
            self.fleet.stop()
        if self.broker is not None:
            self.broker.stop()
        self.device.stop()
