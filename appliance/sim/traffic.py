"""The lane timeline: which vehicles come, when, in what conditions, and what the manifest
gets wrong about them.

Everything here is drawn from ``random.Random`` instances seeded from the run seed, so
``plan_lane`` returns the same plan (and the same ``truth.json``) for the same arguments.

Vehicle mix: container tractors (VN or CN registered, trailer usually from the same
country), ~8 % box trucks (no container, the rear shows the truck's own plate) and ~10 %
driverless IGVs (no plate, a painted fleet ID, no kiosk declaration).

Light and weather come in spells, as over a real shift: the night passages form one block
(wrapping round the run) and rain follows a Markov chain. Where day turns to night or
back the lane stays empty ``LIGHT_CHANGE_GAP_S`` longer and the empty-lane frames fade
slowly between the two looks, slow enough for a background-model motion gate to follow.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import SimulationError
from appliance.sim import identities as ids
from appliance.sim.model import (
    MISMATCH_KINDS,
    Conditions,
    Container,
    Light,
    Look,
    MismatchKind,
    Plate,
    Seal,
    Vehicle,
    Weather,
)

log = logging.getLogger(__name__)

IGV_SHARE = 0.10
BOX_SHARE = 0.08
CN_SHARE = 0.45
RAIN_SHARE = 0.2
DIRT_SHARE = 0.15
OCCLUSION_SHARE = 0.1
LEAD_IN_S = 1.0
TAIL_S = 1.0
DWELL_S = (1.8, 2.4)  # seconds a vehicle is in view
MIN_GAP_S = 0.4  # even at high rates the lane is empty for a moment between vehicles
LIGHT_CHANGE_GAP_S = 90.0  # extra empty lane while day turns to night (or back), see writer._idle_look
DEFAULT_START_TIME = 1795000000.0

CAB_COLOURS: tuple[tuple[int, int, int], ...] = (
    (235, 235, 235), (40, 40, 190), (160, 90, 30), (190, 190, 190), (60, 130, 40),
    (30, 190, 230), (30, 120, 230), (90, 90, 95),
)  # fmt: skip
CONTAINER_COLOURS: tuple[tuple[int, int, int], ...] = (
    (40, 50, 140), (140, 80, 20), (60, 110, 40), (150, 150, 150), (20, 110, 220),
    (100, 50, 20), (40, 30, 110), (35, 90, 160), (70, 70, 70),
)  # fmt: skip
IGV_COLOURS: tuple[tuple[int, int, int], ...] = ((20, 190, 240), (235, 235, 235), (120, 60, 20))

GOODS: tuple[tuple[str, str], ...] = (
    ("fresh dragon fruit", "081090"),
    ("fresh durian", "081060"),
    ("fresh lychee", "081090"),
    ("fresh bananas", "080390"),
    ("dried cassava chips", "071410"),
    ("frozen shrimp", "030617"),
    ("frozen pangasius fillets", "030462"),
    ("natural rubber", "400122"),
    ("integrated circuits", "854231"),
    ("printed circuit assemblies", "847330"),
    ("urea fertiliser", "310210"),
    ("metallurgical coke", "270400"),
    ("caustic soda", "281511"),
    ("e-commerce parcels", "482110"),
)


@dataclass
class LanePlan:
    """Everything decided before rendering: vehicles on a frame grid, and the manifest."""

    seed: int
    fps: float
    start_time: float
    width: int
    height: int
    frames: int
    vehicles: list[Vehicle]
    manifest: dict[str, Any]
    gate: str = "VNHNG"
    extras: dict[str, Any] = field(default_factory=dict)

    def truth(self) -> dict[str, Any]:
        """The ``truth.json`` document (see docs/SIMULATOR.md)."""
        return {
            "seed": self.seed,
            "fps": self.fps,
            "start_time": self.start_time,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "vehicles": [v.to_truth() for v in self.vehicles],
        }

    def frame_time(self, index: int) -> float:
        return self.start_time + index / self.fps


def _rng(seed: int, purpose: str) -> random.Random:
    return random.Random(f"{seed}:{purpose}")


def _vn_tractor_plate(rng: random.Random, locality: str) -> Plate:
    text = ids.vn_plate(rng, locality=locality)
    layout = "one_line" if rng.random() < 0.8 else "two_line"
    colour = "yellow" if rng.random() < 0.75 else "white"
    return Plate(text, "VN", layout, colour)  # type: ignore[arg-type]


def _cn_tractor_plate(rng: random.Random, province: str) -> Plate:
    roll = rng.random()
    if roll < 0.12:
        return Plate(ids.cn_nev_plate(rng, large=True, province=province), "CN", "one_line", "green", "nev_large")
    if roll < 0.18:
        return Plate(ids.cn_nev_plate(rng, large=False, province=province), "CN", "one_line", "green", "nev_small")
    if roll < 0.28:
        return Plate(ids.cn_plate(rng, province), "CN", "one_line", "blue")
    return Plate(ids.cn_plate(rng, province), "CN", "one_line", "yellow")


def _trailer_plate(rng: random.Random, country: str, locality: str, province: str) -> Plate:
    if country == "VN":
        colour = "yellow" if rng.random() < 0.7 else "white"
        return Plate(ids.vn_trailer_plate(rng, locality), "VN", "two_line", colour, "trailer")  # type: ignore[arg-type]
    return Plate(ids.cn_trailer_plate(rng, province), "CN", "two_line", "yellow", "trailer")


def _box_rear_plate(front: Plate) -> Plate:
    """The plate on a box truck's tail: same text, 2-line (CN yellow large-vehicle plate)."""
    if front.country == "CN":
        colour = front.colour if front.style.startswith("nev") else "yellow"
        style = front.style if front.style.startswith("nev") else "standard"
        layout = "one_line" if style.startswith("nev") else "two_line"
        return Plate(front.text, "CN", layout, colour, style)  # type: ignore[arg-type]
    return Plate(front.text, "VN", "two_line", front.colour, "standard")


def _conditions(rng: random.Random, light: Light, weather: Weather) -> Conditions:
    blur = rng.choices((0, 2, 3, 4, 6), weights=(0.5, 0.18, 0.14, 0.1, 0.08))[0]
    dirt = rng.random() < DIRT_SHARE
    occlusion = round(rng.uniform(0.04, 0.12), 3) if rng.random() < OCCLUSION_SHARE else 0.0
    return Conditions(light, weather, blur, dirt, occlusion)


def _look(rng: random.Random, body: str) -> Look:
    palette = IGV_COLOURS if body == "igv" else CAB_COLOURS
    return Look(
        seed=rng.randrange(2**31),
        cab_colour=rng.choice(palette),
        container_colour=rng.choice(CONTAINER_COLOURS),
        lateral=rng.uniform(-0.05, 0.05),
        yaw=rng.uniform(-0.06, 0.06),
        roll_deg=rng.uniform(-1.5, 1.5),
    )


def make_vehicle(
    rng: random.Random, index: int, when: float, light: Light = "day", weather: Weather = "clear"
) -> Vehicle:
    """One vehicle with its identities, cargo, seal, declaration and conditions (no mismatch yet)."""
    roll = rng.random()
    body = "igv" if roll < IGV_SHARE else "box" if roll < IGV_SHARE + BOX_SHARE else "tractor"
    look = _look(rng, body)
    conditions = _conditions(rng, light, weather)
    vid = f"V{index + 1:04d}"
    symbology = "QRCode" if rng.random() < 0.6 else "Code128"
    seal = Seal(ids.seal_serial(rng), True, symbology)  # type: ignore[arg-type]
    if body == "igv":
        forty = rng.random() < 0.3
        container = Container(ids.container_number(rng), ids.size_type(rng, forty))
        return Vehicle(
            id=vid, body="igv", country=None, tractor_plate=None, trailer_plate=None, rear_plate=None,
            fleet_id=ids.fleet_id(rng), containers=[container], seals=[seal], declaration=None,
            declaration_payload=None, tax_code=None, conditions=conditions, look=look,
        )  # fmt: skip
    country = "CN" if rng.random() < CN_SHARE else "VN"
    locality = ids.vn_locality(rng)
    province = ids.cn_province(rng)
    tractor = _vn_tractor_plate(rng, locality) if country == "VN" else _cn_tractor_plate(rng, province)
    declaration = ids.declaration_number(rng)
    tax = ids.tax_code(rng)
    payload = ids.declaration_payload(rng, declaration, tax, when)
    if body == "box":
        return Vehicle(
            id=vid, body="box", country=country, tractor_plate=tractor, trailer_plate=None,  # type: ignore[arg-type]
            rear_plate=_box_rear_plate(tractor), fleet_id=None, containers=[], seals=[seal],
            declaration=declaration, declaration_payload=payload, tax_code=tax, conditions=conditions, look=look,
        )  # fmt: skip
    trailer_country = country if rng.random() < 0.9 else ("VN" if country == "CN" else "CN")
    trailer = _trailer_plate(rng, trailer_country, locality, province)
    forty = rng.random() < 0.6
    container = Container(ids.container_number(rng), ids.size_type(rng, forty))
    return Vehicle(
        id=vid, body="tractor", country=country, tractor_plate=tractor, trailer_plate=trailer,  # type: ignore[arg-type]
        rear_plate=trailer, fleet_id=None, containers=[container], seals=[seal], declaration=declaration,
        declaration_payload=payload, tax_code=tax, conditions=conditions, look=look,
    )  # fmt: skip


def light_sequence(rng: random.Random, n: int, night_share: float) -> list[Light]:
    """Day or night per vehicle: ``round(night_share * n)`` night passages in one spell.

    The spell starts at a random vehicle and wraps around (night at both ends of the run
    reads as evening ... morning), so the light changes at most twice in a run, as it
    would over a real shift, instead of flipping between consecutive trucks.
    """
    nights = round(night_share * n)
    start = rng.randrange(n)
    night = {(start + k) % n for k in range(nights)}
    return ["night" if i in night else "day" for i in range(n)]


def weather_sequence(rng: random.Random, n: int, share: float = RAIN_SHARE, mean_spell: float = 4.0) -> list[Weather]:
    """Clear or rain per vehicle: a two-state Markov chain (rain spells of ``mean_spell``
    vehicles on average, ``share`` of the time in the long run)."""
    stop = 1.0 / mean_spell
    start = stop * share / max(1e-9, 1.0 - share)
    raining = rng.random() < share
    out: list[Weather] = []
    for _ in range(n):
        out.append("rain" if raining else "clear")
        raining = rng.random() >= stop if raining else rng.random() < start
    return out


def applicable_mismatches(vehicle: Vehicle) -> list[MismatchKind]:
    """The mismatch kinds that make sense for ``vehicle``."""
    kinds: list[MismatchKind] = []
    for kind in MISMATCH_KINDS:
        if kind == "container_number" and not vehicle.containers:
            continue
        if kind in ("seal_number", "seal_missing") and not vehicle.seals:
            continue
        if kind == "plate" and vehicle.tractor_plate is None:
            continue
        if kind == "undeclared" and vehicle.declaration is None:
            continue
        kinds.append(kind)
    return kinds


def _manifest_entry(vehicle: Vehicle, rng: random.Random, declared_seals: list[str]) -> dict[str, Any] | None:
    """The manifest line for ``vehicle``, carrying its deliberate mismatch if any."""
    kinds = set(vehicle.mismatches)
    if "undeclared" in kinds:
        return None
    goods, hs = rng.choice(GOODS)
    plate = vehicle.tractor_plate.text if vehicle.tractor_plate else None
    if "plate" in kinds and plate is not None:
        plate = ids.other_plate(rng, plate)
    containers = [c.to_truth() for c in vehicle.containers]
    if "container_number" in kinds and containers:
        containers[0]["number"] = ids.other_container_number(rng, containers[0]["number"])
    seals = list(declared_seals)
    if "seal_number" in kinds and seals:
        seals[0] = ids.other_seal_serial(rng, seals[0])
    return {
        # IGVs present no kiosk declaration; central still files one for the cargo.
        "declaration": vehicle.declaration or ids.declaration_number(rng),
        "tractor_plate": plate,
        "trailer_plate": vehicle.trailer_plate.text if vehicle.trailer_plate else None,
        "fleet_id": vehicle.fleet_id,
        "containers": containers,
        "seals": seals,
        "goods": goods,
        "hs_code": hs,
    }


def _arrival_gaps(rng: random.Random, n: int, gap_s: float | None, rate_per_day: float | None) -> list[float]:
    """Idle time before each vehicle, in seconds (after the previous one has left)."""
    if rate_per_day is not None:
        if not math.isfinite(rate_per_day) or rate_per_day <= 0:
            raise SimulationError(f"rate_per_day must be > 0, got {rate_per_day}")
        mean = 86400.0 / rate_per_day
        return [rng.expovariate(1.0 / mean) for _ in range(n)]
    if gap_s is None:
        raise SimulationError("give either gap_s or rate_per_day")
    if not math.isfinite(gap_s) or gap_s < 0:
        raise SimulationError(f"gap_s must be >= 0, got {gap_s}")
    return [gap_s] * n


def plan_lane(
    vehicles: int,
    seed: int,
    *,
    fps: float = 5.0,
    width: int = 1920,
    height: int = 1080,
    gap_s: float | None = 3.0,
    rate_per_day: float | None = None,
    night_share: float = 0.3,
    mismatch_share: float = 0.2,
    start_time: float = DEFAULT_START_TIME,
    gate: str = "VNHNG",
) -> LanePlan:
    """Plan a lane of ``vehicles`` passages; ``rate_per_day`` (Poisson arrivals) wins over ``gap_s``.

    With ``rate_per_day`` the headway between arrivals is exponential with mean
    86400 / rate seconds (3500/day: 24.7 s), never less than a vehicle's time in view plus
    a short empty moment. With ``gap_s`` the lane stays empty ``gap_s`` seconds between
    one vehicle leaving and the next entering.
    """
    if vehicles < 1:
        raise SimulationError(f"vehicles must be >= 1, got {vehicles}")
    if not math.isfinite(fps) or fps <= 0:
        raise SimulationError(f"fps must be > 0, got {fps}")
    if width < 64 or height < 64:
        raise SimulationError(f"frame size {width}x{height} is too small (>= 64x64)")
    for name, share in (("night_share", night_share), ("mismatch_share", mismatch_share)):
        if not 0.0 <= share <= 1.0:
            raise SimulationError(f"{name} must be within 0..1, got {share}")
    rng_v, rng_t, rng_m = _rng(seed, "vehicles"), _rng(seed, "timeline"), _rng(seed, "mismatch")
    rng_k, rng_f, rng_s = _rng(seed, "kiosk"), _rng(seed, "manifest"), _rng(seed, "sky")
    gaps = _arrival_gaps(rng_t, vehicles, gap_s, rate_per_day)
    lights = light_sequence(rng_s, vehicles, night_share)
    weathers = weather_sequence(rng_s, vehicles)
    poisson = rate_per_day is not None
    frame = round(LEAD_IN_S * fps)
    planned: list[Vehicle] = []
    prev_dwell = 0.0
    for i in range(vehicles):
        dwell = rng_t.uniform(*DWELL_S)
        n_frames = max(6, round(dwell * fps))
        if i:
            # Poisson: the headway runs from the previous entry; fixed: from the previous exit.
            idle = max(MIN_GAP_S, gaps[i] - prev_dwell) if poisson else gaps[i]
            if lights[i] != lights[i - 1]:
                idle += LIGHT_CHANGE_GAP_S  # dusk or dawn: the lane is empty a while
            frame += round(idle * fps)
        prev_dwell = n_frames / fps
        when = start_time + frame / fps
        v = make_vehicle(rng_v, i, when, lights[i], weathers[i])
        v.enter_frame, v.exit_frame = frame, frame + n_frames - 1
        v.t_enter = start_time + v.enter_frame / fps
        v.t_exit = start_time + v.exit_frame / fps
        if v.declaration is not None:
            t_kiosk = v.t_enter + rng_k.uniform(0.25, 0.75) * (v.t_exit - v.t_enter)
            v.kiosk_ms = round(t_kiosk * 1000)
        if rng_m.random() < mismatch_share:
            kinds = applicable_mismatches(v)
            if kinds:
                kind = rng_m.choice(kinds)
                v.mismatches = [kind]
                if kind == "seal_missing":
                    v.seals = [Seal(None, False, None)]
        planned.append(v)
        frame = v.exit_frame + 1
    frames = frame + round(TAIL_S * fps)
    entries = []
    for v, original in zip(planned, _declared_seals(planned, seed), strict=True):
        entry = _manifest_entry(v, rng_f, original)
        if entry is not None:
            entries.append(entry)
    # A few pre-arrival entries for trucks that never show up, as on a real gate.
    for _ in range(vehicles // 20):
        ghost = make_vehicle(rng_f, 9000 + len(entries), start_time)
        if ghost.declaration is not None:
            entry = _manifest_entry(ghost, rng_f, [s.serial for s in ghost.seals if s.serial])
            if entry is not None:
                entries.append(entry)
    rng_f.shuffle(entries)
    manifest = {"gate": gate, "entries": entries}
    log.info("planned %d vehicles over %d frames (%.1f s)", vehicles, frames, frames / fps)
    return LanePlan(seed, fps, start_time, width, height, frames, planned, manifest, gate)


def _declared_seals(vehicles: list[Vehicle], seed: int) -> list[list[str]]:
    """Serials the shipper declared: the real ones, or, for a missing seal, the one that
    should have been there (regenerated from the same seed so it is stable)."""
    rng = _rng(seed, "declared-seals")
    out: list[list[str]] = []
    for v in vehicles:
        present = [s.serial for s in v.seals if s.present and s.serial]
        out.append(present if present else [ids.seal_serial(rng)])
    return out
