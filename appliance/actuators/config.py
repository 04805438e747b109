"""The ``actuators:`` section of a lane: which barrier, lights, board, fleet link and loop detectors it has.

Imported by appliance/config.py into ``LaneConfig``; it must not import appliance.config (a cycle).
Every model forbids unknown keys and describes every field, like the rest of the config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusDevice(_Strict):
    host: str = Field(description="Modbus TCP device (PLC, remote I/O) host name or address.")
    port: int = Field(default=502, ge=1, le=65535, description="Modbus TCP port.")
    unit: int = Field(default=1, ge=0, le=247, description="Modbus unit (slave) id.")
    timeout_s: float = Field(default=0.5, gt=0, le=10, description="How long one request may take.")


class ModbusBarrierConfig(_Strict):
    type: Literal["modbus"]
    device: ModbusDevice
    command_coil: int = Field(default=0, ge=0, description="Coil that commands the barrier: 1 open, 0 close.")
    open_input: int = Field(default=0, ge=0, description="Discrete input of the 'fully open' limit switch.")
    closed_input: int = Field(default=1, ge=0, description="Discrete input of the 'fully closed' limit switch.")
    ack_timeout_s: float = Field(
        default=3.0, gt=0, le=60,
        description="The barrier's acknowledgement is its limit switch reporting the commanded position; "
        "no acknowledgement within this long is a fault (barrier closed, alarm).")


class GpioBarrierConfig(_Strict):
    type: Literal["gpio"]
    chip: Path = Field(default=Path("/dev/gpiochip0"), description="GPIO character device (Linux gpiod).")
    command_line: int = Field(ge=0, description="Output line that commands the barrier: active = open.")
    open_line: int = Field(ge=0, description="Input line of the 'fully open' limit switch.")
    closed_line: int = Field(ge=0, description="Input line of the 'fully closed' limit switch.")
    active_low: bool = Field(default=False, description="Lines are active low.")
    ack_timeout_s: float = Field(default=3.0, gt=0, le=60, description="As for the Modbus barrier.")


BarrierConfig = Annotated[ModbusBarrierConfig | GpioBarrierConfig, Field(discriminator="type")]


class ModbusSignalConfig(_Strict):
    type: Literal["modbus"]
    device: ModbusDevice
    green_coil: int = Field(default=1, ge=0, description="Coil of the green light.")
    red_coil: int = Field(default=2, ge=0, description="Coil of the red light.")


class MqttBoardConfig(_Strict):
    type: Literal["mqtt"]
    topic: str = Field(default="smartgate/{gate}/{lane}/board",
                       description="Topic the message board listens on ({gate}, {lane}); messages are retained.")
    ack_timeout_s: float = Field(default=2.0, gt=0, le=60, description="How long to wait for the broker's PUBACK.")


class FleetConfig(_Strict):
    command_topic: str = Field(default="fleet/{gate}/{lane}/commands",
                               description="Topic of release/hold commands to the fleet-management system.")
    ack_topic: str = Field(default="fleet/{gate}/{lane}/acks", description="Topic of the fleet's acknowledgements.")
    arrival_topic: str = Field(default="fleet/{gate}/{lane}/arrivals",
                               description="Topic of IGV arrival telemetry (fleet ID, position, containers).")
    ack_timeout_s: float = Field(default=2.0, gt=0, le=60,
                                 description="No acknowledgement of a release/hold within this long is a fault.")
    arrival_window_s: float = Field(default=300.0, gt=0,
                                    description="An arrival older than this joins no crossing.")
    max_payload_bytes: int = Field(default=16384, ge=256, le=1048576,
                                   description="Larger telemetry messages are dead-lettered unread.")


class ActuatorMqttConfig(_Strict):
    host: str = Field(description="Broker that carries the fleet's telemetry and commands and the message board.")
    port: int = Field(default=8883, ge=1, le=65535, description="Broker port (1883 plain, 8883 TLS).")
    ca_file: Path | None = Field(default=None, description="CA bundle of the broker's certificate; absent: plain TCP "
                                 "(loopback/tests only).")
    username: str | None = Field(default=None, description="MQTT user name.")
    password_file: Path | None = Field(default=None, description="File holding the MQTT password.")
    client_id: str | None = Field(default=None,
                                 description="MQTT client id; default: smartgate-<gate>-<box>-<lane>-act.")
    keepalive_s: int = Field(default=15, ge=5, le=3600, description="MQTT keep-alive interval.")


class ModbusLoopsConfig(_Strict):
    type: Literal["modbus"]
    device: ModbusDevice
    presence_input: int | None = Field(default=2, ge=0, description="Loop before the barrier (vehicle waiting).")
    exit_input: int = Field(default=3, ge=0,
                            description="Loop after the barrier: occupied then clear = the vehicle passed (close).")
    poll_s: float = Field(default=0.05, gt=0, le=5, description="How often the loop inputs are read.")


class LaneActuatorsConfig(_Strict):
    barrier: BarrierConfig = Field(description="The lane's barrier (opens only on CLEAR or an inspector's approval).")
    signal: ModbusSignalConfig | None = Field(default=None, description="Signal lights; absent: none.")
    board: MqttBoardConfig | None = Field(default=None, description="Message board (vi + zh + en); absent: none.")
    fleet: FleetConfig | None = Field(default=None, description="IGV fleet-management link; absent: no IGVs.")
    loops: ModbusLoopsConfig | None = Field(default=None, description="Loop detectors; absent: close on timeout.")
    mqtt: ActuatorMqttConfig | None = Field(default=None, description="Broker of the fleet link and the board.")
    pass_timeout_s: float = Field(
        default=30.0, gt=0, le=600,
        description="Close the barrier this long after it opened when the exit loop did not report the vehicle "
        "passing (without loops: the normal close).")
    approval_window_s: float = Field(
        default=900.0, gt=0,
        description="An inspector's approval opens the barrier only within this long after the verdict, and only "
        "for the lane's latest held crossing.")
    approval_poll_s: float = Field(default=0.5, gt=0, le=10,
                                   description="How often the store is checked for inspectors' approvals.")

    @model_validator(mode="after")
    def _mqtt_when_needed(self) -> LaneActuatorsConfig:
        if (self.fleet is not None or self.board is not None) and self.mqtt is None:
            raise ValueError("fleet: and board: need an mqtt: broker in the same actuators: section")
        return self
