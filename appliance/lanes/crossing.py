"""A *crossing*: everything the lane established about one passage of one vehicle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.reads import ContainerRead, FleetIdRead, Observation, PlateRead, SealRead


@dataclass(frozen=True)
class FieldResult:
    """The value a lane settled on for one field, with how it got there."""

    value: str
    confidence: float
    votes: int
    evidence_sha256: str | None = None
    # "read": frames read this value; "consensus": no frame verified it, but the frames'
    # check-digit-valid candidates agreed on it (containers only).
    method: str = "read"


@dataclass(frozen=True)
class SealState:
    """Seal presence and serial after voting across frames."""

    present: bool | None  # None: the seal area was never seen clearly enough to say
    serial: FieldResult | None


@dataclass(frozen=True)
class Crossing:
    """One vehicle's passage through the lane, joined across sources and frames."""

    id: str
    lane_id: str
    started_at: float
    ended_at: float
    tractor_plate: FieldResult | None = None
    trailer_plate: FieldResult | None = None
    fleet_id: FieldResult | None = None
    containers: tuple[FieldResult, ...] = ()
    container_candidates: tuple[str, ...] = ()
    size_types: tuple[str, ...] = ()
    seal: SealState = field(default_factory=lambda: SealState(None, None))
    declarations: tuple[str, ...] = ()
    observations: tuple[Observation, ...] = ()

    @property
    def models(self) -> tuple[str, ...]:
        """Sorted distinct ``task/name@version`` of the models that made the crossing's reads."""
        return tuple(sorted({m for obs in self.observations for m in obs.models}))

    def summary(self) -> dict[str, Any]:
        """JSON-friendly view of the settled fields (no raw observations)."""

        def fr(value: FieldResult | None) -> dict[str, Any] | None:
            if value is None:
                return None
            return {"value": value.value, "confidence": round(value.confidence, 3), "votes": value.votes,
                    "evidence": value.evidence_sha256, "method": value.method}

        return {
            "tractor_plate": fr(self.tractor_plate),
            "trailer_plate": fr(self.trailer_plate),
            "fleet_id": fr(self.fleet_id),
            "containers": [fr(c) for c in self.containers],
            "container_candidates": list(self.container_candidates),
            "size_types": list(self.size_types),
            "seal": {"present": self.seal.present, "serial": fr(self.seal.serial)},
            "declarations": list(self.declarations),
            "models": list(self.models),
        }


def read_kind(read: object) -> str:
    """Short name of a read's kind, as stored in the observations table."""
    if isinstance(read, PlateRead):
        return "plate"
    if isinstance(read, ContainerRead):
        return "container"
    if isinstance(read, SealRead):
        return "seal"
    if isinstance(read, FleetIdRead):
        return "fleet_id"
    return type(read).__name__.removesuffix("Read").lower()
