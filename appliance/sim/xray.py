"""Synthetic drive-through X-ray cargo scans, rendered by Beer–Lambert physics, with ground truth.

Public API::

    random_spec(rng, goods=None, anomaly=None, *, mismatch=None, containers=None) -> ScanSpec
    render_scan(spec, seed, scale=1.0, *, scanner=None) -> RenderedScan
    make_scanner(rows, seed=1, scanner_id="SIM-XR-01") -> ScannerModel
    calibration_frames(scanner, seed, columns=64) -> {"dark": {"high", "low"}, "air": {"high", "low"}}
    simulate_xray(out_dir, scans, seed, *, scale=1.0, anomaly_share=0.3, mismatch_share=0.2, goods=None,
                  overwrite=False, start_time=..., progress=None) -> XraySimulationResult

A scan follows :mod:`appliance.xray.scan`: rows are detector channels (row 0 at the top, 4.5 m above
the road), columns are scan lines (the vehicle drives through cab first, so column 0 is in front of
the cab). Scene: a cab-over tractor (engine block, gearbox, fuel tank, batteries, wheels and axles),
a skeletal trailer, one 40' or one/two 20' containers (corrugated steel walls, floor cross members,
corner posts and castings, door frame and locking bars; reefers with insulation and a machinery
bay) and a load of one goods class (appliance/sim/xray_goods.py). Threat image projection (TIP)
adds attenuation for ``dense_block``, ``hidden_compartment``, ``weapon`` and ``undeclared_goods``.

The scanner adds per-row gain and dark offset, dead and hot rows, beam-intensity fluctuation per
column, photon (Poisson-like) and read noise, scan-speed jitter (column stretch) and clipping to
16 bits: ``counts = dark_row + (air_row - dark_row) * exp(-att) * beam_col + noise``; a detector
blur (``ScannerModel.psf_sigma_px``) is available but off by default, keeping that formula exact.
Deterministic for a given spec, seed and scale. Layout and truth format: docs/XRAY.md.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.errors import SimulationError
from appliance.sim.identities import cn_plate, container_number, vn_plate
from appliance.sim.xray_goods import (
    GOODS,
    GOODS_CLASSES,
    MATERIALS,
    WEAPONS,
    Grid,
    Layer,
    Region,
    Stack,
    draw_contraband,
    draw_parts,
    goods_params,
    parts_extent,
    plan_units,
    render_stacks,
    transform_parts,
)

log = logging.getLogger(__name__)

__all__ = [
    "ANOMALY_KINDS",
    "GOODS_CLASSES",
    "AnomalySpec",
    "LoadSpec",
    "RenderedScan",
    "ScanSpec",
    "ScannerModel",
    "VehicleSpec",
    "XraySimulationResult",
    "calibration_frames",
    "make_scanner",
    "plan_scene",
    "random_spec",
    "render_scan",
    "simulate_xray",
]

ROW_M = 0.003  # detector pitch at the object (scale 1): 1,500 rows over 4.5 m
COL_M = 0.004  # scan-line pitch at nominal speed (scale 1): a 40' truck is about 4,000 columns
SCENE_HEIGHT_M = 4.5
ENERGIES_KV = (450.0, 160.0)
ANOMALY_KINDS = ("dense_block", "hidden_compartment", "weapon", "undeclared_goods")
MISMATCH_KINDS = ("goods", "quantity")
CONTAINER_LENGTH = {"20": 6.058, "40": 12.192}
PAYLOAD_KG = {"20": 21_700.0, "40": 26_500.0}
GOODS_WEIGHTS = {"fruit": 0.22, "electronics": 0.17, "parcels": 0.14, "seafood": 0.12, "fertiliser": 0.12,
                 "coke": 0.1, "chemicals": 0.13}  # fmt: skip
_TAGS = {"vehicle": 1, "load": 2, "speed": 3, "beam": 4, "noise": 5, "tip": 100}


def _rng(seed: int, tag: str, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFFFFFF, _TAGS[tag] + index])


# ---------------------------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VehicleSpec:
    containers: tuple[str, ...] = ("40",)  # ("40",), ("20",) or ("20", "20")
    high_cube: bool = False
    reefer: bool = False
    margin_front_m: float = 0.3
    margin_rear_m: float = 0.3
    cab_length_m: float = 2.25
    cab_height_m: float = 3.2
    gap_m: float = 0.7  # cab back to container front
    deck_height_m: float = 1.35  # container bottom above the road
    tractor_rear_axles: int = 2
    trailer_axles: int = 3
    rear_overhang_m: float = 0.3
    fuel_tank_m: float = 0.9
    deflector: bool = False


@dataclass(frozen=True)
class LoadSpec:
    goods: str
    variant: str
    fill: float  # share of the free interior length used, from the front
    params: dict[str, float] = field(default_factory=dict)
    layout_seed: int = 0
    front_gap_m: float = 0.0  # free space (or a false wall) before the load in the first container
    floor_raise_m: float = 0.0  # the load stands this high above the floor (a double floor)
    skip_stacks: tuple[int, ...] = ()  # unit positions left out (filled by undeclared goods)


@dataclass(frozen=True)
class AnomalySpec:
    kind: str  # one of ANOMALY_KINDS
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScanSpec:
    vehicle: VehicleSpec
    load: LoadSpec | None
    anomalies: tuple[AnomalySpec, ...] = ()
    declared_goods: str = ""
    declared_quantity: int = 0
    mismatches: tuple[str, ...] = ()
    plate: str = ""
    container_numbers: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScanSpec:
        v = dict(d["vehicle"])
        v["containers"] = tuple(v["containers"])
        load = None
        if d.get("load"):
            ld = dict(d["load"])
            ld["skip_stacks"] = tuple(ld.get("skip_stacks", ()))
            load = LoadSpec(**ld)
        return cls(
            vehicle=VehicleSpec(**v), load=load,
            anomalies=tuple(AnomalySpec(a["kind"], dict(a.get("params", {}))) for a in d.get("anomalies", ())),
            declared_goods=d.get("declared_goods", ""), declared_quantity=int(d.get("declared_quantity", 0)),
            mismatches=tuple(d.get("mismatches", ())), plate=d.get("plate", ""),
            container_numbers=tuple(d.get("container_numbers", ())),
        )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Scene layout (metres, no pixels)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerBox:
    x0: float
    x1: float
    y0: float
    y1: float
    size: str
    reefer: bool
    interior: Region  # the full interior (before gaps)


@dataclass(frozen=True)
class SceneLayout:
    length_m: float
    cab: tuple[float, float, float, float]  # x0, x1, y0, y1
    trailer: tuple[float, float]
    containers: tuple[ContainerBox, ...]
    axles: tuple[tuple[float, int], ...]  # (x, tyres seen in projection)
    regions: tuple[Region, ...]  # free load space per container
    stacks: tuple[Stack, ...]  # every planned unit position (including skipped ones)

    def stack(self, index: int) -> Stack | None:
        for s in self.stacks:
            if s.index == index:
                return s
        return None


def plan_scene(spec: ScanSpec) -> SceneLayout:
    """Where everything is (metres), deterministic from the spec."""
    v = spec.vehicle
    for size in v.containers:
        if size not in CONTAINER_LENGTH:
            raise SimulationError(f"container size must be '20' or '40', got {size!r}")
    if not 1 <= len(v.containers) <= 2:
        raise SimulationError(f"one or two containers per scan, got {len(v.containers)}")
    x_cab0 = v.margin_front_m
    x_cab1 = x_cab0 + v.cab_length_m
    x = x_cab1 + v.gap_m
    boxes: list[ContainerBox] = []
    height = 2.896 if v.high_cube else 2.591
    y0 = v.deck_height_m
    for size in v.containers:
        ln = CONTAINER_LENGTH[size]
        front = 0.06 + (0.45 if v.reefer else 0.0)
        floor = 0.16 + (0.05 if v.reefer else 0.0)
        ceiling = 0.08 + (0.12 if v.reefer else 0.0)
        depth = 2.29 if v.reefer else 2.35
        interior = Region(x + front, x + ln - 0.08, y0 + floor, y0 + height - ceiling, depth, len(boxes))
        boxes.append(ContainerBox(x, x + ln, y0, y0 + height, size, v.reefer, interior))
        x += ln + 0.076
    x_end = boxes[-1].x1
    trailer = (boxes[0].x0 - 0.05, x_end + v.rear_overhang_m)
    length = trailer[1] + v.margin_rear_m
    axles: list[tuple[float, int]] = [(x_cab0 + 1.1, 2)]
    axles += [(boxes[0].x0 + 0.55 + 1.35 * k, 4) for k in range(v.tractor_rear_axles)]
    axles += [(x_end - 1.6 - 1.31 * k, 4) for k in range(v.trailer_axles)]
    regions: list[Region] = []
    stacks: list[Stack] = []
    for i, b in enumerate(boxes):
        r = b.interior
        if i == 0 and spec.load is not None:
            r = Region(r.x0 + spec.load.front_gap_m, r.x1, r.y0 + spec.load.floor_raise_m, r.y1, r.depth, 0)
        regions.append(r)
        if spec.load is not None:
            stacks += plan_units(spec.load.goods, spec.load.variant, r, spec.load.params, spec.load.fill,
                                 spec.load.layout_seed + i, PAYLOAD_KG[b.size], first_index=len(stacks))
    return SceneLayout(length, (x_cab0, x_cab1, 0.3, v.cab_height_m), trailer, tuple(boxes), tuple(axles),
                       tuple(regions), tuple(stacks))


def declared_load(layout: SceneLayout, spec: ScanSpec) -> list[Stack]:
    """The stacks of the load itself (skipped positions removed)."""
    skip = set(spec.load.skip_stacks) if spec.load else set()
    return [s for s in layout.stacks if s.index not in skip]


def real_quantity(spec: ScanSpec, layout: SceneLayout | None = None) -> int:
    layout = layout or plan_scene(spec)
    return sum(s.count for s in declared_load(layout, spec))


# ---------------------------------------------------------------------------------------------
# Random specs
# ---------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return str(items[int(rng.integers(len(items)))])


def random_spec(
    rng: np.random.Generator,
    goods: str | None = None,
    anomaly: str | Sequence[str] | None = None,
    *,
    mismatch: str | None = None,
    containers: tuple[str, ...] | None = None,
) -> ScanSpec:
    """A random truck, load, anomalies and declaration.

    ``goods``: a class of :data:`GOODS_CLASSES`, ``"empty"`` or None (random). ``anomaly``: None
    (none), ``"random"``, a kind of :data:`ANOMALY_KINDS` or a list of kinds. ``mismatch``: None,
    ``"goods"`` (declared class differs) or ``"quantity"`` (declared count off by more than 20 %).
    """
    u = rng.uniform
    if goods is None:
        names = list(GOODS_WEIGHTS)
        w = np.array([GOODS_WEIGHTS[n] for n in names])
        goods = names[int(rng.choice(len(names), p=w / w.sum()))]
    if goods != "empty" and goods not in GOODS:
        raise SimulationError(f"unknown goods class {goods!r}; known: {', '.join(GOODS_CLASSES)}, empty")
    kinds: list[str] = []
    if isinstance(anomaly, str):
        kinds = [_pick(rng, ANOMALY_KINDS) if anomaly == "random" else anomaly]
    elif anomaly is not None:
        kinds = list(anomaly)
    for k in kinds:
        if k not in ANOMALY_KINDS:
            raise SimulationError(f"unknown anomaly {k!r}; known: {', '.join(ANOMALY_KINDS)}")
    if mismatch is not None and mismatch not in MISMATCH_KINDS:
        raise SimulationError(f"unknown mismatch {mismatch!r}; known: {', '.join(MISMATCH_KINDS)}")
    if goods == "empty" and mismatch == "quantity":
        raise SimulationError("an empty container cannot have a quantity mismatch")
    if containers is None:
        roll = rng.random()
        containers = ("40",) if roll < 0.55 else ("20",) if roll < 0.9 else ("20", "20")
    reefer = goods == "seafood" or (goods == "fruit" and rng.random() < 0.5)
    vehicle = VehicleSpec(
        containers=tuple(containers), high_cube=containers == ("40",) and rng.random() < 0.4, reefer=reefer,
        margin_front_m=float(u(0.2, 0.4)), margin_rear_m=float(u(0.2, 0.4)), cab_length_m=float(u(2.05, 2.4)),
        cab_height_m=float(u(2.95, 3.45)), gap_m=float(u(0.5, 0.9)), deck_height_m=float(u(1.25, 1.42)),
        tractor_rear_axles=int(rng.integers(1, 3)), trailer_axles=int(rng.integers(2, 4)),
        rear_overhang_m=float(u(0.2, 0.5)), fuel_tank_m=float(u(0.6, 1.2)), deflector=bool(rng.random() < 0.4),
    )  # fmt: skip
    load: LoadSpec | None = None
    if goods != "empty":
        variant = _pick(rng, GOODS[goods].variants)
        front_gap = float(u(0.05, 0.4)) if rng.random() < 0.3 else 0.0  # dunnage / air bags at the front
        load = LoadSpec(goods, variant, float(u(0.55, 1.0)), goods_params(goods, variant, rng),
                        int(rng.integers(2**31)), front_gap_m=front_gap)
    anomalies: list[AnomalySpec] = []
    skip: list[int] = []
    for kind in kinds:
        params: dict[str, Any] = {"stack": -1, "u": float(u(0.15, 0.85)), "v": float(u(0.15, 0.85))}
        if kind == "dense_block":
            params.update(material=_pick(rng, ("steel", "steel", "lead", "tungsten")), w=float(u(0.08, 0.35)),
                          h=float(u(0.06, 0.3)), cm=float(u(4.0, 20.0)), angle=float(u(-0.6, 0.6)),
                          wrap=bool(rng.random() < 0.5))
        elif kind == "weapon":
            params.update(shape=_pick(rng, ("pistol", "pistol", "rifle")), scale=float(u(0.9, 1.1)),
                          angle=float(u(0, 2 * math.pi)), flip=bool(rng.random() < 0.5), count=int(rng.integers(1, 4)))
        elif kind == "hidden_compartment":
            variant = "false_wall" if rng.random() < 0.5 else "double_floor"
            size = float(u(0.3, 0.8)) if variant == "false_wall" else float(u(0.1, 0.22))
            params.update(variant=variant, size_m=size, seed=int(rng.integers(2**31)))
            if load is not None:
                if variant == "false_wall":
                    load = dataclasses.replace(load, front_gap_m=size + 0.02)
                else:
                    load = dataclasses.replace(load, floor_raise_m=size + 0.02)
        elif kind == "undeclared_goods":
            others = [g for g in GOODS_CLASSES if g != goods]
            other = _pick(rng, others)
            ov = _pick(rng, GOODS[other].variants)
            params.update(goods=other, variant=ov, params=goods_params(other, ov, rng), seed=int(rng.integers(2**31)))
        anomalies.append(AnomalySpec(kind, params))
    spec = ScanSpec(vehicle, load, tuple(anomalies))
    layout = plan_scene(spec)
    # anomalies hidden in the load refer to a unit position, chosen now that the plan is known
    free = [s.index for s in layout.stacks]
    placed: list[AnomalySpec] = []
    for a in anomalies:
        p = dict(a.params)
        if a.kind == "undeclared_goods":
            choices = [i for i in free if i not in skip]
            if len(choices) >= 2:
                p["stack"] = int(choices[int(rng.integers(len(choices)))])
                skip.append(p["stack"])
        elif a.kind in ("dense_block", "weapon") and free:
            p["stack"] = int(free[int(rng.integers(len(free)))])
        placed.append(AnomalySpec(a.kind, p))
    if load is not None and skip:
        load = dataclasses.replace(load, skip_stacks=tuple(skip))
    spec = dataclasses.replace(spec, load=load, anomalies=tuple(placed))
    quantity = real_quantity(spec)
    declared_goods = goods
    declared_qty = quantity
    mismatches: tuple[str, ...] = ()
    if mismatch == "goods":
        declared_goods = _pick(rng, [g for g in GOODS_CLASSES if g != goods])
        mismatches = ("goods",)
    elif mismatch == "quantity" and quantity > 0:
        factor = float(u(0.45, 0.75)) if rng.random() < 0.5 else float(u(1.3, 1.8))
        declared_qty = max(1, round(quantity * factor))
        if abs(declared_qty - quantity) <= 0.2 * quantity:
            declared_qty = math.ceil(quantity * 1.25) + 1
        mismatches = ("quantity",)
    pyrng = random.Random(int(rng.integers(2**63)))
    plate = vn_plate(pyrng) if pyrng.random() < 0.55 else cn_plate(pyrng)
    numbers = tuple(container_number(pyrng) for _ in containers)
    return dataclasses.replace(spec, declared_goods=declared_goods, declared_quantity=int(declared_qty),
                               mismatches=mismatches, plate=plate, container_numbers=numbers)


# ---------------------------------------------------------------------------------------------
# Drawing the vehicle
# ---------------------------------------------------------------------------------------------


def _wheel(layer: Layer, x: float, tyres: int) -> None:
    R, r_rim = 0.52, 0.29
    pt = layer.patch(x - R, x + R, 0.0, 2 * R)
    if pt is None:
        return
    r0, c0, X, Y = pt
    r = np.sqrt((X - x) ** 2 + (Y - R) ** 2)
    rm, hw = (R + r_rim) / 2, (R - r_rim) / 2
    tyre = np.sqrt(np.clip(1 - ((r - rm) / hw) ** 2, 0, None)) * np.float32(tyres * 28.0)
    layer.add(r0, c0, tyre.astype(np.float32), "rubber")
    steel: np.ndarray = ((r >= 0.26) & (r < r_rim)) * np.float32(tyres * 6.0)  # rim barrel
    steel = steel + (r < 0.26) * np.float32(tyres * 1.2)  # wheel disc
    steel = steel + ((r >= 0.14) & (r < 0.2)) * np.float32(20.0)  # brake drums (both sides)
    steel = steel + (r < 0.1) * np.float32(25.0) + (r < 0.06) * np.float32(60.0)  # hub, axle across the truck
    layer.add(r0, c0, steel.astype(np.float32), "steel")


def _draw_tractor(layer: Layer, spec: ScanSpec, lay: SceneLayout, rng: np.random.Generator) -> None:
    v = spec.vehicle
    x0, x1, _, top = lay.cab
    # cab shell: two side panels over the silhouette, its edges seen edge-on, windows
    shell = [(x0, 0.75), (x0, top - 0.3), (x0 + 0.22, top), (x1, top), (x1, 1.15), (x0 + 1.6, 1.15), (x0 + 1.5, 0.75)]
    layer.add_poly(shell, "steel", 0.25)
    layer.add_poly([*shell, shell[0]], "steel", 12.0, line_m=0.006)
    layer.add_poly([(x0 + 0.06, 2.05), (x0 + 0.06, top - 0.35), (x0 + 0.24, top - 0.1), (x0 + 0.9, top - 0.1),
                    (x0 + 0.9, 2.05)], "glass", 1.0)  # fmt: skip
    layer.add_box(x0 + 0.05, x1 - 0.05, 1.15, 1.2, "steel", 30.0)  # cab floor
    layer.add_box(x0 + 0.1, x0 + 0.55, 1.75, 2.0, "plastic", 60.0)  # dashboard
    wheel = [(x0 + 0.45 + 0.17 * math.cos(a), 2.05 + 0.07 * math.sin(a)) for a in np.linspace(0, 2 * math.pi, 24)]
    layer.add_poly(wheel, "plastic", 3.0, line_m=0.025)  # steering wheel
    for sx in (x0 + 0.75, x0 + 1.0):  # seats (both sides overlap)
        layer.add_box(sx, sx + 0.45, 1.35, 1.5, "organic", 15.0)
        layer.add_box(sx + 0.35, sx + 0.48, 1.45, 2.2, "organic", 12.0)
        layer.add_box(sx, sx + 0.45, 1.2, 1.35, "steel", 4.0)
    layer.add_box(x1 - 0.7, x1 - 0.05, 1.5, 1.62, "organic", 20.0)  # bunk
    if v.deflector:
        layer.add_poly([(x0 + 0.3, top), (x1 - 0.05, top + 0.55), (x1 - 0.05, top)], "plastic", 1.2)
    # engine block with cylinder bores, head and crankshaft; gearbox; radiator; bumper
    e0, e1 = x0 + 0.35, x0 + 1.45
    layer.add_box(e0, e1, 0.55, 1.35, "steel", 22.0)
    for k in range(6):
        bx = e0 + 0.08 + k * (e1 - e0 - 0.16) / 6
        layer.add_box(bx + 0.02, bx + 0.13, 0.85, 1.2, "steel", -9.0)  # bores hold less iron
    layer.add_box(e0, e1, 1.2, 1.35, "steel", 6.0)
    layer.add_box(e0 + 0.05, e1 - 0.05, 0.55, 0.68, "steel", 12.0)
    layer.add_box(e1, x0 + 2.05, 0.62, 1.08, "aluminium", 25.0)
    layer.add_box(e1 + 0.1, x0 + 1.95, 0.72, 0.98, "steel", 8.0)
    layer.add_box(x0 + 0.08, x0 + 0.22, 0.7, 1.5, "aluminium", 6.0)
    layer.add_box(x0 + 0.08, x0 + 0.22, 0.7, 1.5, "organic", 4.0)
    layer.add_box(x0, x0 + 0.18, 0.4, 0.7, "steel", 6.0)
    # fuel tank (diesel behind an aluminium shell), battery box (lead), air tank
    ft0 = x1 + 0.02
    ft1 = ft0 + v.fuel_tank_m
    layer.add_box(ft0, ft1, 0.55, 1.1, "organic", 48.0 * float(rng.uniform(0.4, 1.0)))
    layer.add_box(ft0, ft1, 0.55, 1.1, "aluminium", 0.6)
    for ex in (ft0, ft1 - 0.005):
        layer.add_box(ex, ex + 0.005, 0.55, 1.1, "aluminium", 55.0)
    b0 = x1 - 0.55
    layer.add_box(b0, b0 + 0.5, 0.62, 0.9, "lead", 5.0)
    layer.add_box(b0, b0 + 0.5, 0.62, 0.9, "organic", 15.0)
    layer.add_box(x0 + 1.55, x0 + 2.2, 0.42, 0.62, "steel", 1.5)
    # chassis rails of the tractor: webs, flanges; fifth wheel
    t_end = lay.containers[0].x0 + 0.55 + 1.35 * max(0, v.tractor_rear_axles - 1) + 0.9
    layer.add_box(x0 + 0.2, t_end, 0.95, 1.22, "steel", 1.6)
    layer.add_box(x0 + 0.2, t_end, 1.19, 1.22, "steel", 14.0)
    layer.add_box(x0 + 0.2, t_end, 0.95, 0.98, "steel", 14.0)
    fw = lay.containers[0].x0 + 0.45
    layer.add_box(fw, fw + 0.85, 1.22, 1.32, "steel", 22.0)
    for ax, tyres in lay.axles:
        _wheel(layer, ax, tyres)


def _draw_trailer(layer: Layer, spec: ScanSpec, lay: SceneLayout) -> None:
    t0, t1 = lay.trailer
    deck = spec.vehicle.deck_height_m
    layer.add_box(t0, t1, deck - 0.42, deck - 0.04, "steel", 1.2)  # main beams
    layer.add_box(t0, t1, deck - 0.07, deck - 0.04, "steel", 16.0)
    layer.add_box(t0, t1, deck - 0.42, deck - 0.39, "steel", 16.0)
    x = t0 + 0.4
    while x < t1 - 0.2:
        layer.add_box(x, x + 0.1, deck - 0.36, deck - 0.1, "steel", 22.0)  # cross members
        x += 1.2
    lg = lay.containers[0].x0 + 2.3  # landing gear
    layer.add_box(lg, lg + 0.12, 0.25, deck - 0.4, "steel", 3.0)
    layer.add_box(lg - 0.05, lg + 0.17, 0.22, 0.27, "steel", 30.0)
    layer.add_box(t1 - 0.12, t1, 0.5, 0.8, "steel", 8.0)  # rear bumper / light bar
    for b in lay.containers:  # twist locks under the corner castings
        for cx in (b.x0, b.x1 - 0.18):
            layer.add_box(cx, cx + 0.18, deck - 0.05, deck, "steel", 20.0)


def _draw_container(layer: Layer, b: ContainerBox) -> None:
    x0, x1, y0, y1 = b.x0, b.x1, b.y0, b.y1
    # side walls, corrugated (pitch 278 mm): on the slopes the beam crosses the sheet obliquely
    pt = layer.patch(x0 + 0.15, x1 - 0.15, y0 + 0.16, y1 - 0.06)
    if pt is not None:
        r0, c0, X, Y = pt
        phase = ((X - x0) % 0.278) / 0.278
        factor = np.where((phase < 0.25) | ((phase >= 0.5) & (phase < 0.75)), 1.0, 2.2).astype(np.float32)
        wall_cm = 0.16 if not b.reefer else 0.12
        layer.add(r0, c0, np.repeat(factor * np.float32(2 * wall_cm), Y.shape[0], axis=0), "steel" if not b.reefer
                  else "aluminium")
    if b.reefer:  # insulation and inner skin
        layer.add_box(x0 + 0.05, x1 - 0.05, y0 + 0.1, y1 - 0.05, "plastic", 2 * 8 * 0.05)
        layer.add_box(x0 + 0.05, x1 - 0.05, y0 + 0.1, y1 - 0.05, "steel", 2 * 0.08)
    layer.add_box(x0, x1, y1 - 0.045, y1, "steel", 12.0)  # roof, edge-on
    layer.add_box(x0, x1, y1 - 0.06, y1, "steel", 4.0)  # top side rails
    layer.add_box(x0, x1, y0, y0 + 0.16, "steel", 0.9)  # bottom side rails
    layer.add_box(x0, x1, y0 + 0.14, y0 + 0.16, "steel", 10.0)
    layer.add_box(x0, x1, y0, y0 + 0.02, "steel", 10.0)
    layer.add_box(x0 + 0.05, x1 - 0.05, y0 + 0.12, y0 + 0.148, "wood" if not b.reefer else "aluminium",
                  235.0 * 0.6 if not b.reefer else 20.0)  # floor, edge-on
    x = x0 + 0.2
    while x < x1 - 0.25:  # floor cross members
        layer.add_box(x, x + 0.045, y0 + 0.0, y0 + 0.122, "steel", 25.0)
        x += 0.3 if b.size == "40" else 0.28
    # end wall, corner posts, castings
    layer.add_box(x0, x0 + 0.04, y0, y1, "steel", 6.0)
    for ex in (x0, x0 + 0.035):
        layer.add_box(ex, ex + 0.005, y0, y1, "steel", 40.0)
    for px0 in (x0, x1 - 0.15):
        layer.add_box(px0, px0 + 0.15, y0, y1, "steel", 2.4)
        edge = px0 + 0.145 if px0 == x0 else px0
        layer.add_box(edge, edge + 0.006, y0, y1, "steel", 20.0)
        for cy in (y0, y1 - 0.118):
            layer.add_box(px0 if px0 == x0 else x1 - 0.178, (px0 if px0 == x0 else x1 - 0.178) + 0.178, cy,
                          cy + 0.118, "steel", 24.0)
    # rear: doors (corrugated panels edge-on), header, sill, locking bars, handles
    layer.add_box(x1 - 0.05, x1, y0, y1, "steel", 6.0)
    layer.add_box(x1 - 0.006, x1, y0, y1, "steel", 35.0)
    layer.add_box(x1 - 0.2, x1, y1 - 0.1, y1, "steel", 30.0)
    layer.add_box(x1 - 0.2, x1, y0, y0 + 0.12, "steel", 30.0)
    pt = layer.patch(x1, x1 + 0.03, y0 + 0.05, y1 - 0.05)
    if pt is not None:
        r0, c0, X, Y = pt
        rod = 2 * np.sqrt(np.clip(0.0135**2 - (X - (x1 + 0.015)) ** 2, 0, None)) * np.float32(100 * 4)
        layer.add(r0, c0, np.repeat(rod.astype(np.float32), Y.shape[0], axis=0), "steel")
    layer.add_box(x1, x1 + 0.04, y0 + 1.0, y0 + 1.15, "steel", 3.0)
    if b.reefer:  # machinery bay: compressor, condenser coil, fan, control box
        m0 = x0 + 0.04
        layer.add_box(m0 + 0.05, m0 + 0.4, y0 + 0.25, y0 + 0.55, "steel", 18.0)
        layer.add_box(m0, m0 + 0.4, y0 + 0.6, y0 + 1.6, "aluminium", 8.0)
        pt = layer.patch(m0, m0 + 0.4, y0 + 0.6, y0 + 1.6)
        if pt is not None:
            r0, c0, X, Y = pt
            rows = (((Y - y0) % 0.04) < 0.008).astype(np.float32)
            layer.add(r0, c0, np.repeat(rows, X.shape[1], axis=1) * np.float32(6.0), "copper")
        cy = y0 + 2.0
        pt = layer.patch(m0, m0 + 0.42, cy - 0.22, cy + 0.22)
        if pt is not None:
            r0, c0, X, Y = pt
            disc = (((X - (m0 + 0.21)) ** 2 + (Y - cy) ** 2) < 0.2**2).astype(np.float32)
            layer.add(r0, c0, disc * np.float32(4.0), "aluminium")
        layer.add_box(m0 + 0.1, m0 + 0.35, y0 + 1.65, y0 + 1.75, "steel", 5.0)
        layer.add_box(m0 + 0.1, m0 + 0.35, y0 + 1.65, y0 + 1.75, "copper", 2.0)
        layer.add_box(x0 + 0.44, x0 + 0.46, y0 + 0.1, y1 - 0.05, "aluminium", 30.0)  # bulkhead


# ---------------------------------------------------------------------------------------------
# TIP anomalies
# ---------------------------------------------------------------------------------------------


@dataclass
class _Tip:
    kind: str
    layer: Layer
    info: dict[str, Any]


def _anchor(lay: SceneLayout, p: dict[str, Any]) -> tuple[float, float]:
    s = lay.stack(int(p.get("stack", -1)))
    if s is not None:
        return s.x0 + float(p["u"]) * (s.x1 - s.x0), s.y0 + float(p["v"]) * (s.y1 - s.y0)
    r = lay.regions[0]
    return r.x0 + float(p["u"]) * (r.x1 - r.x0), r.y0 + float(p["v"]) * (r.y1 - r.y0)


def _render_tip(grid: Grid, spec: ScanSpec, lay: SceneLayout, a: AnomalySpec, rng: np.random.Generator) -> _Tip:
    p = a.params
    info: dict[str, Any] = {}
    if a.kind == "dense_block":
        cx, cy = _anchor(lay, p)
        w, h, ang = float(p["w"]), float(p["h"]), float(p["angle"])
        ca, sa = math.cos(ang), math.sin(ang)
        corners = [(cx + dx * ca - dy * sa, cy + dx * sa + dy * ca)
                   for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))]
        xs, ys = [c[0] for c in corners], [c[1] for c in corners]
        layer = Layer.around(grid, min(xs) - 0.05, max(xs) + 0.05, min(ys) - 0.05, max(ys) + 0.05)
        layer.add_poly(corners, str(p["material"]), float(p["cm"]))
        if p.get("wrap"):
            layer.add_poly([(x + (0.03 if x > cx else -0.03), y + (0.03 if y > cy else -0.03)) for x, y in corners],
                           "organic", 3.0)
        info = {"material": p["material"], "thickness_cm": round(float(p["cm"]), 2)}
    elif a.kind == "weapon":
        cx, cy = _anchor(lay, p)
        shape = str(p["shape"])
        parts: list[Any] = []
        for k in range(int(p.get("count", 1))):
            off = (k - (int(p.get("count", 1)) - 1) / 2) * (0.06 if shape == "rifle" else 0.05)
            parts += transform_parts(WEAPONS[shape], cx + off * math.sin(float(p["angle"])),
                                     cy + off * math.cos(float(p["angle"])), float(p["angle"]), float(p["scale"]),
                                     bool(p["flip"]))
        ex0, ex1, ey0, ey1 = parts_extent(parts)
        layer = Layer.around(grid, ex0, ex1, ey0, ey1)
        draw_parts(layer, parts)
        info = {"shape": shape, "count": int(p.get("count", 1))}
    elif a.kind == "hidden_compartment":
        interior = lay.containers[0].interior
        crng = np.random.default_rng(int(p.get("seed", 0)))
        size = float(p["size_m"])
        if p["variant"] == "false_wall":
            bx0, bx1, by0, by1 = interior.x0, interior.x0 + size, interior.y0, interior.y1
        else:
            load = [s for s in lay.stacks if s.container == 0]
            lx0 = min((s.x0 for s in load), default=interior.x0)
            lx1 = max((s.x1 for s in load), default=interior.x1)
            bx0, bx1, by0, by1 = lx0, lx1, interior.y0, interior.y0 + size
        depth_cm = interior.depth * 100
        layer = Layer.around(grid, bx0, bx1, by0, by1, margin_px=1)
        layer.add_box(bx0, bx1, by0, by1, "plastic", 3.0)  # liner / plywood framing
        draw_contraband(layer, bx0, bx1 - 0.01, by0, by1 - 0.01, depth_cm * 0.9, crng)
        if p["variant"] == "false_wall":
            layer.add_box(bx1 - 0.004, bx1, by0, by1, "steel", 40.0)
        else:
            layer.add_box(bx0, bx1, by1 - 0.004, by1, "steel", 40.0)
        info = {"variant": p["variant"], "size_m": round(size, 3)}
    elif a.kind == "undeclared_goods":
        s = lay.stack(int(p.get("stack", -1)))
        if s is None:
            r = lay.regions[0]
            s = Stack(r.x0, min(r.x1, r.x0 + 1.2), r.y0, min(r.y1, r.y0 + 1.6), 1, 1.0, 0, -1)
        region = Region(s.x0, s.x1, s.y0, s.y1, s.count * s.unit_depth, s.container)
        other, variant = str(p["goods"]), str(p["variant"])
        gp = dict(p.get("params", {}))
        gp["last_count"] = 0.0
        units = plan_units(other, variant, region, gp, 1.0, int(p.get("seed", 0)), 1e9)
        if not units:  # the other class's unit does not fit the position: one stack of it, squeezed in
            units = [Stack(s.x0, s.x1, s.y0, s.y1, max(1, s.count), s.unit_depth, s.container, 0)]
        layer = Layer.around(grid, s.x0 - 0.05, s.x1 + 0.05, s.y0, s.y1 + 0.06)
        render_stacks(layer, other, variant, units, gp, rng)
        info = {"goods": other, "variant": variant, "unit": GOODS[other].unit_of(variant),
                "units": int(sum(x.count for x in units)), "stack": int(p.get("stack", -1))}
    else:
        raise SimulationError(f"unknown anomaly {a.kind!r}; known: {', '.join(ANOMALY_KINDS)}")
    return _Tip(a.kind, layer, info)


# Where TIP may put a threat: it must stay visible. A projected object over pixels the load already
# starves (attenuation already past the scanner's penetration limit) shows as nothing a detector or
# an officer could see; real TIP libraries place threats where the image can show them. So a dense block
# or weapon whose site leaves less than VISIBLE_SHARE of its pixels penetrable is moved to another
# unit position (another stack, another point in it), up to PLACEMENT_TRIES times; the truth records
# the share reached and the tries (``visible_share``, ``placement_tries``).
VISIBLE_SHARE = 0.6
PLACEMENT_TRIES = 12
VISIBLE_MARGIN = 0.1  # attenuation the object must still be able to add before the detector starves
MOVABLE_KINDS = ("dense_block", "weapon")


def penetration_limit(scanner: ScannerModel, snr: float = 5.0) -> float:
    """The high-energy attenuation at which the transmitted signal is ``snr`` times its own noise."""
    cpp, rn = float(scanner.counts_per_photon), float(scanner.read_noise)
    # s / sqrt(cpp * s + rn^2) = snr  ->  s^2 - snr^2 cpp s - snr^2 rn^2 = 0
    s = (snr**2 * cpp + math.sqrt(snr**4 * cpp**2 + 4 * snr**2 * rn**2)) / 2
    full = float(np.median(scanner.air_high - scanner.dark_high))
    return math.log(max(full, s + 1) / s)


def _visible_share(base: Layer, tip: Layer, limit: float) -> float:
    r0, c0 = tip.r0 - base.r0, tip.c0 - base.c0
    window = (slice(r0, r0 + tip.rows), slice(c0, c0 + tip.cols))
    added = tip.high
    mask = added > 1e-4
    if not mask.any():
        return 0.0
    under = base.high[window][: added.shape[0], : added.shape[1]]
    # Visible where the scene behind it is penetrable: there the object changes what the detector reads
    # (even an object opaque by itself shows, as a black shape in a load the beam goes through).
    return float((under[mask] <= limit - VISIBLE_MARGIN).mean())


def _place_visible(grid: Grid, spec: ScanSpec, lay: SceneLayout, a: AnomalySpec, base: Layer, limit: float,
                   seed: int, index: int) -> _Tip:
    """Render anomaly ``a``; a dense block or weapon is moved until enough of it stays visible."""
    tip = _render_tip(grid, spec, lay, a, _rng(seed, "tip", index))
    if a.kind not in MOVABLE_KINDS:
        return tip
    share = _visible_share(base, tip.layer, limit)
    best, best_share, tries = tip, share, 1
    moves = _rng(seed, "tip", 1000 + index)
    stacks = [s.index for s in lay.stacks if s.container < len(lay.containers)]
    while best_share < VISIBLE_SHARE and tries < PLACEMENT_TRIES:
        p = dict(a.params)
        if stacks:
            p["stack"] = int(stacks[int(moves.integers(len(stacks)))])
        p["u"], p["v"] = float(moves.uniform(0.1, 0.9)), float(moves.uniform(0.1, 0.9))
        tries += 1
        candidate = _render_tip(grid, spec, lay, AnomalySpec(a.kind, p), _rng(seed, "tip", index))
        share = _visible_share(base, candidate.layer, limit)
        if share > best_share:
            best, best_share = candidate, share
    best.info.update(visible_share=round(best_share, 3), placement_tries=tries)
    return best


# ---------------------------------------------------------------------------------------------
# Scanner
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScannerModel:
    """A virtual dual-energy line scanner: per-row dark offset and open-beam (air) level per energy."""

    scanner_id: str
    rows: int
    dark_high: np.ndarray  # (rows,) float32 counts
    dark_low: np.ndarray
    air_high: np.ndarray  # open-beam counts per row (dark included)
    air_low: np.ndarray
    dead_rows: tuple[int, ...]
    hot_rows: tuple[int, ...]
    energies_kv: tuple[float, float] = ENERGIES_KV
    counts_per_photon: float = 2.0
    read_noise: float = 6.0
    psf_sigma_px: float = 0.0  # detector blur (Gaussian sigma, pixels) on transmission; 0 keeps the formula exact

    def levels(self, energy: str) -> tuple[np.ndarray, np.ndarray]:
        return (self.dark_high, self.air_high) if energy == "high" else (self.dark_low, self.air_low)


def make_scanner(rows: int, seed: int = 1, scanner_id: str = "SIM-XR-01") -> ScannerModel:
    """Per-row gains (smooth, per detector board of 32 channels, per channel), dark offsets, dead/hot rows."""
    rng = np.random.default_rng([int(seed), rows, 0x5CA])
    board = max(4, round(32 * rows / 1500))
    boards = np.repeat(rng.normal(0, 1, rows // board + 1), board)[:rows]
    smooth: np.ndarray = cv2.GaussianBlur(rng.normal(0, 1, (rows, 1)).astype(np.float32), (1, 0), sigmaX=0.1,
                                          sigmaY=max(2.0, rows / 10)).ravel()
    smooth = smooth / (float(np.abs(smooth).max()) or 1.0)
    gain = 1 + 0.06 * smooth + 0.02 * boards + 0.01 * rng.normal(0, 1, rows)
    dark_h = 420 + 40 * boards + 12 * rng.normal(0, 1, rows)
    dark_l = 380 + 35 * boards + 12 * rng.normal(0, 1, rows)
    air_h = dark_h + 50_000 * gain
    air_l = dark_l + 30_000 * (gain + 0.01 * rng.normal(0, 1, rows))
    n_dead = max(1, round(3 * rows / 1500))
    n_hot = max(1, round(2 * rows / 1500))
    picks = rng.choice(np.arange(2, rows - 2), n_dead + n_hot, replace=False)
    dead = tuple(sorted(int(r) for r in picks[:n_dead]))
    hot = tuple(sorted(int(r) for r in picks[n_dead:]))
    for r in dead:  # no response: the open beam reads the dark level
        air_h[r], air_l[r] = dark_h[r], dark_l[r]
    for r in hot:  # stuck near full scale, beam or not
        level = float(rng.uniform(58_000, 64_000))
        dark_h[r] = air_h[r] = level
        dark_l[r] = air_l[r] = level
    f32 = np.float32
    return ScannerModel(scanner_id, rows, dark_h.astype(f32), dark_l.astype(f32), air_h.astype(f32),
                        air_l.astype(f32), dead, hot)


def _beam(cols: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-column source output: slow drift (about 1 %) plus pulse-to-pulse jitter (0.5 %), both energies."""
    walk: np.ndarray = np.cumsum(rng.normal(0, 1, cols + 1))[1:]
    walk = cv2.GaussianBlur(walk.reshape(1, -1).astype(np.float32), (0, 0), sigmaX=max(1.0, cols / 40.0),
                            sigmaY=0.1).ravel()
    walk = walk - walk.mean()
    walk = walk / (float(np.abs(walk).max()) or 1.0)
    pulse = rng.normal(0, 1, cols)
    high = 1 + 0.012 * walk + 0.005 * pulse
    low = 1 + 0.012 * walk + 0.004 * pulse + 0.003 * rng.normal(0, 1, cols)
    return high.astype(np.float32), low.astype(np.float32)


def _expose(scanner: ScannerModel, energy: str, att: np.ndarray, beam: np.ndarray, rng: np.random.Generator,
            blur: bool = True) -> np.ndarray:
    dark, air = scanner.levels(energy)
    trans = np.exp(-att, dtype=np.float32)
    if blur and scanner.psf_sigma_px > 0:
        trans = cv2.GaussianBlur(trans, (0, 0), scanner.psf_sigma_px)
    signal = (air - dark)[:, None] * trans * beam[None, :]
    sigma = np.sqrt(np.float32(scanner.counts_per_photon) * np.maximum(signal, 0) + np.float32(scanner.read_noise**2))
    counts = dark[:, None] + signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)


def calibration_frames(scanner: ScannerModel, seed: int, columns: int = 64) -> dict[str, dict[str, np.ndarray]]:
    """Dark (beam off) and air (open beam, nothing in the tunnel) frames, ``columns`` scan lines each."""
    rng = np.random.default_rng([int(seed), 0xCA1])
    out: dict[str, dict[str, np.ndarray]] = {"dark": {}, "air": {}}
    beam_h, beam_l = _beam(columns, rng)
    zeros = np.zeros((scanner.rows, columns), np.float32)
    for energy, beam in (("high", beam_h), ("low", beam_l)):
        out["dark"][energy] = _expose(scanner, energy, zeros + 80.0, np.ones(columns, np.float32), rng, blur=False)
        out["air"][energy] = _expose(scanner, energy, zeros, beam, rng, blur=False)
    return out


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


@dataclass
class RenderedScan:
    high: np.ndarray  # uint16 counts (rows, cols)
    low: np.ndarray
    attenuation_high: np.ndarray  # float32 noise-free -ln(I/I0), same geometry as the images
    attenuation_low: np.ndarray
    masks: dict[str, np.ndarray]  # bool (rows, cols): "load", "anomaly0", ...
    truth: dict[str, Any]
    scanner: ScannerModel | None = None


def _bbox(mask: np.ndarray) -> list[int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


class _Warp:
    """Scan-speed jitter: output column j samples scene column src[j] (monotonic, ends fixed)."""

    def __init__(self, cols: int, rng: np.random.Generator, amplitude: float = 0.06):
        speed = 1 + amplitude * np.tanh(cv2.GaussianBlur(rng.normal(0, 1, (1, cols)).astype(np.float32), (0, 0),
                                                          sigmaX=max(2.0, cols / 12), sigmaY=0.1).ravel() * 8)
        speed = speed + 0.01 * rng.normal(0, 1, cols)  # vibration
        speed = np.clip(speed, 0.8, 1.2)
        src = np.concatenate([[0.0], np.cumsum(speed[:-1])])
        src = src * ((cols - 1) / src[-1]) if cols > 1 and src[-1] > 0 else src
        self.src = src.astype(np.float64)
        self.i0 = np.clip(np.floor(self.src).astype(np.int64), 0, max(cols - 1, 0))
        self.i1 = np.clip(self.i0 + 1, 0, max(cols - 1, 0))
        self.f = (self.src - self.i0).astype(np.float32)
        stretch = np.diff(self.src) if cols > 1 else np.ones(1)
        self.stretch = (float(stretch.min()), float(stretch.max()))

    def apply(self, a: np.ndarray) -> np.ndarray:
        return (a[:, self.i0] * (1 - self.f) + a[:, self.i1] * self.f).astype(np.float32)

    def col(self, x_px: float) -> float:
        """Output column of scene column ``x_px``."""
        return float(np.interp(x_px, self.src, np.arange(self.src.size)))


def make_grid(spec: ScanSpec, scale: float) -> tuple[Grid, SceneLayout]:
    if not 0.05 <= scale <= 2.0:
        raise SimulationError(f"scale must be within 0.05..2, got {scale}")
    lay = plan_scene(spec)
    rows = max(16, round(SCENE_HEIGHT_M / ROW_M * scale))
    col_m = COL_M / scale
    cols = max(16, round(lay.length_m / col_m))
    return Grid(rows, cols, SCENE_HEIGHT_M / rows, lay.length_m / cols, SCENE_HEIGHT_M), lay


def render_scan(spec: ScanSpec, seed: int, scale: float = 1.0, *, scanner: ScannerModel | None = None) -> RenderedScan:
    """Render one scan: noise-free attenuation, the scanner's raw counts at both energies, masks and truth."""
    grid, lay = make_grid(spec, scale)
    scanner = scanner or make_scanner(grid.rows)
    if scanner.rows != grid.rows:
        raise SimulationError(f"scanner has {scanner.rows} rows but this scale renders {grid.rows}")
    base = Layer(grid)
    vrng = _rng(seed, "vehicle")
    _draw_tractor(base, spec, lay, vrng)
    _draw_trailer(base, spec, lay)
    for b in lay.containers:
        _draw_container(base, b)
    load_stacks = declared_load(lay, spec)
    load_layer: Layer | None = None
    if spec.load is not None and load_stacks:
        x0 = min(s.x0 for s in load_stacks) - 0.1
        x1 = max(s.x1 for s in load_stacks) + 0.1
        y0 = min(s.y0 for s in load_stacks)
        y1 = max(s.y1 for s in load_stacks) + 0.1
        load_layer = Layer.around(grid, x0, x1, y0, y1)
        render_stacks(load_layer, spec.load.goods, spec.load.variant, load_stacks, spec.load.params,
                      _rng(seed, "load"))
        _paste(base, load_layer)
    tips = []
    for i, a in enumerate(spec.anomalies):
        tip = _place_visible(grid, spec, lay, a, base, penetration_limit(scanner), seed, i)
        _paste(base, tip.layer)
        tips.append(tip)
    warp = _Warp(grid.cols, _rng(seed, "speed"))
    att_h = np.maximum(warp.apply(base.high), 0)
    att_l = np.maximum(warp.apply(base.low), 0)
    masks: dict[str, np.ndarray] = {}
    if load_layer is not None:
        masks["load"] = _warped_mask(grid, warp, load_layer)
    anomalies: list[dict[str, Any]] = []
    for i, t in enumerate(tips):
        m = _warped_mask(grid, warp, t.layer)
        name = f"anomaly{i}"
        masks[name] = m
        added_h = _warped_full(grid, warp, t.layer, "high")
        added_l = _warped_full(grid, warp, t.layer, "low")
        area = int(m.sum())
        anomalies.append({
            "kind": t.kind, "mask": name, "bbox": _bbox(m), "area_px": area,
            "added_attenuation_high": round(float(added_h[m].mean()) if area else 0.0, 4),
            "added_ratio_low_high": round(float(added_l[m].sum() / max(added_h[m].sum(), 1e-9)), 4),
            **t.info,
        })  # fmt: skip
    brng = _rng(seed, "beam")
    beam_h, beam_l = _beam(grid.cols, brng)
    nrng = _rng(seed, "noise")
    high = _expose(scanner, "high", att_h, beam_h, nrng)
    low = _expose(scanner, "low", att_l, beam_l, nrng)
    truth = _truth(spec, grid, lay, warp, load_stacks, masks, anomalies, scanner, scale, seed)
    return RenderedScan(high, low, att_h, att_l, masks, truth, scanner)


def _paste(dst: Layer, src: Layer) -> None:
    sl = (slice(src.r0 - dst.r0, src.r0 - dst.r0 + src.rows), slice(src.c0 - dst.c0, src.c0 - dst.c0 + src.cols))
    dst.high[sl] += src.high
    dst.low[sl] += src.low


def _warped_full(grid: Grid, warp: _Warp, layer: Layer, energy: str) -> np.ndarray:
    full = np.zeros((layer.rows, grid.cols), np.float32)
    full[:, layer.c0 : layer.c0 + layer.cols] = layer.high if energy == "high" else layer.low
    out = np.zeros((grid.rows, grid.cols), np.float32)
    out[layer.r0 : layer.r0 + layer.rows] = warp.apply(full)
    return out


def _warped_mask(grid: Grid, warp: _Warp, layer: Layer, threshold: float = 1e-4) -> np.ndarray:
    return _warped_full(grid, warp, layer, "high") > threshold


def _truth(spec: ScanSpec, grid: Grid, lay: SceneLayout, warp: _Warp, load: Sequence[Stack],
           masks: dict[str, np.ndarray], anomalies: list[dict[str, Any]], scanner: ScannerModel, scale: float,
           seed: int) -> dict[str, Any]:
    def box(x0: float, x1: float, y0: float, y1: float) -> list[int]:
        c0 = warp.col(grid.col(x0))
        c1 = warp.col(grid.col(x1))
        r0, r1 = grid.row(y1), grid.row(y0)
        c0i, r0i = max(0, math.floor(c0)), max(0, math.floor(r0))
        return [c0i, r0i, max(1, min(grid.cols, math.ceil(c1)) - c0i), max(1, min(grid.rows, math.ceil(r1)) - r0i)]

    load_truth: dict[str, Any] | None = None
    if spec.load is not None:
        g = GOODS[spec.load.goods]
        load_truth = {
            "goods": spec.load.goods, "title": g.title, "variant": spec.load.variant,
            "unit": g.unit_of(spec.load.variant), "quantity": int(sum(s.count for s in load)),
            "fill": round(spec.load.fill, 3), "stacks": len(load),
            "bbox": _bbox(masks["load"]) if "load" in masks else None,
            "hs_code": g.hs_code,
            "units": [[*box(s.x0, s.x1, s.y0, s.y1), s.count] for s in load],
        }  # fmt: skip
    real_goods = spec.load.goods if spec.load else "empty"
    return {
        "seed": int(seed), "scale": scale, "shape": [grid.rows, grid.cols],
        "pixel_m": {"row": round(grid.row_m, 6), "col": round(grid.col_m, 6)},
        "scanner_id": scanner.scanner_id, "energy_kv": {"high": scanner.energies_kv[0], "low": scanner.energies_kv[1]},
        "vehicle": {
            "length_m": round(lay.length_m, 3), "plate": spec.plate,
            "cab_bbox": box(*lay.cab[:2], lay.cab[2], lay.cab[3]),
            "containers": [
                {"number": n, "size": b.size, "reefer": b.reefer,
                 "iso_type": ("45" if spec.vehicle.high_cube else b.size[0] + "2") + ("R1" if b.reefer else "G1"),
                 "bbox": box(b.x0, b.x1, b.y0, b.y1)}
                for b, n in zip(lay.containers, spec.container_numbers or [""] * len(lay.containers), strict=False)
            ],
            "axle_columns": [round(warp.col(grid.col(x)), 1) for x, _ in lay.axles],
        },
        "load": load_truth,
        "manifest": {
            "declared_goods": spec.declared_goods or real_goods, "declared_quantity": spec.declared_quantity,
            "declared_unit": load_truth["unit"] if load_truth else None, "real_goods": real_goods,
            "real_quantity": load_truth["quantity"] if load_truth else 0, "mismatches": list(spec.mismatches),
        },
        "anomalies": anomalies,
        "scanner_effects": {
            "speed_stretch": [round(warp.stretch[0], 4), round(warp.stretch[1], 4)],
            "dead_rows": list(scanner.dead_rows), "hot_rows": list(scanner.hot_rows),
        },
        "spec": spec.to_dict(),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# A folder of scans
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class XraySimulationResult:
    out_dir: Path
    truth_path: Path
    sidecars: list[Path]
    scans: int
    anomalies: dict[str, int]
    mismatches: dict[str, int]
    elapsed_s: float


DEFAULT_START_TIME = 1795000000.0
VN_TZ = _dt.timezone(_dt.timedelta(hours=7))


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise SimulationError(f"could not encode {path.name} as PNG")
    path.write_bytes(buf.tobytes())


def _prepare(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise SimulationError(f"--out {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise SimulationError(f"--out {out_dir} is not empty; choose an empty directory or pass --overwrite")
        for sub in ("scans", "masks", "calibration"):  # only what this simulator writes
            if (out_dir / sub).is_dir():
                shutil.rmtree(out_dir / sub)
        (out_dir / "truth.json").unlink(missing_ok=True)
    for sub in ("scans", "masks", "calibration"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)


def simulate_xray(
    out_dir: Path | str,
    scans: int,
    seed: int,
    *,
    scale: float = 1.0,
    anomaly_share: float = 0.3,
    mismatch_share: float = 0.2,
    goods: Sequence[str] | None = None,
    overwrite: bool = False,
    start_time: float = DEFAULT_START_TIME,
    scanner_id: str = "SIM-XR-01",
    lane_id: str = "L1",
    progress: Callable[[int, int], None] | None = None,
) -> XraySimulationResult:
    """Render ``scans`` scans into ``out_dir`` in the ingest format (docs/XRAY.md), with truth.json."""
    if scans < 0:
        raise SimulationError(f"--scans must be >= 0, got {scans}")
    for name, share in (("anomaly_share", anomaly_share), ("mismatch_share", mismatch_share)):
        if not 0.0 <= share <= 1.0:
            raise SimulationError(f"{name} must be within 0..1, got {share}")
    for g in goods or ():
        if g not in GOODS and g != "empty":
            raise SimulationError(f"unknown goods class {g!r}; known: {', '.join(GOODS_CLASSES)}, empty")
    out = Path(out_dir)
    _prepare(out, overwrite)
    started = time.perf_counter()
    rows = max(16, round(SCENE_HEIGHT_M / ROW_M * scale))
    scanner = make_scanner(rows, seed, scanner_id)
    frames = calibration_frames(scanner, seed)
    cal_files: dict[str, dict[str, str]] = {"dark": {}, "air": {}}
    for kind, per in frames.items():
        for energy, img in per.items():
            name = f"{kind}_{energy}.png"
            _write_png(out / "calibration" / name, img)
            cal_files[kind][energy] = name
    calibration = {
        "scanner_id": scanner_id, "rows": rows, "columns": 64,
        "energy_kv": {"high": scanner.energies_kv[0], "low": scanner.energies_kv[1]},
        "files": cal_files, "dead_rows": list(scanner.dead_rows), "hot_rows": list(scanner.hot_rows),
    }  # fmt: skip
    (out / "calibration" / "calibration.json").write_text(json.dumps(calibration, indent=2), encoding="utf-8")
    run = np.random.default_rng([int(seed), 0x51A])
    when = start_time
    truths: list[dict[str, Any]] = []
    sidecars: list[Path] = []
    counts_a: dict[str, int] = {}
    counts_m: dict[str, int] = {}
    for i in range(scans):
        sid = f"XR{i + 1:05d}"
        pick = None if not goods else str(goods[int(run.integers(len(goods)))])
        anomaly = "random" if run.random() < anomaly_share else None
        mismatch: str | None = None
        if run.random() < mismatch_share and pick != "empty":
            mismatch = "goods" if run.random() < 0.5 else "quantity"
        spec_rng = np.random.default_rng([int(seed), i, 0x5BEC])
        spec = random_spec(spec_rng, pick, anomaly, mismatch=mismatch)
        scan_seed = int(run.integers(2**48))
        r = render_scan(spec, scan_seed, scale, scanner=scanner)
        when += float(run.uniform(45, 180))
        high_name, low_name = f"{sid}_high.png", f"{sid}_low.png"
        _write_png(out / "scans" / high_name, r.high)
        _write_png(out / "scans" / low_name, r.low)
        mask_files: dict[str, str] = {}
        for mname, m in r.masks.items():
            fname = f"{sid}_{mname}.png"
            _write_png(out / "masks" / fname, (m.astype(np.uint8) * 255))
            mask_files[mname] = f"masks/{fname}"
        sidecar = {
            "format": "gate-xray/1", "scanner_id": scanner_id,
            "scanned_at": _dt.datetime.fromtimestamp(when, VN_TZ).isoformat(timespec="milliseconds"),
            "lane_id": lane_id, "plate": spec.plate, "containers": list(spec.container_numbers),
            "declared_goods": r.truth["manifest"]["declared_goods"],
            "declared_quantity": spec.declared_quantity if spec.load else 0,
            "declared_unit": r.truth["manifest"]["declared_unit"],
            "energy_kv": {"high": scanner.energies_kv[0], "low": scanner.energies_kv[1]},
            "bit_depth": 16, "normalised": False, "images": {"high": high_name, "low": low_name},
            "extra": {"pixel_m": r.truth["pixel_m"]},  # metres per pixel at the object (row, col)
        }  # fmt: skip
        sidecar_path = out / "scans" / f"{sid}.json"
        sidecar_path.write_text(json.dumps(sidecar, indent=2, ensure_ascii=False), encoding="utf-8")  # last
        sidecars.append(sidecar_path)
        t = r.truth
        t = {"id": sid, "scanned_at": round(when, 3), "files": {"sidecar": f"scans/{sid}.json",
             "high": f"scans/{high_name}", "low": f"scans/{low_name}", "masks": mask_files}, **t}  # fmt: skip
        for a in t["anomalies"]:
            a["mask"] = mask_files[a["mask"]]
            counts_a[a["kind"]] = counts_a.get(a["kind"], 0) + 1
        for m_ in spec.mismatches:
            counts_m[m_] = counts_m.get(m_, 0) + 1
        truths.append(t)
        if progress is not None:
            progress(i + 1, scans)
    truth = {
        "format": "gate-xray-sim/1", "seed": int(seed), "scale": scale, "scans": truths,
        "scanner": {**calibration, "files": {k: {e: f"calibration/{n}" for e, n in v.items()}
                                             for k, v in cal_files.items()}},
        "goods_classes": list(GOODS_CLASSES), "anomaly_kinds": list(ANOMALY_KINDS),
        "materials": {m.name: {"mu_high": round(m.mu_high, 5), "mu_low": round(m.mu_low, 5), "category": m.category}
                      for m in MATERIALS.values()},
    }  # fmt: skip
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(truth, ensure_ascii=False), encoding="utf-8")
    elapsed = time.perf_counter() - started
    log.info("simulated %d X-ray scans at scale %.2f in %.1f s -> %s", scans, scale, elapsed, out)
    return XraySimulationResult(out, truth_path, sidecars, scans, counts_a, counts_m, elapsed)
