"""The one small interface every lane actuator implements, and the faults it raises.

An actuator takes a command (``open``/``close``, ``green``/``red``, ``show``, ``release``/``hold``) and
returns only once the device acknowledged it: the barrier's limit switch reports the commanded position,
the fleet system answers with the command's id, the broker confirms the board's message. Anything else
raises ``ActuatorFault`` with a machine-readable ``code``; the controller then keeps the barrier closed
and raises an alarm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance.errors import ApplianceError


class ActuatorFault(ApplianceError):
    """A command was not carried out, or not acknowledged in time. ``code``: unreachable, no_ack, rejected,
    bad_state, missing_backend."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Ack:
    """A device's acknowledgement of one command (``detail``: what it reported, for the audit)."""

    actuator: str
    action: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    """One command to one actuator. ``seq`` increases per lane and survives restarts (the audit table)."""

    actuator: str
    action: str
    seq: int
    command_id: str
    crossing_id: str | None = None
    args: dict[str, Any] = field(default_factory=dict)


class Actuator(Protocol):
    """What the controller needs of a device."""

    name: str

    def command(self, cmd: Command) -> Ack:
        """Carry out ``cmd`` and return its acknowledgement, or raise ActuatorFault."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class Barrier(Actuator, Protocol):
    def position(self) -> str:
        """``open``, ``closed``, ``moving`` (neither limit switch) or ``unknown`` (both: a wiring fault);
        ActuatorFault when the device cannot be read."""
        ...


BARRIER_ACTIONS = ("open", "close")
SIGNAL_ACTIONS = ("green", "red")
FLEET_ACTIONS = ("release", "hold")


def position_from(open_switch: bool, closed_switch: bool) -> str:
    if open_switch and closed_switch:
        return "unknown"
    if open_switch:
        return "open"
    if closed_switch:
        return "closed"
    return "moving"
