"""Lane actuators and the driverless fleet: barrier, signal lights, message board and IGV release/hold,
driven by the crossing verdict, fail-safe (see docs/ACTUATORS.md).

- ``config``: the per-lane ``actuators:`` section (imported by appliance/config.py; no other imports here).
- ``base``: the small interface every actuator implements (``command(action) -> Ack``) and its faults.
- ``modbus``, ``gpio``, ``mqtt_link``, ``fleet``, ``board``: the device backends.
- ``join``: IGV arrival telemetry joined to the crossing (identity from the fleet, checked against the
  container numbers the cameras read).
- ``audit``: every command, acknowledgement, fault and alarm in SQLite and the outbox.
- ``controller``: the fail-safe state machine of one lane; ``setup`` builds it from the config.
"""
