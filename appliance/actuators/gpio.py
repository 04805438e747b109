"""A barrier on Linux GPIO lines (libgpiod v2 Python bindings, ``gpiod``), where the box has them.

``gpiod`` is optional: it is imported only when a lane configures a GPIO barrier, and its absence stops
the start-up with a clear message (pip install gpiod, or wire the barrier through a Modbus I/O module).
Not exercised by the tests (no GPIO chip on the CI machines); the Modbus barrier is.
"""

from __future__ import annotations

import time
from typing import Any

from appliance.actuators.base import BARRIER_ACTIONS, Ack, ActuatorFault, Command, position_from
from appliance.actuators.config import GpioBarrierConfig
from appliance.actuators.modbus import FEEDBACK_POLL_S


def import_gpiod() -> Any:
    try:
        import gpiod  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise ActuatorFault(
            "missing_backend",
            "a GPIO barrier is configured (actuators.barrier.type: gpio) but the gpiod Python package (libgpiod v2 "
            "bindings) is not installed: install it on the box, or drive the barrier through a Modbus I/O module",
        ) from exc
    return gpiod


class GpioBarrier:
    name = "barrier"

    def __init__(self, cfg: GpioBarrierConfig):
        gpiod = import_gpiod()
        from gpiod.line import Direction, Value  # type: ignore[import-not-found,unused-ignore]

        self.cfg = cfg
        self._active, self._inactive = Value.ACTIVE, Value.INACTIVE
        where = str(cfg.chip)
        try:
            self._request = gpiod.request_lines(
                where, consumer="smartgate-barrier",
                config={
                    cfg.command_line: gpiod.LineSettings(direction=Direction.OUTPUT, active_low=cfg.active_low,
                                                         output_value=Value.INACTIVE),  # closed until told
                    (cfg.open_line, cfg.closed_line): gpiod.LineSettings(direction=Direction.INPUT,
                                                                         active_low=cfg.active_low),
                },
            )
        except OSError as exc:
            raise ActuatorFault("unreachable", f"GPIO chip {where}: cannot request lines: {exc}") from exc
        self.where = f"gpio://{where}/{cfg.command_line}"

    def position(self) -> str:
        try:
            opened = self._request.get_value(self.cfg.open_line) == self._active
            closed = self._request.get_value(self.cfg.closed_line) == self._active
        except OSError as exc:
            raise ActuatorFault("unreachable", f"{self.where}: cannot read the limit switches: {exc}") from exc
        return position_from(opened, closed)

    def command(self, cmd: Command) -> Ack:
        if cmd.action not in BARRIER_ACTIONS:
            raise ActuatorFault("rejected", f"barrier: unknown action {cmd.action!r}")
        want = "open" if cmd.action == "open" else "closed"
        try:
            self._request.set_value(self.cfg.command_line, self._active if want == "open" else self._inactive)
        except OSError as exc:
            raise ActuatorFault("unreachable", f"{self.where}: cannot set the command line: {exc}") from exc
        deadline = time.monotonic() + self.cfg.ack_timeout_s
        while (seen := self.position()) != want:
            if time.monotonic() >= deadline:
                raise ActuatorFault("no_ack", f"barrier at {self.where}: commanded {cmd.action} but the limit "
                                    f"switches report {seen} after {self.cfg.ack_timeout_s} s")
            time.sleep(FEEDBACK_POLL_S)
        return Ack(self.name, cmd.action, {"position": want, "device": self.where})

    def close(self) -> None:
        self._request.release()
