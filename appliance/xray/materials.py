"""Dual-energy material map: organic / inorganic / metal from the ratio of attenuations.

With attenuation ``A = -ln(I')`` from both energies (``calibration.py``), the ratio
``R = A_low / A_high`` depends mostly on the effective atomic number of what the beam crossed and
little on its thickness. Each pixel gets one class (``Material``):

* ``AIR`` where ``A_high`` is below ``air_attenuation`` (nothing there, and R is only noise);
* ``TOO_DENSE`` where the high-energy beam was photon-starved (nothing measurable came through),
  or where the low-energy beam was starved and the ratio cannot decide;
* otherwise ``ORGANIC`` / ``INORGANIC`` / ``METAL`` by two boundaries on R.

The boundaries' order sets the direction: ``organic_inorganic < inorganic_metal`` means R grows
with atomic number (kV scanners, where photo-absorption dominates the low energy); a linac cargo
scanner at MeV energies can show the reverse (pair production makes metal relatively *more*
opaque at the high energy), which is written as ``organic_inorganic > inorganic_metal``. The
defaults are placeholders in the kV order; fit them per scanner from step-wedge scans
(``fit_material_thresholds``, ``appliance calibrate xray --wedge``). docs/XRAY_CALIBRATION.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import numpy as np

from appliance.errors import ApplianceError

if TYPE_CHECKING:
    from appliance.xray.calibration import Attenuation


class MaterialError(ApplianceError):
    """A material map that cannot be made (single energy, bad thresholds, bad wedge labels)."""


class Material(IntEnum):
    AIR = 0
    ORGANIC = 1
    INORGANIC = 2
    METAL = 3
    TOO_DENSE = 4


MATERIAL_NAMES: dict[str, Material] = {m.name.lower().replace("_", "-"): m for m in Material}
FITTED_CLASSES = (Material.ORGANIC, Material.INORGANIC, Material.METAL)

# BGR, as scanner consoles show them: orange organic, green inorganic, blue metal.
COLOURS_BGR: dict[Material, tuple[int, int, int]] = {
    Material.AIR: (255, 255, 255),
    Material.ORGANIC: (0, 140, 255),
    Material.INORGANIC: (40, 170, 40),
    Material.METAL: (220, 90, 20),
    Material.TOO_DENSE: (25, 25, 25),
}


@dataclass(frozen=True)
class MaterialThresholds:
    """Where the classes split. Stored in the scanner's calibration.json."""

    air_attenuation: float = 0.05  # A_high below this is air (5 % of the beam absorbed)
    organic_inorganic: float = 1.25  # R = A_low / A_high boundary between organic and inorganic
    inorganic_metal: float = 1.55  # R boundary between inorganic and metal
    source: str = "default"  # "default", or what they were fitted on

    def __post_init__(self) -> None:
        values = (self.air_attenuation, self.organic_inorganic, self.inorganic_metal)
        if not all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in values):
            raise MaterialError(f"material thresholds must be finite and positive, got {values}")
        if self.organic_inorganic == self.inorganic_metal:
            raise MaterialError("material thresholds: organic_inorganic and inorganic_metal must differ")

    @property
    def ascending(self) -> bool:
        """True when R grows from organic to metal (kV scanners); False for the reverse (MeV linacs)."""
        return self.organic_inorganic < self.inorganic_metal

    def to_json(self) -> dict[str, Any]:
        return {"air_attenuation": self.air_attenuation, "organic_inorganic": self.organic_inorganic,
                "inorganic_metal": self.inorganic_metal, "source": self.source}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MaterialThresholds:
        if not isinstance(data, Mapping):
            raise MaterialError(f"material thresholds must be an object, got {type(data).__name__}")
        unknown = set(data) - {"air_attenuation", "organic_inorganic", "inorganic_metal", "source"}
        if unknown:
            raise MaterialError(f"material thresholds: unknown field(s) {sorted(unknown)}")
        try:
            return cls(air_attenuation=float(data["air_attenuation"]),
                       organic_inorganic=float(data["organic_inorganic"]),
                       inorganic_metal=float(data["inorganic_metal"]),
                       source=str(data.get("source", "default")))
        except (KeyError, TypeError, ValueError) as exc:
            raise MaterialError(f"material thresholds: missing or invalid field: {exc}") from exc


def classify_ratio(
    a_high: np.ndarray,
    a_low: np.ndarray,
    thresholds: MaterialThresholds,
    starved: np.ndarray | None = None,
    starved_low: np.ndarray | None = None,
) -> np.ndarray:
    """Material class per pixel (uint8 ``Material`` values) from the two attenuation images."""
    if a_high.shape != a_low.shape:
        raise MaterialError(f"attenuation images differ in size: high {a_high.shape}, low {a_low.shape}")
    t = thresholds
    present = a_high >= t.air_attenuation
    ratio = a_low / np.maximum(a_high, np.float32(t.air_attenuation))
    lo, hi = np.float32(t.organic_inorganic), np.float32(t.inorganic_metal)
    if t.ascending:
        step1, step2 = ratio >= lo, ratio >= hi
    else:
        step1, step2 = ratio <= lo, ratio <= hi
    classes = np.full(a_high.shape, Material.ORGANIC, dtype=np.uint8)
    classes += step1
    classes += step2
    classes[~present] = Material.AIR
    if starved_low is not None:
        # A_low was capped, so R is only a lower bound on the truth: it decides the class only when
        # the bound already lies on the far side (metal when ascending, organic when descending).
        certain = ratio >= hi if t.ascending else ratio > lo
        classes[starved_low & present & ~certain] = Material.TOO_DENSE
    if starved is not None:
        classes[starved] = Material.TOO_DENSE
    return classes


def classify_materials(att: Attenuation, thresholds: MaterialThresholds, smooth: int = 1) -> np.ndarray:
    """Material class per pixel of a dual-energy attenuation; ``smooth`` > 1 box-filters A first (noise)."""
    if att.low is None:
        raise MaterialError("a material map needs a dual-energy scan (this one has no low-energy image)")
    a_high, a_low = att.high, att.low
    if smooth > 1:
        import cv2

        a_high = cv2.blur(a_high, (smooth, smooth))
        a_low = cv2.blur(a_low, (smooth, smooth))
    return classify_ratio(a_high, a_low, thresholds, att.starved, att.starved_low)


@functools.cache
def _colour_lut() -> np.ndarray:
    """(5, 256, 3) uint8: per class, 256 shades from thin (pale) to thick (dark) material."""
    level = np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None]
    white = np.float32(255.0)
    lut = np.empty((len(Material), 256, 3), dtype=np.uint8)
    for material, bgr in COLOURS_BGR.items():
        colour = np.asarray(bgr, dtype=np.float32)[None, :]
        if material is Material.TOO_DENSE:
            lut[material] = np.broadcast_to(colour, (256, 3))
            continue
        if material is Material.AIR:
            shade = white - 40.0 * level  # near white, a touch greyer with noise-level attenuation
            lut[material] = np.repeat(shade, 3, axis=1).astype(np.uint8)
            continue
        # first half: white -> full colour; second half: full colour -> a quarter of its brightness
        first = white + (colour - white) * np.minimum(level * 2.0, 1.0)
        second = colour * (1.0 - 0.75 * np.clip(level * 2.0 - 1.0, 0.0, 1.0))
        lut[material] = np.where(level <= 0.5, first, second).round().astype(np.uint8)
    return lut


def false_colour(att: Attenuation, classes: np.ndarray, shade_attenuation: float = 4.0) -> np.ndarray:
    """uint8 BGR image as scanner consoles show it: hue by class, darker where A_high is larger.

    ``shade_attenuation`` is the A_high drawn darkest (4.0: 1.8 % transmission).
    """
    if classes.shape != att.high.shape:
        raise MaterialError(f"class map {classes.shape} and attenuation {att.high.shape} differ in size")
    if shade_attenuation <= 0:
        raise MaterialError("shade_attenuation must be positive")
    import cv2

    # shade level 0..255 (rounded, saturated; |A| so that noise below zero stays near white)
    level: np.ndarray = np.asarray(cv2.convertScaleAbs(att.high, alpha=255.0 / shade_attenuation), dtype=np.uint8)
    index = classes.astype(np.uint16) << 8
    index |= level
    out: np.ndarray = np.take(_colour_lut().reshape(-1, 3), index, axis=0)
    return out


# ---------------------------------------------------------------------------------------------
# Fitting the boundaries from step-wedge scans of known materials


@dataclass(frozen=True)
class WedgeRegion:
    """A rectangle of a wedge scan known to hold one material: rows [r0, r1), columns [c0, c1)."""

    material: Material
    rows: tuple[int, int]
    cols: tuple[int, int]


@dataclass(frozen=True)
class MaterialFit:
    thresholds: MaterialThresholds
    medians: dict[str, float]  # median R per material
    samples: dict[str, int]  # pixels used per material
    accuracy: dict[str, float]  # share of each material's wedge pixels classified right by the fitted thresholds


def parse_wedge_labels(data: Any, where: str) -> dict[str, list[WedgeRegion]]:
    """``{"wedges": {"FILE NAME": [{"material": "organic", "rows": [r0, r1], "cols": [c0, c1]}, ...]}}``."""
    if not isinstance(data, Mapping) or not isinstance(data.get("wedges"), Mapping):
        raise MaterialError(f'{where}: expected {{"wedges": {{"FILE NAME": [regions...]}}}}')
    out: dict[str, list[WedgeRegion]] = {}
    for name, regions in data["wedges"].items():
        if not isinstance(regions, list) or not regions:
            raise MaterialError(f"{where}: wedge {name!r}: expected a non-empty list of regions")
        parsed = []
        for i, region in enumerate(regions):
            try:
                material = MATERIAL_NAMES[str(region["material"]).lower()]
                if material not in FITTED_CLASSES:
                    raise KeyError(region["material"])
                r0, r1 = (int(v) for v in region["rows"])
                c0, c1 = (int(v) for v in region["cols"])
            except (KeyError, TypeError, ValueError) as exc:
                raise MaterialError(
                    f"{where}: wedge {name!r} region {i}: needs material (organic, inorganic or metal), "
                    f"rows [r0, r1] and cols [c0, c1]: {exc!r}"
                ) from exc
            if not (0 <= r0 < r1 and 0 <= c0 < c1):
                raise MaterialError(f"{where}: wedge {name!r} region {i}: empty or negative rows/cols")
            parsed.append(WedgeRegion(material, (r0, r1), (c0, c1)))
        out[str(name)] = parsed
    return out


def wedge_ratios(att: Attenuation, regions: Sequence[WedgeRegion], air_attenuation: float,
                 where: str = "wedge") -> dict[Material, np.ndarray]:
    """R values of the usable pixels (material present, neither energy starved) per labelled region."""
    if att.low is None:
        raise MaterialError(f"{where}: a wedge scan must be dual-energy")
    rows, cols = att.high.shape
    out: dict[Material, list[np.ndarray]] = {}
    for region in regions:
        (r0, r1), (c0, c1) = region.rows, region.cols
        if r1 > rows or c1 > cols:
            raise MaterialError(f"{where}: region {region.rows} x {region.cols} lies outside the {rows} x {cols} scan")
        high = att.high[r0:r1, c0:c1]
        ok = high >= air_attenuation
        ok &= ~att.starved[r0:r1, c0:c1]
        if att.starved_low is not None:
            ok &= ~att.starved_low[r0:r1, c0:c1]
        out.setdefault(region.material, []).append(att.low[r0:r1, c0:c1][ok] / high[ok])
    return {m: np.concatenate(v) for m, v in out.items()}


def _best_split(below: np.ndarray, above: np.ndarray) -> float:
    """Boundary t between two R samples (``below`` has the smaller median; ``above`` is the class at R >= t)
    with the lowest balanced error, placed in the middle of the gap of equally good boundaries."""
    lo, hi = float(np.median(below)), float(np.median(above))
    b_sorted, a_sorted = np.sort(below), np.sort(above)
    candidates = np.unique(np.concatenate([b_sorted[(b_sorted >= lo) & (b_sorted <= hi)],
                                           a_sorted[(a_sorted >= lo) & (a_sorted <= hi)], [lo, hi]]))
    if candidates.size > 4096:
        candidates = np.unique(np.quantile(candidates, np.linspace(0.0, 1.0, 4096)))
    # t = candidate: below-class values >= t are wrong, above-class values < t are wrong
    err = (1.0 - np.searchsorted(b_sorted, candidates, side="left") / b_sorted.size
           + np.searchsorted(a_sorted, candidates, side="left") / a_sorted.size)
    best = err <= err.min() + 1e-12
    i = int(np.argmax(best))
    j = i
    while j + 1 < best.size and best[j + 1]:
        j += 1
    # any t in (candidates[i-1], candidates[j]] gives this error: take the middle
    left = float(candidates[i - 1]) if i > 0 else float(candidates[i])
    return (left + float(candidates[j])) / 2.0


def fit_material_thresholds(samples: Mapping[Material, np.ndarray], air_attenuation: float, source: str,
                            min_samples: int = 50) -> MaterialFit:
    """Boundaries between organic / inorganic / metal from R samples of known materials."""
    for m in FITTED_CLASSES:
        n = int(samples[m].size) if m in samples else 0
        if n < min_samples:
            raise MaterialError(f"wedge fit: {m.name.lower()} has {n} usable pixels (at least {min_samples} needed: "
                                "is the region inside the wedge, above the air threshold and not photon-starved?)")
    med = {m: float(np.median(samples[m])) for m in FITTED_CLASSES}
    o, i, mt = med[Material.ORGANIC], med[Material.INORGANIC], med[Material.METAL]
    if o < i < mt:
        b1 = _best_split(samples[Material.ORGANIC], samples[Material.INORGANIC])
        b2 = _best_split(samples[Material.INORGANIC], samples[Material.METAL])
    elif o > i > mt:
        b1 = _best_split(samples[Material.INORGANIC], samples[Material.ORGANIC])
        b2 = _best_split(samples[Material.METAL], samples[Material.INORGANIC])
    else:
        raise MaterialError(
            f"wedge fit: median R organic {o:.3f}, inorganic {i:.3f}, metal {mt:.3f} do not order one way; "
            "check the wedge labels and that the frames are dark/air-corrected with this scanner's calibration"
        )
    thresholds = MaterialThresholds(air_attenuation, b1, b2, source=source)
    accuracy = {}
    for m in FITTED_CLASSES:
        a_high = np.full(samples[m].shape, max(1.0, 2.0 * air_attenuation), dtype=np.float32)
        got = classify_ratio(a_high, samples[m].astype(np.float32) * a_high, thresholds)
        accuracy[m.name.lower()] = float(np.mean(got == m))
    return MaterialFit(thresholds, {m.name.lower(): v for m, v in med.items()},
                       {m.name.lower(): int(samples[m].size) for m in FITTED_CLASSES}, accuracy)
