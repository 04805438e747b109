"""Barrier, signal lights and loop detectors over Modbus TCP (pymodbus' synchronous client).

One ``ModbusLink`` per device (host, port, unit), shared by the actuators wired to it and serialised by a
lock. A request that fails (refused, timed out, exception response) raises ``ActuatorFault("unreachable")``;
the next request reconnects.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from appliance.actuators.base import BARRIER_ACTIONS, SIGNAL_ACTIONS, Ack, ActuatorFault, Command, position_from
from appliance.actuators.config import ModbusBarrierConfig, ModbusDevice, ModbusLoopsConfig, ModbusSignalConfig

log = logging.getLogger(__name__)

FEEDBACK_POLL_S = 0.01  # how often a barrier's limit switches are read while waiting for its acknowledgement


class ModbusLink:
    def __init__(self, device: ModbusDevice):
        from pymodbus.client import ModbusTcpClient

        # pymodbus logs every refused connection at ERROR (20 lines a second from a polled loop detector in an
        # outage); the ActuatorFault it becomes is audited and alarmed by the controller instead.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        self.device = device
        self.where = f"modbus://{device.host}:{device.port}/{device.unit}"
        # retries=0: a lost request is a fault to the controller, not something to retry behind its back.
        self._client = ModbusTcpClient(device.host, port=device.port, timeout=device.timeout_s, retries=0)
        self._lock = threading.Lock()

    def _call(self, what: str, fn: Any) -> Any:
        from pymodbus.exceptions import ModbusException

        with self._lock:
            try:
                if not self._client.connected and not self._client.connect():
                    raise ActuatorFault("unreachable", f"{self.where}: cannot connect ({what})")
                response = fn()
            except ModbusException as exc:
                self._client.close()
                raise ActuatorFault("unreachable", f"{self.where}: {what} failed: {exc}") from exc
            except OSError as exc:
                self._client.close()
                raise ActuatorFault("unreachable", f"{self.where}: {what} failed: {exc}") from exc
        if response.isError():
            raise ActuatorFault("rejected", f"{self.where}: {what} answered with an exception response: {response}")
        return response

    def write_coil(self, address: int, value: bool) -> None:
        self._call(f"write coil {address}", lambda: self._client.write_coil(address, value, slave=self.device.unit))

    def read_inputs(self, address: int, count: int) -> list[bool]:
        r = self._call(f"read discrete inputs {address}+{count}",
                       lambda: self._client.read_discrete_inputs(address, count=count, slave=self.device.unit))
        return [bool(b) for b in r.bits[:count]]

    def read_coils(self, address: int, count: int) -> list[bool]:
        r = self._call(f"read coils {address}+{count}",
                       lambda: self._client.read_coils(address, count=count, slave=self.device.unit))
        return [bool(b) for b in r.bits[:count]]

    def close(self) -> None:
        with self._lock:
            self._client.close()


class ModbusBarrier:
    """Command coil 1 = open, 0 = close; acknowledged by the limit switch of the commanded position."""

    name = "barrier"

    def __init__(self, cfg: ModbusBarrierConfig, link: ModbusLink):
        self.cfg = cfg
        self.link = link

    def position(self) -> str:
        lo = min(self.cfg.open_input, self.cfg.closed_input)
        bits = self.link.read_inputs(lo, abs(self.cfg.open_input - self.cfg.closed_input) + 1)
        return position_from(bits[self.cfg.open_input - lo], bits[self.cfg.closed_input - lo])

    def command(self, cmd: Command) -> Ack:
        if cmd.action not in BARRIER_ACTIONS:
            raise ActuatorFault("rejected", f"barrier: unknown action {cmd.action!r}")
        want = "open" if cmd.action == "open" else "closed"
        self.link.write_coil(self.cfg.command_coil, cmd.action == "open")
        deadline = time.monotonic() + self.cfg.ack_timeout_s
        seen = "unknown"
        while True:
            seen = self.position()
            if seen == want:
                return Ack(self.name, cmd.action, {"position": seen, "device": self.link.where})
            if time.monotonic() >= deadline:
                raise ActuatorFault("no_ack", f"barrier at {self.link.where}: commanded {cmd.action} but the limit "
                                    f"switches report {seen} after {self.cfg.ack_timeout_s} s")
            time.sleep(FEEDBACK_POLL_S)

    def close(self) -> None:
        self.link.close()


class ModbusSignal:
    """Green and red lights on two coils, never both on; acknowledged by reading the coils back."""

    name = "signal"

    def __init__(self, cfg: ModbusSignalConfig, link: ModbusLink):
        self.cfg = cfg
        self.link = link

    def command(self, cmd: Command) -> Ack:
        if cmd.action not in SIGNAL_ACTIONS:
            raise ActuatorFault("rejected", f"signal: unknown action {cmd.action!r}")
        green = cmd.action == "green"
        # Red first on the way to red, green off first on the way to green: never both green and no light.
        if green:
            self.link.write_coil(self.cfg.green_coil, True)
            self.link.write_coil(self.cfg.red_coil, False)
        else:
            self.link.write_coil(self.cfg.red_coil, True)
            self.link.write_coil(self.cfg.green_coil, False)
        got = (self.link.read_coils(self.cfg.green_coil, 1)[0], self.link.read_coils(self.cfg.red_coil, 1)[0])
        if got != (green, not green):
            raise ActuatorFault("no_ack", f"signal at {self.link.where}: commanded {cmd.action}, coils read back "
                                f"green={got[0]} red={got[1]}")
        return Ack(self.name, cmd.action, {"device": self.link.where})

    def close(self) -> None:
        self.link.close()


class ModbusLoops:
    """Reads the loop detectors; ``poll()`` returns {name: occupied}."""

    def __init__(self, cfg: ModbusLoopsConfig, link: ModbusLink):
        self.cfg = cfg
        self.link = link
        self.inputs = {"exit": cfg.exit_input}
        if cfg.presence_input is not None:
            self.inputs["presence"] = cfg.presence_input

    def poll(self) -> dict[str, bool]:
        lo, hi = min(self.inputs.values()), max(self.inputs.values())
        bits = self.link.read_inputs(lo, hi - lo + 1)
        return {name: bits[addr - lo] for name, addr in self.inputs.items()}

    def close(self) -> None:
        self.link.close()
