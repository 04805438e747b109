"""A simulated barrier + signal lights + loop detectors behind a real Modbus TCP server (pymodbus).

Stands in for the lane's PLC or remote I/O module so the actuator controller runs against the real
protocol in tests, the benchmark and the demo. Layout (the defaults of appliance/actuators/config.py):

- coil 0: barrier command (1 open, 0 close); coil 1: green light; coil 2: red light;
- discrete input 0: barrier fully open; 1: barrier fully closed; 2: presence loop; 3: exit loop.

The barrier moves ``travel_s`` after its command coil changes, then its limit switch reports the new
position. ``history`` records every command and position change with its time, so a test can check the
order of events; ``jam()`` stops the barrier moving (its acknowledgement is then lost), ``stop()``
makes the device unreachable, ``vehicle_passes()`` drives the exit loop. With ``auto_pass_s`` (the demo
and the end-to-end test) a vehicle drives through by itself: ``auto_pass_s`` after the barrier reports
fully open, the exit loop is occupied for ``dwell_s`` and then clear again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import ModbusTcpServer

log = logging.getLogger(__name__)

BARRIER_COIL, GREEN_COIL, RED_COIL = 0, 1, 2
OPEN_INPUT, CLOSED_INPUT, PRESENCE_INPUT, EXIT_INPUT = 0, 1, 2, 3
_SIZE = 16


@dataclass(frozen=True)
class DeviceEvent:
    ts: float  # time.monotonic()
    what: str  # "command:open", "command:close", "position:open", "position:closed", "coil:<n>=<0|1>",
    # "loop:exit=<0|1>" (the automatic vehicle of ``auto_pass_s`` only)


class _Coils(ModbusSequentialDataBlock):
    """Coil block that tells the device about every write (pymodbus addresses are 1-based here)."""

    def __init__(self, device: SimModbusDevice):
        super().__init__(1, [False] * _SIZE)
        self.device = device

    def setValues(self, address: int, values: Any) -> None:  # pymodbus' method name
        values = values if isinstance(values, list) else [values]
        before = self.getValues(address, len(values))
        super().setValues(address, values)
        for i, (old, new) in enumerate(zip(before, values, strict=True)):
            self.device._coil_written(address - 1 + i, bool(old), bool(new))


class SimModbusDevice:
    def __init__(self, port: int, travel_s: float = 0.1, host: str = "127.0.0.1", auto_pass_s: float | None = None,
                 dwell_s: float = 0.3):
        self.host, self.port, self.travel_s = host, port, travel_s
        self.auto_pass_s, self.dwell_s = auto_pass_s, dwell_s
        self.history: list[DeviceEvent] = []
        self._lock = threading.Lock()
        self._jammed = False
        self._coils = _Coils(self)
        self._inputs = ModbusSequentialDataBlock(1, [False] * _SIZE)
        self._inputs.values[CLOSED_INPUT] = True  # a barrier starts closed
        self._coils.values[RED_COIL] = True
        self._context = ModbusServerContext(slaves=ModbusSlaveContext(di=self._inputs, co=self._coils), single=True)
        self._server: ModbusTcpServer | None = None  # made on its own event loop (pymodbus needs a running loop)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._timers: list[threading.Timer] = []

    # --- server lifecycle --------------------------------------------------------------------------

    def start(self) -> SimModbusDevice:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def serve() -> None:
                self._server = ModbusTcpServer(self._context, address=(self.host, self.port))
                await self._server.serve_forever(background=True)
                ready.set()
                await self._server.serving

            try:
                loop.run_until_complete(serve())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"sim-modbus-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"simulated Modbus device did not start on {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        """Stop serving: the device becomes unreachable (its state is kept)."""
        for t in self._timers:
            t.cancel()
        if self._server is not None and self._loop is not None and self._thread is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(10)
            self._thread.join(10)

    # --- what a test reads and does --------------------------------------------------------------------

    @property
    def position(self) -> str:
        with self._lock:
            opened, closed = self._inputs.values[OPEN_INPUT], self._inputs.values[CLOSED_INPUT]
        return "open" if opened and not closed else "closed" if closed and not opened else "moving"

    @property
    def lights(self) -> tuple[bool, bool]:
        """(green, red)"""
        with self._lock:
            return bool(self._coils.values[GREEN_COIL]), bool(self._coils.values[RED_COIL])

    def events(self, prefix: str = "") -> list[str]:
        with self._lock:
            return [e.what for e in self.history if e.what.startswith(prefix)]

    def first(self, what: str) -> float | None:
        with self._lock:
            return next((e.ts for e in self.history if e.what == what), None)

    def first_after(self, what: str, since: float) -> float | None:
        """time.monotonic() of the first ``what`` at or after ``since`` (None: not yet)."""
        with self._lock:
            return next((e.ts for e in self.history if e.what == what and e.ts >= since), None)

    def jam(self, jammed: bool = True) -> None:
        """A jammed barrier ignores its command: the limit switches never confirm (a lost acknowledgement)."""
        self._jammed = jammed

    def set_input(self, address: int, value: bool) -> None:
        with self._lock:
            self._inputs.values[address] = value

    def vehicle_passes(self, dwell_s: float = 0.1) -> None:
        """The exit loop sees a vehicle for ``dwell_s`` (the controller closes the barrier after it)."""
        self.set_input(EXIT_INPUT, True)
        time.sleep(dwell_s)
        self.set_input(EXIT_INPUT, False)

    def _auto_pass(self) -> None:
        """The vehicle waiting at the open barrier drives through (``auto_pass_s``), if it is still open."""
        if self.position != "open":
            return
        with self._lock:
            self.history.append(DeviceEvent(time.monotonic(), "loop:exit=1"))
        self.vehicle_passes(self.dwell_s)
        with self._lock:
            self.history.append(DeviceEvent(time.monotonic(), "loop:exit=0"))

    # --- the barrier's mechanics ------------------------------------------------------------------------

    def _coil_written(self, coil: int, old: bool, new: bool) -> None:
        now = time.monotonic()
        with self._lock:
            if coil == BARRIER_COIL:
                self.history.append(DeviceEvent(now, "command:open" if new else "command:close"))
            else:
                self.history.append(DeviceEvent(now, f"coil:{coil}={int(new)}"))
        if coil != BARRIER_COIL or self._jammed:
            return
        with self._lock:
            self._inputs.values[OPEN_INPUT] = False
            self._inputs.values[CLOSED_INPUT] = False
        self._start_timer(self.travel_s, self._arrive, new)

    def _start_timer(self, delay_s: float, fn: Any, *args: Any) -> None:
        timer = threading.Timer(delay_s, fn, args=args)
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]  # a long demo keeps only live ones
        timer.start()

    def _arrive(self, opened: bool) -> None:
        with self._lock:
            if bool(self._coils.values[BARRIER_COIL]) != opened:
                return  # commanded elsewhere meanwhile: the later command's timer settles it
            self._inputs.values[OPEN_INPUT] = opened
            self._inputs.values[CLOSED_INPUT] = not opened
            self.history.append(DeviceEvent(time.monotonic(), "position:open" if opened else "position:closed"))
        if opened and self.auto_pass_s is not None:
            self._start_timer(self.auto_pass_s, self._auto_pass)
