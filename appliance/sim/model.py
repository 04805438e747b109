"""What the simulator plans before it renders: plates, containers, seals, vehicles.

These records are the single source of the ground truth (``truth.json``) and of what the
renderers draw, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Country = Literal["VN", "CN"]
Layout = Literal["one_line", "two_line"]
Colour = Literal["white", "yellow", "blue", "red", "green"]
PlateStyle = Literal["standard", "trailer", "nev_small", "nev_large"]
Light = Literal["day", "night"]
Weather = Literal["clear", "rain"]
Body = Literal["tractor", "box", "igv"]
Camera = Literal["front", "rear"]
Symbology = Literal["Code128", "QRCode"]
MismatchKind = Literal["container_number", "seal_number", "seal_missing", "plate", "undeclared"]

MISMATCH_KINDS: tuple[MismatchKind, ...] = (
    "container_number",
    "seal_number",
    "seal_missing",
    "plate",
    "undeclared",
)
CAMERAS: tuple[Camera, ...] = ("front", "rear")


@dataclass(frozen=True)
class Plate:
    """A licence plate as printed: canonical text plus how it looks."""

    text: str
    country: Country
    layout: Layout
    colour: Colour
    style: PlateStyle = "standard"

    def to_truth(self) -> dict[str, Any]:
        return {"text": self.text, "country": self.country, "layout": self.layout, "colour": self.colour}


@dataclass(frozen=True)
class Container:
    """One container on the vehicle: ISO 6346 number (with check digit) and size/type code."""

    number: str
    size_type: str

    def to_truth(self) -> dict[str, Any]:
        return {"number": self.number, "size_type": self.size_type}


@dataclass(frozen=True)
class Seal:
    """A seal on the doors. ``present`` False: the vehicle carries none (serial is None)."""

    serial: str | None
    present: bool
    symbology: Symbology | None

    def to_truth(self) -> dict[str, Any]:
        return {"serial": self.serial, "present": self.present, "symbology": self.symbology}


@dataclass(frozen=True)
class Conditions:
    """Imaging conditions of one passage.

    ``blur_px`` is the motion-blur kernel length in output pixels; ``occlusion`` the share
    of the vehicle face hidden by a bar (0 when none).
    """

    light: Light = "day"
    weather: Weather = "clear"
    blur_px: int = 0
    dirt: bool = False
    occlusion: float = 0.0

    def to_truth(self) -> dict[str, Any]:
        return {
            "light": self.light,
            "weather": self.weather,
            "blur_px": self.blur_px,
            "dirt": self.dirt,
            "occlusion": round(self.occlusion, 3),
        }


@dataclass(frozen=True)
class Look:
    """Render-only choices (colours, placement), drawn once per vehicle from its seed."""

    seed: int
    cab_colour: tuple[int, int, int] = (230, 230, 230)  # BGR
    container_colour: tuple[int, int, int] = (40, 60, 160)  # BGR
    lateral: float = 0.0  # horizontal offset of the lane centre, share of the frame width
    yaw: float = 0.0  # keystone: relative height difference of the right edge vs the left
    roll_deg: float = 0.0


@dataclass
class Vehicle:
    """One passage through the lane, with everything the truth and the renderers need."""

    id: str
    body: Body
    country: Country | None
    tractor_plate: Plate | None
    trailer_plate: Plate | None
    rear_plate: Plate | None  # what the rear camera shows (trailer plate, or a box truck's own)
    fleet_id: str | None
    containers: list[Container]
    seals: list[Seal]
    declaration: str | None
    declaration_payload: str | None
    tax_code: str | None
    conditions: Conditions
    look: Look
    mismatches: list[MismatchKind] = field(default_factory=list)
    enter_frame: int = 0
    exit_frame: int = 0
    t_enter: float = 0.0
    t_exit: float = 0.0
    kiosk_ms: int | None = None

    @property
    def kind(self) -> Literal["truck", "igv"]:
        return "igv" if self.body == "igv" else "truck"

    @property
    def expected_verdict(self) -> Literal["CLEAR", "HOLD"]:
        return "HOLD" if self.mismatches else "CLEAR"

    @property
    def frames(self) -> int:
        return self.exit_frame - self.enter_frame + 1

    def to_truth(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "country": self.country,
            "t_enter": round(self.t_enter, 3),
            "t_exit": round(self.t_exit, 3),
            "tractor_plate": self.tractor_plate.to_truth() if self.tractor_plate else None,
            "trailer_plate": self.trailer_plate.to_truth() if self.trailer_plate else None,
            "fleet_id": self.fleet_id,
            "containers": [c.to_truth() for c in self.containers],
            "seals": [s.to_truth() for s in self.seals],
            "declaration": self.declaration,
            "declaration_payload": self.declaration_payload,
            "conditions": self.conditions.to_truth(),
            "mismatches": list(self.mismatches),
            "expected_verdict": self.expected_verdict,
        }
