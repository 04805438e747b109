"""The fail-safe controller of one lane's actuators.

Rules (docs/ACTUATORS.md):
- the barrier opens only on a CLEAR verdict, or on an inspector's approval of the lane's latest held
  crossing (within ``approval_window_s``), and only when its limit switch reports it closed;
- open: barrier open (acknowledged) -> green -> board "pass" -> IGV release; the barrier closes when the
  exit loop reports the vehicle through, or after ``pass_timeout_s``;
- REVIEW/HOLD: barrier close, red, board "stop", IGV hold; the barrier never opens for it;
- any fault (device unreachable, no acknowledgement in time, a conflicting, duplicated or out-of-order
  command, a restart mid-crossing) raises an alarm and drives the barrier closed, the light red and the
  IGV held;
- start-up always drives the barrier closed; a cycle left open by the last run is an alarm.

Everything happens on one worker thread fed by a queue, so the lane's state is never shared; the
pipeline's callback only enqueues (``on_crossing``). Every command, acknowledgement, fault and alarm is
audited and published (appliance/actuators/audit.py).

``status`` (shown by the status page's actuator panel, appliance/web/status_view.py) is a plain dict the
worker updates and the web thread reads; every value in it is replaced, never changed in place, so a
reader never sees a half-written list: ``barrier`` (``open``, ``closed``, ``moving`` while a command waits
for its limit switch, ``unknown`` after a barrier fault or before the first acknowledgement), ``commands``
(the latest RECENT_COMMANDS commands with their outcome) and ``active_alarms`` (alarms raised since the
lane last carried out a whole command sequence with every device acknowledging).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from typing import Any

from appliance.actuators.audit import ActuatorAudit
from appliance.actuators.base import Ack, Actuator, ActuatorFault, Barrier, Command
from appliance.actuators.config import LaneActuatorsConfig
from appliance.actuators.fleet import ReceivedArrival
from appliance.actuators.join import IgvJoin
from appliance.actuators.modbus import ModbusLoops
from appliance.lanes.crossing import Crossing
from appliance.verdicts.rules import Verdict

log = logging.getLogger(__name__)

CONTROLLER = "controller"
LOOP_RETRY_S = 1.0  # how often an unreachable loop detector is tried again
RECENT_COMMANDS = 10  # commands kept in ``status["commands"]`` for the status page
ACTIVE_ALARMS = 20  # most alarms kept in ``status["active_alarms"]``


class LaneController:
    def __init__(self, lane_id: str, cfg: LaneActuatorsConfig, audit: ActuatorAudit, barrier: Barrier,
                 signal: Actuator | None = None, board: Actuator | None = None, fleet: Actuator | None = None,
                 loops: ModbusLoops | None = None, join: IgvJoin | None = None):
        self.lane_id = lane_id
        self.cfg = cfg
        self.audit = audit
        self.barrier, self.signal, self.board, self.fleet, self.loops = barrier, signal, board, fleet, loops
        self.join = join
        self.status: dict[str, Any] = {"state": "starting", "alarms": 0, "last_alarm": None, "barrier": "unknown",
                                       "commands": [], "active_alarms": []}
        self._sequence_started = 0.0  # time.time() the current command sequence began (clears older alarms)
        self._q: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._seq = 0
        self._last_ended: float | None = None
        self._open_for: str | None = None
        self._open_fleet: str | None = None
        self._pass_deadline: float | None = None
        self._exit_occupied = False
        self._awaiting: dict[str, tuple[float, str | None]] = {}  # held crossing -> (verdict time, fleet id)
        self._last_decision_id = 0
        self._next_poll = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread: threading.Thread | None = None
        self._idle = threading.Event()

    # --- the outside world -----------------------------------------------------------------------

    def start(self) -> None:
        """Drive the barrier closed (an alarm when the last run stopped mid-crossing), then serve."""
        self._startup()
        self._thread = threading.Thread(target=self._run, name=f"actuators-{self.lane_id}", daemon=True)
        self._thread.start()
        if self.loops is not None:
            self._loop_thread = threading.Thread(target=self._watch_loops, name=f"loops-{self.lane_id}", daemon=True)
            self._loop_thread.start()

    def on_crossing(self, crossing: Crossing, verdict: Verdict) -> None:
        """The pipeline's callback: enqueue only (the lane thread never waits on a device)."""
        self._q.put(("verdict", crossing, verdict, time.monotonic()))

    def on_arrival(self, arrival: ReceivedArrival) -> None:
        if self.join is not None:
            self.join.add(arrival)
        self._q.put(("arrival", arrival))

    def on_stray_ack(self, info: dict[str, Any]) -> None:
        self._q.put(("stray_ack", info))

    def stop(self) -> None:
        self._stop.set()
        self._q.put(("stop",))
        for t in (self._thread, self._loop_thread):
            if t is not None:
                t.join(10)
        for device in (self.barrier, self.signal, self.board, self.fleet, self.loops):
            if device is not None:
                try:
                    device.close()
                except Exception:  # closing is best effort
                    log.debug("closing %s failed", device, exc_info=True)

    def wait_idle(self, timeout_s: float) -> bool:
        """True once the queue is drained and no cycle is open (tests and the benchmark)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._q.unfinished_tasks == 0 and self._open_for is None:
                return True
            time.sleep(0.01)
        return False

    # --- start-up ------------------------------------------------------------------------------------

    def _startup(self) -> None:
        st = self.audit.load_state()
        self._seq, self._last_ended = st.last_seq, st.last_ended_at
        rows = self.audit.store.query("SELECT COALESCE(MAX(id), 0) AS n FROM decisions")
        self._last_decision_id = int(rows[0]["n"])  # approvals given before this start open nothing
        if st.state != "idle":
            # fault: the last run could not confirm the barrier closed; anything else: it stopped mid-crossing
            code = "restart_after_fault" if st.state == "fault" else "restart_mid_crossing"
            self._fault(code, st.crossing_id, {"state_found": st.state}, fleet_id=st.fleet_id)
            return
        self._safe_close(None, "startup")

    # --- the worker ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            waits = [self.cfg.approval_poll_s if self._next_poll <= now else self._next_poll - now]
            if self._pass_deadline is not None:
                waits.append(self._pass_deadline - now)
            try:
                event = self._q.get(timeout=max(0.0, min(waits)))
            except queue.Empty:
                event = None
            try:
                if event is not None and event[0] == "stop":
                    return
                if event is not None:
                    self._dispatch(event)
                if self._pass_deadline is not None and time.monotonic() >= self._pass_deadline:
                    self._pass_deadline = None
                    self._close_cycle("pass_timeout")
                if time.monotonic() >= self._next_poll:
                    self._next_poll = time.monotonic() + self.cfg.approval_poll_s
                    self._poll_approvals()
            except Exception as exc:  # a bug must still leave the barrier closed
                log.exception("lane %s: actuator controller error", self.lane_id)
                self._fault("controller_error", self._open_for, {"error": exc.__class__.__name__})
            finally:
                if event is not None:
                    self._q.task_done()

    def _dispatch(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "verdict":
            self._on_verdict(event[1], event[2], event[3])
        elif kind == "loop":
            self._on_loop(event[1], event[2])
        elif kind == "loop_fault":
            self._fault(event[1], self._open_for, {"message": event[2], "device": "loops"})
        elif kind == "arrival":
            a: ReceivedArrival = event[1]
            self.audit.write("note", "fleet", "arrival", self._seq, None, None,
                             {"fleet_id": a.arrival.fleet_id, "containers": list(a.arrival.containers),
                              "trip_id": a.arrival.trip_id})
        elif kind == "stray_ack":
            self.audit.write("note", "fleet", "ack", self._seq, None, "stray_ack", event[1])
            log.warning("lane %s: fleet acknowledgement for no waiting command (duplicate or late): ignored",
                        self.lane_id)

    # --- verdicts and approvals --------------------------------------------------------------------------

    def _on_verdict(self, crossing: Crossing, verdict: Verdict, queued_at: float) -> None:
        cid = crossing.id
        fleet_id = crossing.fleet_id.value if crossing.fleet_id is not None and self.fleet is not None else None
        duplicate = self.audit.acted_on(cid)
        out_of_order = self._last_ended is not None and crossing.ended_at < self._last_ended
        state = None if out_of_order or duplicate else {"last_ended_at": crossing.ended_at}
        self.audit.write("note", CONTROLLER, "verdict", self._seq, cid, verdict.decision,
                         {"decision": verdict.decision, "queued_ms": round((time.monotonic() - queued_at) * 1000, 2)},
                         state=state)
        if duplicate:
            self._fault("duplicate_command", cid, {"decision": verdict.decision})
            return
        if out_of_order:
            self._fault("out_of_order_command", cid, {"decision": verdict.decision, "ended_at": crossing.ended_at,
                                                      "last_ended_at": self._last_ended})
            return
        self._last_ended = crossing.ended_at
        if self._open_for is not None:
            self._fault("conflicting_command", cid, {"decision": verdict.decision, "open_for": self._open_for})
            return
        if verdict.decision == "CLEAR":
            self._open(cid, fleet_id, "verdict")
        else:
            self._hold(cid, fleet_id, verdict.decision)

    def _poll_approvals(self) -> None:
        rows = self.audit.store.query(
            "SELECT d.id, d.crossing_id, d.action, d.username, d.role FROM decisions d "
            "JOIN crossings c ON c.id = d.crossing_id WHERE d.id > ? AND c.lane_id = ? "
            "AND d.action IN ('approve', 'hold') ORDER BY d.id", (self._last_decision_id, self.lane_id))
        for r in rows:
            self._last_decision_id = int(r["id"])
            cid = r["crossing_id"]
            if r["action"] == "hold":
                self._awaiting.pop(cid, None)
                continue
            held = self._awaiting.get(cid)
            latest = max(self._awaiting, key=lambda k: self._awaiting[k][0]) if self._awaiting else None
            why = None
            if held is None:
                why = "not_held_here"  # never held by this run, already released, or not this lane's
            elif time.monotonic() - held[0] > self.cfg.approval_window_s:
                why = "approval_expired"
            elif cid != latest:
                why = "not_latest_crossing"  # another vehicle is at the barrier now
            elif self._open_for is not None:
                why = "barrier_busy"
            detail = {"decision_id": int(r["id"]), "inspector": r["username"], "role": r["role"]}
            if why is not None:
                self.audit.write("note", CONTROLLER, "approval_ignored", self._seq, cid, why, detail)
                continue
            self.audit.write("note", CONTROLLER, "approval", self._seq, cid, "approve", detail)
            del self._awaiting[cid]
            assert held is not None
            self._open(cid, held[1], "inspector_approval")

    # --- the cycle -----------------------------------------------------------------------------------------

    def _open(self, cid: str, fleet_id: str | None, why: str) -> None:
        try:
            position = self.barrier.position()
        except ActuatorFault as f:
            self._fault(f.code, cid, {"message": str(f), "during": "check closed before open"}, fleet_id=fleet_id)
            return
        if position != "closed":
            self._fault("barrier_not_closed", cid, {"position": position}, fleet_id=fleet_id)
            return
        self._awaiting.clear()  # the vehicle in front of the barrier is this one now
        self._sequence_started = time.time()
        try:
            self._cmd(self.barrier, "open", cid, {"why": why},
                      state={"state": "opening", "crossing_id": cid, "fleet_id": fleet_id})
            self._open_for, self._open_fleet = cid, fleet_id
            self._set_status("open")
            if self.signal is not None:
                self._cmd(self.signal, "green", cid)
            if self.board is not None:
                self._cmd(self.board, "pass", cid)
            if self.fleet is not None and fleet_id is not None:
                self._cmd(self.fleet, "release", cid, {"fleet_id": fleet_id})
        except ActuatorFault as f:
            self._fault(f.code, cid, {"message": str(f)}, fleet_id=fleet_id)
            return
        self.audit.set_state(state="open")
        self._exit_occupied = False
        self._pass_deadline = time.monotonic() + self.cfg.pass_timeout_s

    def _hold(self, cid: str, fleet_id: str | None, decision: str) -> None:
        self._sequence_started = time.time()
        try:
            self._cmd(self.barrier, "close", cid, {"why": decision})
            if self.signal is not None:
                self._cmd(self.signal, "red", cid)
            if self.board is not None:
                self._cmd(self.board, "stop", cid)
            if self.fleet is not None and fleet_id is not None:
                self._cmd(self.fleet, "hold", cid, {"fleet_id": fleet_id})
            self._sequence_done()
        except ActuatorFault as f:
            self._fault(f.code, cid, {"message": str(f)}, fleet_id=fleet_id)
        self._awaiting[cid] = (time.monotonic(), fleet_id)
        self._set_status("held")

    def _on_loop(self, name: str, occupied: bool) -> None:
        if name != "exit" or self._open_for is None:
            return
        if occupied:
            self._exit_occupied = True
        elif self._exit_occupied:
            self._pass_deadline = None
            self._close_cycle("passed")

    def _close_cycle(self, why: str) -> None:
        cid = self._open_for
        if cid is None:
            return
        try:
            self._cmd(self.barrier, "close", cid, {"why": why}, state={"state": "closing"})
            if self.signal is not None:
                self._cmd(self.signal, "red", cid)
            if self.board is not None:
                self._cmd(self.board, "wait", cid)
        except ActuatorFault as f:
            self._fault(f.code, cid, {"message": str(f)})
            return
        if why == "pass_timeout" and self.loops is not None:
            # The exit loop never saw the vehicle through: closed, but someone should look.
            self._alarm("pass_not_seen", cid, {"pass_timeout_s": self.cfg.pass_timeout_s})
        self._open_for = self._open_fleet = None
        self.audit.write("note", CONTROLLER, "cycle_closed", self._seq, cid, why,
                         state={"state": "idle", "crossing_id": None, "fleet_id": None})
        self._sequence_done()
        self._set_status("idle")

    # --- commands, faults, alarms ------------------------------------------------------------------------------

    def _cmd(self, actuator: Actuator, action: str, cid: str | None, args: dict[str, Any] | None = None,
             state: dict[str, Any] | None = None) -> Ack:
        """Audit the command (write-ahead), send it, audit its acknowledgement or its fault."""
        self._seq += 1
        cmd = Command(actuator.name, action, self._seq, str(uuid.uuid4()), cid, dict(args or {}))
        self.audit.write("command", actuator.name, action, cmd.seq, cid, None,
                         {"command_id": cmd.command_id, **cmd.args}, state={"last_seq": cmd.seq, **(state or {})})
        self._show_command(cmd, "pending")
        started = time.monotonic()
        try:
            ack = actuator.command(cmd)
        except ActuatorFault as f:
            self.audit.write("fault", actuator.name, action, cmd.seq, cid, f.code,
                             {"command_id": cmd.command_id, "message": str(f)[:500]})
            self._show_command(cmd, "fault", code=f.code)
            raise
        ack_ms = round((time.monotonic() - started) * 1000, 2)
        self.audit.write("ack", actuator.name, action, cmd.seq, cid, None,
                         {"command_id": cmd.command_id, "ack_ms": ack_ms, **ack.detail})
        self._show_command(cmd, "ok", ack_ms=ack_ms)
        return ack

    def _show_command(self, cmd: Command, result: str, code: str | None = None, ack_ms: float | None = None) -> None:
        """The status page's view of a command (``pending`` until acknowledged, then ``ok`` or ``fault``)."""
        entry = {"seq": cmd.seq, "at": time.time(), "actuator": cmd.actuator, "action": cmd.action,
                 "crossing_id": cmd.crossing_id, "result": result, "code": code, "ack_ms": ack_ms}
        commands = [c for c in self.status["commands"] if c["seq"] != cmd.seq] + [entry]
        self.status["commands"] = commands[-RECENT_COMMANDS:]
        if cmd.actuator == "barrier":
            self.status["barrier"] = {"pending": "moving", "fault": "unknown"}.get(
                result, "open" if cmd.action == "open" else "closed")

    def _show_alarm(self, code: str, cid: str | None) -> None:
        self.status["alarms"] = int(self.status["alarms"]) + 1
        self.status["last_alarm"] = code
        alarm = {"code": code, "at": time.time(), "crossing_id": cid}
        self.status["active_alarms"] = [*self.status["active_alarms"], alarm][-ACTIVE_ALARMS:]

    def _sequence_done(self) -> None:
        """Every device acknowledged the whole sequence: alarms raised before it began are no longer active."""
        kept = [a for a in self.status["active_alarms"] if a["at"] >= self._sequence_started]
        if len(kept) != len(self.status["active_alarms"]):
            self.status["active_alarms"] = kept

    def _alarm(self, code: str, cid: str | None, detail: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        self.audit.write("alarm", CONTROLLER, "alarm", self._seq, cid, code, detail, state=state)
        self._show_alarm(code, cid)
        log.warning("lane %s: actuator ALARM %s (barrier being driven closed)", self.lane_id, code)

    def _fault(self, code: str, cid: str | None, detail: dict[str, Any], fleet_id: str | None = None) -> None:
        """Alarm, then barrier closed, light red, board 'fault', IGV held: every step tried whatever failed."""
        self._alarm(code, cid, detail, state={"state": "fault"})
        fleet_id = fleet_id or self._open_fleet
        self._open_for = self._open_fleet = None
        self._pass_deadline = None
        self._safe_close(cid, code, fleet_id=fleet_id, board="fault")

    def _safe_close(self, cid: str | None, why: str, fleet_id: str | None = None, board: str = "wait") -> None:
        closed = self._try(self.barrier, "close", cid, {"why": why})
        self._try(self.signal, "red", cid)
        self._try(self.board, board, cid)
        if fleet_id is not None:
            self._try(self.fleet, "hold", cid, {"fleet_id": fleet_id})
        if closed:
            self.audit.set_state(state="idle", crossing_id=None, fleet_id=None)
            self._set_status("idle" if why == "startup" else "idle_after_alarm")
        else:
            self.audit.set_state(state="fault")
            self.audit.write("alarm", CONTROLLER, "alarm", self._seq, cid, "close_failed", {"after": why})
            self._show_alarm("close_failed", cid)
            log.error("lane %s: the barrier could not be confirmed closed: staff must check it", self.lane_id)
            self._set_status("fault")

    def _try(self, actuator: Actuator | None, action: str, cid: str | None, args: dict[str, Any] | None = None) -> bool:
        if actuator is None:
            return True
        try:
            self._cmd(actuator, action, cid, args)
            return True
        except ActuatorFault:
            return False  # audited by _cmd

    def _set_status(self, state: str) -> None:
        self.status["state"] = state
        self.status["open_for"] = self._open_for

    # --- loop detectors ----------------------------------------------------------------------------------------

    def _watch_loops(self) -> None:
        assert self.loops is not None
        last: dict[str, bool] = {}
        failing = False
        while not self._stop.wait(max(self.loops.cfg.poll_s, LOOP_RETRY_S) if failing else self.loops.cfg.poll_s):
            try:
                now = self.loops.poll()
            except ActuatorFault as f:
                if not failing:
                    self._q.put(("loop_fault", f.code, str(f)[:500]))
                failing = True
                continue
            failing = False
            for name, occupied in now.items():
                if last.get(name) != occupied:
                    self._q.put(("loop", name, occupied))
            last = now
