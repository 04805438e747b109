"""A lane's state machine: open a crossing when a vehicle moves in view, collect reads from all
sources, close it when the lane has been still for a while, and vote the reads into one answer
per field.

Timing comes from frame timestamps, never from the wall clock, so replaying files gives the same
crossings as the live lane did.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from appliance.config import AssemblyConfig
from appliance.lanes.crossing import Crossing, FieldResult, SealState
from appliance.reads import (
    ContainerRead,
    DeclarationRead,
    FleetIdRead,
    Observation,
    PlateRead,
    SealRead,
)

log = logging.getLogger(__name__)

# Reads from a scanner that arrive this long before any motion still join the next crossing.
PENDING_WINDOW_S = 10.0


@dataclass
class _Open:
    started_at: float
    last_motion: float
    observations: list[tuple[str, Observation]] = field(default_factory=list)  # (role, obs)


@dataclass(frozen=True)
class Vote:
    value: str
    weight: float
    votes: int
    best: Observation


def vote(observations: Iterable[tuple[str, float, Observation]]) -> list[Vote]:
    """Group (value, confidence, observation) by value; heaviest (sum of confidences) first."""
    weight: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    best: dict[str, tuple[float, Observation]] = {}
    for value, confidence, obs in observations:
        weight[value] += confidence
        count[value] += 1
        if value not in best or confidence > best[value][0]:
            best[value] = (confidence, obs)
    ranked = sorted(weight, key=lambda v: (-weight[v], -count[v], v))
    return [Vote(v, weight[v], count[v], best[v][1]) for v in ranked]


def _settle(votes: list[Vote]) -> FieldResult | None:
    if not votes:
        return None
    top = votes[0]
    total = sum(v.weight for v in votes)
    best_conf = _confidence(top.best)
    confidence = best_conf * (top.weight / total if total > 0 else 0.0)
    return FieldResult(top.value, round(min(1.0, confidence), 4), top.votes, top.best.evidence_sha256)


def _confidence(obs: Observation) -> float:
    return float(getattr(obs.read, "confidence", 1.0))


# Unverified container reads settle on their top candidate only when this many frames agree
# and nearly all of them do: the check digit holds on it and independent frames concur.
CONSENSUS_MIN_FRAMES = 3
CONSENSUS_MIN_SHARE = 0.75


def container_consensus(unverified: list[Observation]) -> FieldResult | None:
    """The top candidate that the unverified container reads of several frames agree on."""
    tops = vote((o.read.number, 1.0, o) for o in unverified if isinstance(o.read, ContainerRead))
    if not tops:
        return None
    top, total = tops[0], sum(v.votes for v in tops)
    share = top.votes / total
    if top.votes < CONSENSUS_MIN_FRAMES or share < CONSENSUS_MIN_SHARE:
        return None
    confidence = min(0.9, 0.5 + 0.1 * top.votes) * share
    return FieldResult(top.value, round(confidence, 4), top.votes, top.best.evidence_sha256, "consensus")


# A value the open crossing has "settled": this many frames read it at this confidence, and it
# holds this share of its kind's reads from the same camera role. Readers skip their costly
# second looks at text that already reads as a settled value (see ``LaneAssembler.settled``).
SETTLED_MIN_VOTES = 3
SETTLED_MIN_CONFIDENCE = 0.85
SETTLED_MIN_SHARE = 0.75


@dataclass(frozen=True)
class Settled:
    """Values the open crossing already agrees on, per kind of read."""

    plates: frozenset[str] = frozenset()
    containers: frozenset[str] = frozenset()
    containers_seen: frozenset[str] = frozenset()  # verified at least once in this passage


def _settled_values(values: list[tuple[str, float]]) -> frozenset[str]:
    strong = Counter(v for v, confidence in values if confidence >= SETTLED_MIN_CONFIDENCE)
    return frozenset(v for v, n in strong.items() if n >= SETTLED_MIN_VOTES and n >= SETTLED_MIN_SHARE * len(values))


class LaneAssembler:
    """Turns a time-ordered stream of motion events and reads into closed crossings."""

    def __init__(self, lane_id: str, config: AssemblyConfig, camera_sources: Iterable[str]):
        self.lane_id = lane_id
        self.config = config
        self.camera_sources = set(camera_sources)
        self._open: _Open | None = None
        self._pending: list[tuple[str, Observation]] = []
        self.closed_count = 0

    @property
    def is_open(self) -> bool:
        return self._open is not None

    def on_motion(self, source_id: str, ts: float, moving: bool) -> list[Crossing]:
        """A camera frame at ``ts``; ``moving`` from the motion gate. Returns crossings it closed."""
        closed = self.tick(ts)
        if moving and source_id in self.camera_sources:
            if self._open is None:
                self._open = _Open(started_at=ts, last_motion=ts)
                self._adopt_pending(ts)
            self._open.last_motion = max(self._open.last_motion, ts)
        return closed

    def add(self, role: str, obs: Observation) -> None:
        """A read made on a frame of a source with ``role``."""
        if self._open is None:
            self._pending.append((role, obs))
            return
        self._open.observations.append((role, obs))

    def settled(self, role: str) -> Settled:
        """What the open crossing has settled from ``role``'s frames (nothing when none is open)."""
        if self._open is None:
            return Settled()
        plates = [(o.read.text, o.read.confidence) for r, o in self._open.observations
                  if r == role and isinstance(o.read, PlateRead)]
        containers = [(o.read.number, o.read.confidence) for r, o in self._open.observations
                      if r == role and isinstance(o.read, ContainerRead) and o.read.verified]
        return Settled(_settled_values(plates), _settled_values(containers), frozenset(n for n, _ in containers))

    def _adopt_pending(self, ts: float) -> None:
        assert self._open is not None
        self._open.observations += [(r, o) for r, o in self._pending if ts - o.ts <= PENDING_WINDOW_S]
        self._pending.clear()

    def tick(self, ts: float) -> list[Crossing]:
        """Close the open crossing if the lane has been still long enough (or too long busy)."""
        self._pending = [p for p in self._pending if ts - p[1].ts <= PENDING_WINDOW_S]
        current = self._open
        if current is None:
            return []
        idle = ts - current.last_motion > self.config.close_after_idle_s
        too_long = ts - current.started_at > self.config.max_crossing_s
        if not (idle or too_long):
            return []
        if too_long and not idle:
            log.warning("lane %s: crossing open for over %.0f s, closing it", self.lane_id, self.config.max_crossing_s)
        return [self.close(ts)]

    def flush(self) -> list[Crossing]:
        """Close whatever is open (end of stream or shutdown)."""
        if self._open is None:
            return []
        return [self.close(self._open.last_motion)]

    def close(self, ts: float) -> Crossing:
        current = self._open
        assert current is not None
        self._open = None
        self.closed_count += 1
        return self.build(current, min(ts, current.last_motion + self.config.close_after_idle_s))

    def build(self, current: _Open, ended_at: float) -> Crossing:
        obs = current.observations
        plates_front = [(o.read.text, o.read.confidence, o) for r, o in obs
                        if r == "front" and isinstance(o.read, PlateRead)]
        plates_rear = [(o.read.text, o.read.confidence, o) for r, o in obs
                       if r != "front" and isinstance(o.read, PlateRead)]
        fleet = [(o.read.text, o.read.confidence, o) for _, o in obs if isinstance(o.read, FleetIdRead)]
        container_votes = vote((o.read.number, o.read.confidence, o) for _, o in obs
                               if isinstance(o.read, ContainerRead) and o.read.verified)
        containers = []
        if container_votes:
            top = container_votes[0]
            containers.append(top)
            # A second container (two 20' boxes) must be seen about as often as the first.
            containers += [v for v in container_votes[1:] if v.votes >= 3 and v.weight >= 0.8 * top.weight]
        candidates: list[str] = []
        consensus: FieldResult | None = None
        if not containers:
            unverified = [o for _, o in obs if isinstance(o.read, ContainerRead) and not o.read.verified]
            for o in unverified:
                assert isinstance(o.read, ContainerRead)
                candidates += [c for c in o.read.candidates if c not in candidates]
            consensus = container_consensus(unverified)
        size_types = vote((o.read.size_type, o.read.confidence, o) for _, o in obs
                          if isinstance(o.read, ContainerRead) and o.read.verified and o.read.size_type)
        seals = [o for _, o in obs if isinstance(o.read, SealRead)]
        serial_votes = vote((o.read.serial, o.read.confidence, o) for o in seals
                            if isinstance(o.read, SealRead) and o.read.serial)
        seal_present: bool | None
        if serial_votes:
            seal_present = True
        elif (sum(1 for o in seals if isinstance(o.read, SealRead) and not o.read.present) >= 2
              and sum(1 for o in seals if isinstance(o.read, SealRead) and o.read.present) < 2):
            # Missing when two frames with the doors in view showed no seal, and fewer than two
            # showed something seal-like but unreadable (one such frame can be stray text).
            seal_present = False
        else:
            seal_present = None
        declarations: list[str] = []
        for _, o in obs:
            if isinstance(o.read, DeclarationRead) and o.read.number not in declarations:
                declarations.append(o.read.number)
        return Crossing(
            id=f"{self.lane_id}-{int(current.started_at * 1000)}",
            lane_id=self.lane_id,
            started_at=current.started_at,
            ended_at=ended_at,
            tractor_plate=_settle(vote(plates_front)),
            trailer_plate=_settle(vote(plates_rear)),
            fleet_id=_settle(vote(fleet)),
            containers=tuple(r for r in (_settle([v, *[w for w in container_votes if w is not v]])
                                         for v in containers) if r is not None) or
            ((consensus,) if consensus else ()),
            container_candidates=tuple(candidates[:5]),
            size_types=tuple(v.value for v in size_types[:1]),
            seal=SealState(seal_present, _settle(serial_votes)),
            declarations=tuple(declarations),
            observations=tuple(o for _, o in obs),
        )
