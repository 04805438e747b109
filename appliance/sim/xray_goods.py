"""Materials, the attenuation canvas and the goods classes of the X-ray cargo simulator.

Used by :mod:`appliance.sim.xray`. Everything is drawn in **scene coordinates** (metres: ``x``
along the vehicle from its front margin, ``y`` height above the road) and rasterised onto a
:class:`Grid` of detector rows (top = row 0) and scan-line columns. A :class:`Layer` accumulates
attenuation ``sum(mu * path_cm)`` at the two energies; a material's ``mu`` is its density times a
stylised mass attenuation coefficient.

Energies are stylised: the **low/high ratio rises with Z** (organic < inorganic < metal), as
for a 450/160 kV style dual-energy scanner, while the penetration is MeV-class (about 40 cm of
steel before the detector starves) so a loaded container is not opaque. Quantitative
material discrimination on these images is only as good as that stylisation.

Goods classes (:data:`GOODS`) each have variants, a unit (pallet, bag, drum, IBC, package), a
*planner* that lays units out in the free part of a container (deterministic from the load
parameters) and a *renderer* that draws them with a parametric texture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.errors import SimulationError

__all__ = [
    "GOODS",
    "GOODS_CLASSES",
    "MATERIALS",
    "GoodsClass",
    "Grid",
    "Layer",
    "Material",
    "Region",
    "Stack",
    "goods_params",
    "plan_units",
    "render_stacks",
]


# ---------------------------------------------------------------------------------------------
# Materials
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    name: str
    density: float  # g/cm3
    mass_mu_high: float  # cm2/g at the high energy (stylised)
    ratio: float  # mu_low / mu_high: rises with Z
    category: str  # "organic" | "inorganic" | "metal"

    @property
    def mu_high(self) -> float:
        """Linear attenuation per cm at the high energy."""
        return self.density * self.mass_mu_high

    @property
    def mu_low(self) -> float:
        return self.mu_high * self.ratio


MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        Material("organic", 1.00, 0.0350, 1.10, "organic"),  # water, fruit, fish, diesel
        Material("ice", 0.92, 0.0350, 1.10, "organic"),
        Material("wood", 0.60, 0.0345, 1.09, "organic"),
        Material("cardboard", 0.70, 0.0345, 1.09, "organic"),
        Material("paper", 0.90, 0.0345, 1.10, "organic"),
        Material("plastic", 1.00, 0.0355, 1.07, "organic"),
        Material("rubber", 1.20, 0.0350, 1.10, "organic"),
        Material("coke", 1.00, 0.0340, 1.06, "organic"),  # carbon lumps (apparent density)
        Material("fertiliser", 1.70, 0.0335, 1.24, "inorganic"),  # NPK / potash salts
        Material("chemical", 1.50, 0.0340, 1.20, "inorganic"),  # caustic soda solution and the like
        Material("glass", 2.50, 0.0330, 1.30, "inorganic"),
        Material("pcb", 1.90, 0.0330, 1.28, "inorganic"),
        Material("aluminium", 2.70, 0.0325, 1.36, "inorganic"),
        Material("steel", 7.87, 0.0320, 1.62, "metal"),
        Material("copper", 8.96, 0.0325, 1.72, "metal"),
        Material("lead", 11.35, 0.0420, 2.30, "metal"),
        Material("tungsten", 19.30, 0.0440, 2.40, "metal"),
    )
}


# ---------------------------------------------------------------------------------------------
# Grid and layer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """The pixel grid of one scan: ``col = x / col_m``, ``row = (top_m - y) / row_m`` (pixel edges)."""

    rows: int
    cols: int
    row_m: float  # metres per detector row at the object
    col_m: float  # metres per scan line at nominal speed
    top_m: float  # height of the top edge of row 0

    def col(self, x: float) -> float:
        return x / self.col_m

    def row(self, y: float) -> float:
        return (self.top_m - y) / self.row_m


def interval_coverage(n: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Coverage (0..1) of pixels ``0..n-1`` by the union-ish sum of intervals ``[starts, ends)`` (pixels)."""
    if n <= 0 or len(starts) == 0:
        return np.zeros(max(n, 0), np.float32)
    idx = np.arange(n, dtype=np.float32)[None, :]
    s = np.asarray(starts, np.float32)[:, None]
    e = np.asarray(ends, np.float32)[:, None]
    cov = np.clip(np.minimum(e, idx + 1) - np.maximum(s, idx), 0.0, 1.0).sum(axis=0)
    return np.minimum(cov, 1.0).astype(np.float32)


class Layer:
    """Attenuation at the high and low energy over a window ``[r0, r0+rows) x [c0, c0+cols)`` of a grid."""

    def __init__(self, grid: Grid, r0: int = 0, c0: int = 0, rows: int | None = None, cols: int | None = None):
        self.grid = grid
        self.r0 = max(0, r0)
        self.c0 = max(0, c0)
        self.rows = max(0, min(grid.rows, r0 + (grid.rows if rows is None else rows)) - self.r0)
        self.cols = max(0, min(grid.cols, c0 + (grid.cols if cols is None else cols)) - self.c0)
        self.high = np.zeros((self.rows, self.cols), np.float32)
        self.low = np.zeros((self.rows, self.cols), np.float32)
        self._noise: dict[tuple[float, int], np.ndarray] = {}

    @classmethod
    def around(cls, grid: Grid, x0: float, x1: float, y0: float, y1: float, margin_px: int = 2) -> Layer:
        """A layer just big enough for the scene box ``[x0, x1] x [y0, y1]``."""
        c0 = math.floor(grid.col(x0)) - margin_px
        c1 = math.ceil(grid.col(x1)) + margin_px
        r0 = math.floor(grid.row(y1)) - margin_px
        r1 = math.ceil(grid.row(y0)) + margin_px
        return cls(grid, r0, c0, r1 - r0, c1 - c0)

    # -- adding --------------------------------------------------------------------------
    def add(self, r0: int, c0: int, t: np.ndarray, material: str) -> None:
        """Add a path-length map ``t`` (cm of ``material``) whose pixel [0, 0] is global ``(r0, c0)``."""
        if t.size == 0:
            return
        m = MATERIALS[material]
        rr0, cc0 = max(r0, self.r0), max(c0, self.c0)
        rr1 = min(r0 + t.shape[0], self.r0 + self.rows)
        cc1 = min(c0 + t.shape[1], self.c0 + self.cols)
        if rr1 <= rr0 or cc1 <= cc0:
            return
        sub = t[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0]
        dst = (slice(rr0 - self.r0, rr1 - self.r0), slice(cc0 - self.c0, cc1 - self.c0))
        self.high[dst] += sub * np.float32(m.mu_high)
        self.low[dst] += sub * np.float32(m.mu_low)

    def _span(self, lo: float, hi: float, origin: int, size: int) -> tuple[int, np.ndarray]:
        """Pixel start and coverage vector of the continuous interval [lo, hi) inside the window."""
        a = max(math.floor(lo), origin)
        b = min(math.ceil(hi), origin + size)
        if b <= a:
            return a, np.zeros(0, np.float32)
        return a, interval_coverage(b - a, np.array([lo - a]), np.array([hi - a]))

    def add_box(self, x0: float, x1: float, y0: float, y1: float, material: str, cm: float) -> None:
        """A box of constant path ``cm`` with partial coverage on its edges (keeps thin parts at small scales)."""
        if cm == 0 or x1 <= x0 or y1 <= y0:
            return
        g = self.grid
        c0, ccov = self._span(g.col(x0), g.col(x1), self.c0, self.cols)
        r0, rcov = self._span(g.row(y1), g.row(y0), self.r0, self.rows)
        if ccov.size == 0 or rcov.size == 0:
            return
        self.add(r0, c0, np.outer(rcov, ccov) * np.float32(cm), material)

    def add_column_profile(self, x0: float, y0: float, y1: float, profile: np.ndarray, material: str) -> None:
        """Rows ``[y0, y1]`` times a per-column path profile (cm) starting at column ``col(x0)``."""
        g = self.grid
        r0, rcov = self._span(g.row(y1), g.row(y0), self.r0, self.rows)
        c0 = math.floor(g.col(x0))
        if rcov.size == 0 or profile.size == 0:
            return
        self.add(r0, c0, np.outer(rcov, profile.astype(np.float32)), material)

    def patch(self, x0: float, x1: float, y0: float, y1: float) -> tuple[int, int, np.ndarray, np.ndarray] | None:
        """Pixels covering the scene box, clipped to the window: ``(r0, c0, X, Y)``.

        ``X`` (1, w) and ``Y`` (h, 1) are the scene coordinates (metres) of the pixel centres.
        """
        g = self.grid
        c0 = max(math.floor(g.col(x0)), self.c0)
        c1 = min(math.ceil(g.col(x1)), self.c0 + self.cols)
        r0 = max(math.floor(g.row(y1)), self.r0)
        r1 = min(math.ceil(g.row(y0)), self.r0 + self.rows)
        if c1 <= c0 or r1 <= r0:
            return None
        X = ((np.arange(c0, c1, dtype=np.float32) + 0.5) * g.col_m)[None, :]
        Y = (g.top_m - (np.arange(r0, r1, dtype=np.float32) + 0.5) * g.row_m)[:, None]
        return r0, c0, X, Y

    def add_poly(self, pts: Sequence[tuple[float, float]], material: str, cm: float, *, line_m: float = 0.0) -> None:
        """A filled polygon (scene metres), or a polyline of width ``line_m`` when it is > 0; 4x supersampled."""
        g = self.grid
        ss = 4
        px = np.array([[g.col(x), g.row(y)] for x, y in pts], np.float64)
        pad = 1 + line_m / min(g.col_m, g.row_m)
        c0 = math.floor(px[:, 0].min() - pad)
        c1 = math.ceil(px[:, 0].max() + pad)
        r0 = math.floor(px[:, 1].min() - pad)
        r1 = math.ceil(px[:, 1].max() + pad)
        if c1 <= c0 or r1 <= r0:
            return
        canvas = np.zeros(((r1 - r0) * ss, (c1 - c0) * ss), np.uint8)
        local = np.round((px - [c0, r0]) * ss).astype(np.int32).reshape(-1, 1, 2)
        if line_m > 0:
            width = max(1, round(line_m / min(g.col_m, g.row_m) * ss))
            cv2.polylines(canvas, [local], False, 255, thickness=width, lineType=cv2.LINE_8)
        else:
            cv2.fillPoly(canvas, [local], 255)
        cov = cv2.resize(canvas, (c1 - c0, r1 - r0), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        self.add(r0, c0, cov * np.float32(cm), material)

    # -- textures --------------------------------------------------------------------------
    def noise(self, sigma_m: float, seed: int) -> np.ndarray:
        """A smooth Gaussian noise field over the window (std 1), correlation length ``sigma_m``; cached."""
        key = (round(sigma_m, 4), seed)
        field = self._noise.get(key)
        if field is None:
            rng = np.random.default_rng([seed, 0x5EED])
            sx = max(0.0, sigma_m / self.grid.col_m)
            sy = max(0.0, sigma_m / self.grid.row_m)
            f = max(1.0, min(sx, sy) / 2.0)  # coarse fields: draw at low resolution, then upsample
            h = max(2, math.ceil(self.rows / f))
            w = max(2, math.ceil(self.cols / f))
            field = rng.standard_normal((h, w), dtype=np.float32)
            if sx > 0.3 or sy > 0.3:
                field = cv2.GaussianBlur(field, (0, 0), sigmaX=max(sx / f, 0.3), sigmaY=max(sy / f, 0.3))
            if f > 1.0:
                field = cv2.resize(field, (self.cols, self.rows), interpolation=cv2.INTER_LINEAR)
            std = float(field.std()) or 1.0
            field = field / np.float32(std)
            self._noise[key] = field
        return field

    def noise_at(self, sigma_m: float, seed: int, r0: int, c0: int, h: int, w: int) -> np.ndarray:
        field = self.noise(sigma_m, seed)
        return field[r0 - self.r0 : r0 - self.r0 + h, c0 - self.c0 : c0 - self.c0 + w]


def ellipsoid_kernel(grid: Grid, a_m: float, b_m: float, depth_cm: float, angle: float = 0.0) -> np.ndarray:
    """Path length (cm) through an ellipsoid (semi-axes ``a_m`` x ``b_m`` in the image, ``depth_cm/2`` along
    the beam) sampled on the grid; rescaled so its sum is the true volume / pixel area at any scale."""
    reach = max(a_m, b_m)
    hw = max(1, math.ceil(reach / grid.col_m))
    hh = max(1, math.ceil(reach / grid.row_m))
    xs = (np.arange(-hw, hw + 1, dtype=np.float32) * grid.col_m)[None, :]
    ys = (np.arange(-hh, hh + 1, dtype=np.float32) * grid.row_m)[:, None]
    ca, sa = math.cos(angle), math.sin(angle)
    u = (xs * ca + ys * sa) / a_m
    v = (-xs * sa + ys * ca) / b_m
    k = depth_cm * np.sqrt(np.clip(1.0 - u * u - v * v, 0.0, None))
    target = (2.0 / 3.0) * math.pi * a_m * b_m * depth_cm / (grid.col_m * grid.row_m)  # sum of path over px
    total = float(k.sum())
    if total > 0:
        k *= np.float32(target / total)
    else:
        k[hh, hw] = target
    return k.astype(np.float32)


def stamp(shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray, kernel: np.ndarray,
          weights: np.ndarray | None = None) -> np.ndarray:
    """Sum of ``kernel`` copies centred at (rows, cols) (float pixel positions), as one convolution."""
    h, w = shape
    field = np.zeros((h, w), np.float32)
    r = np.round(rows).astype(np.int64)
    c = np.round(cols).astype(np.int64)
    ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    np.add.at(field, (r[ok], c[ok]), 1.0 if weights is None else weights[ok])
    if not ok.any():
        return field
    return cv2.filter2D(field, -1, kernel, borderType=cv2.BORDER_CONSTANT)


def lattice(h: int, w: int, dx_px: float, dy_px: float, jitter: float, rng: np.random.Generator,
            hexagonal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Jittered (hexagonal) lattice of points covering an h x w patch (a margin beyond it)."""
    dx_px = max(dx_px, 0.5)
    dy_px = max(dy_px, 0.5)
    ny = int(h / dy_px) + 3
    nx = int(w / dx_px) + 3
    jj, ii = np.meshgrid(np.arange(nx, dtype=np.float32), np.arange(ny, dtype=np.float32))
    cols = (jj - 1) * dx_px + (ii % 2) * (dx_px / 2 if hexagonal else 0.0)
    rows = (ii - 1) * dy_px
    off = rng.uniform(0, 1, 2)
    cols = cols + off[0] * dx_px + rng.normal(0, jitter * dx_px, cols.shape)
    rows = rows + off[1] * dy_px + rng.normal(0, jitter * dy_px, rows.shape)
    return rows.ravel(), cols.ravel()


def normalise_mean(field: np.ndarray) -> np.ndarray:
    m = float(field.mean()) if field.size else 0.0
    return field / np.float32(m) if m > 1e-9 else np.ones_like(field)


def line_profile(n: int, origin_px: float, period_px: float, width_px: float) -> np.ndarray:
    """Coverage (0..1) of periodic lines of ``width_px`` every ``period_px`` starting at ``origin_px``."""
    if n <= 0 or period_px <= 0:
        return np.zeros(max(n, 0), np.float32)
    k0 = math.floor((0 - origin_px) / period_px) - 1
    k1 = math.ceil((n - origin_px) / period_px) + 1
    centres = origin_px + np.arange(k0, k1 + 1) * period_px
    return interval_coverage(n, centres - width_px / 2, centres + width_px / 2)


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """Free load space of one container (scene metres); ``depth`` is the inner width along the beam."""

    x0: float
    x1: float
    y0: float
    y1: float
    depth: float
    container: int = 0


@dataclass(frozen=True)
class Stack:
    """What one unit position looks like in projection: a box holding ``count`` units across the beam."""

    x0: float
    x1: float
    y0: float
    y1: float
    count: int  # units across the beam (they overlap in the image); the quantity is the sum of counts
    unit_depth: float  # metres of one unit along the beam
    container: int
    index: int  # position in the plan (stable: anomaly specs refer to it)
    level: int = 0
    tag: str = ""  # parcels: content type


@dataclass(frozen=True)
class GoodsClass:
    name: str
    title: str
    hs_code: str  # a representative HS heading (the lane simulator's GOODS list)
    variants: tuple[str, ...]
    unit: str  # default unit; some variants override it (see unit_of)
    unit_kg: float
    reefer: bool = False

    def unit_of(self, variant: str) -> str:
        return _VARIANT_UNITS.get((self.name, variant), self.unit)


GOODS: dict[str, GoodsClass] = {
    g.name: g
    for g in (
        GoodsClass("fruit", "fruit and vegetables", "081090",
                   ("dragon_fruit", "lychee", "durian", "banana", "mango", "cabbage"), "pallet", 850.0),
        GoodsClass("seafood", "frozen seafood", "030617", ("fish_blocks", "shrimp", "fillets"), "pallet", 950.0,
                   reefer=True),
        GoodsClass("electronics", "electronic components", "854231", ("pcb_assemblies", "ic_reels", "devices"),
                   "pallet", 450.0),
        GoodsClass("fertiliser", "fertiliser", "310210", ("jumbo_bags", "bags_on_pallet"), "bag", 1000.0),
        GoodsClass("coke", "metallurgical coke", "270400", ("jumbo_bags",), "bag", 600.0),
        GoodsClass("chemicals", "chemicals", "281511", ("steel_drums", "plastic_drums", "ibc"), "drum", 250.0),
        GoodsClass("parcels", "e-commerce parcels", "482110", ("mixed",), "package", 8.0),
    )
}  # fmt: skip
_VARIANT_UNITS = {("fertiliser", "bags_on_pallet"): "pallet", ("chemicals", "ibc"): "ibc"}
_VARIANT_KG = {("fertiliser", "bags_on_pallet"): 1400.0, ("chemicals", "ibc"): 1150.0}
GOODS_CLASSES: tuple[str, ...] = tuple(GOODS)
PARCEL_CONTENTS = ("clothes", "books", "shoes", "bottles", "gadgets", "tools", "food", "toys")


def unit_kg(goods: str, variant: str) -> float:
    return _VARIANT_KG.get((goods, variant), GOODS[goods].unit_kg)


def goods_params(goods: str, variant: str, rng: np.random.Generator) -> dict[str, float]:
    """Random texture/arrangement parameters of one load (all plain floats, stored in the spec)."""
    u = rng.uniform
    p: dict[str, float] = {"gap": float(u(0.02, 0.08)), "levels": 1.0, "last_count": 0.0}
    if goods in ("fruit", "seafood", "electronics") or (goods == "fertiliser" and variant == "bags_on_pallet"):
        p.update(ux=float(u(1.0, 1.2)), uz=float(u(1.0, 1.15)), uy=float(u(1.5, 2.2)))
        if rng.random() < 0.25:  # short pallets, double-stacked
            p.update(uy=float(u(1.0, 1.15)), levels=2.0)
        p.update(carton_w=float(u(0.3, 0.6)), carton_h=float(u(0.18, 0.32)))
    if goods == "fruit":
        radius = {"dragon_fruit": 0.05, "lychee": 0.018, "durian": 0.1, "banana": 0.1, "mango": 0.05,
                  "cabbage": 0.085}[variant]  # fmt: skip
        p.update(radius=radius * float(u(0.85, 1.15)), elong=3.5 if variant == "banana" else 1.3 if variant == "mango"
                 else 1.0, pack=float(u(0.35, 0.5)), contrast=float(u(0.35, 0.6)))
    elif goods == "seafood":
        p.update(pack=float(u(0.7, 0.85)), block_w=float(u(0.35, 0.6)), block_h=float(u(0.08, 0.18)),
                 fish_len=0.04 if variant == "shrimp" else float(u(0.15, 0.35)), contrast=float(u(0.06, 0.14)))
    elif goods == "electronics":
        p.update(pack=float(u(0.05, 0.12)), metal_density=float(u(80, 300)), pcb_share=float(u(0.3, 0.8)))
    elif goods in ("fertiliser", "coke") and variant == "jumbo_bags":
        p.update(ux=float(u(0.9, 1.05)), uz=float(u(0.9, 1.1)), uy=float(u(0.85, 1.15)),
                 levels=2.0 if rng.random() < 0.4 else 1.0, gap=float(u(0.0, 0.05)),
                 pack=float(u(0.55, 0.65)) if goods == "fertiliser" else float(u(0.45, 0.55)),
                 lump=float(u(0.02, 0.06)), contrast=float(u(0.4, 0.7)) if goods == "coke" else float(u(0.03, 0.08)))
    elif goods == "fertiliser":
        p.update(bag_h=float(u(0.11, 0.16)), pack=float(u(0.55, 0.65)))
    elif goods == "chemicals":
        if variant == "ibc":
            p.update(ux=1.2, uz=1.0, uy=1.16, levels=2.0 if rng.random() < 0.3 else 1.0, liquid=float(u(0.75, 0.95)))
        else:
            p.update(ux=0.6, uz=0.585, uy=1.03, levels=2.0 if rng.random() < 0.6 else 1.0, gap=0.01,
                     liquid=float(u(0.85, 0.95)))
    elif goods == "parcels":
        p.update(slabs=float(rng.integers(3, 6)), top=float(u(1.5, 2.3)), box_min=float(u(0.15, 0.25)),
                 box_max=float(u(0.45, 0.75)))
    if rng.random() < 0.3:
        p["last_count"] = 1.0  # the last stack is only one unit deep (odd quantity)
    return p


def plan_units(goods: str, variant: str, region: Region, params: dict[str, float], fill: float,
               layout_seed: int, payload_kg: float, first_index: int = 0) -> list[Stack]:
    """Lay units out in ``region`` from its front, over ``fill`` of its length, within ``payload_kg``.

    Deterministic for given arguments. Stacks are ordered front to back, bottom to top.
    """
    if goods not in GOODS:
        raise SimulationError(f"unknown goods class {goods!r}; known: {', '.join(GOODS_CLASSES)}")
    length = max(0.0, (region.x1 - region.x0) * min(max(fill, 0.0), 1.0))
    height = region.y1 - region.y0
    if length <= 0.05 or height <= 0.1:
        return []
    kg = unit_kg(goods, variant)
    if goods == "parcels":
        return _plan_parcels(region, params, length, layout_seed, first_index)
    if goods == "fertiliser" and variant == "bags_on_pallet":
        params = {**params, "uy": min(params.get("uy", 1.6), 1.6)}
    ux, uz, uy = params.get("ux", 1.1), params.get("uz", 1.1), params.get("uy", 1.6)
    gap = params.get("gap", 0.03)
    n_across = max(1, int((region.depth + 1e-6) // uz))
    n_x = max(1, int((length + gap + 1e-6) // (ux + gap)))
    n_y = max(1, min(int(params.get("levels", 1)), int(height // uy) or 1))
    uy = min(uy, height / n_y)
    stacks: list[Stack] = []
    for ix in range(n_x):
        x0 = region.x0 + ix * (ux + gap)
        for iy in range(n_y):
            y0 = region.y0 + iy * uy
            stacks.append(Stack(x0, x0 + ux, y0, y0 + uy, n_across, uz, region.container, 0, iy))
    if params.get("last_count", 0) >= 1 and stacks and n_across > 1:
        last = stacks[-1]
        stacks[-1] = Stack(last.x0, last.x1, last.y0, last.y1, n_across - 1, uz, last.container, 0, last.level)
    total = sum(s.count for s in stacks) * kg
    while stacks and total > payload_kg:  # heavy goods: remove from the back, top first
        s = stacks[-1]
        if s.count > 1:
            stacks[-1] = Stack(s.x0, s.x1, s.y0, s.y1, s.count - 1, s.unit_depth, s.container, 0, s.level)
        else:
            stacks.pop()
        total -= kg
    return [Stack(s.x0, s.x1, s.y0, s.y1, s.count, s.unit_depth, s.container, first_index + i, s.level, s.tag)
            for i, s in enumerate(stacks)]


def _plan_parcels(region: Region, p: dict[str, float], length: float, seed: int, first: int) -> list[Stack]:
    rng = np.random.default_rng([seed, 0xB0C5])
    slabs = max(1, int(p.get("slabs", 4)))
    slab_depth = region.depth / slabs
    top = min(region.y1, region.y0 + p.get("top", 2.0))
    lo, hi = p.get("box_min", 0.2), p.get("box_max", 0.6)
    weights = np.array([3, 2, 1.5, 1, 2, 0.8, 1.5, 1.2])
    weights = weights / weights.sum()
    out: list[Stack] = []
    for z in range(slabs):
        x = region.x0 + float(rng.uniform(0, 0.1))
        while x < region.x0 + length - lo * 0.5:
            col_w = float(min(rng.uniform(lo, hi), region.x0 + length - x))
            y = region.y0
            col_top = top - float(rng.uniform(0, 0.35))
            while y < col_top - 0.08:
                bh = float(min(rng.uniform(lo * 0.7, hi * 0.8), col_top - y))
                bw = col_w * float(rng.uniform(0.75, 1.0))
                bx = x + float(rng.uniform(0, col_w - bw))
                depth = slab_depth * float(rng.uniform(0.6, 1.0))
                tag = str(rng.choice(PARCEL_CONTENTS, p=weights))
                out.append(Stack(bx, bx + bw, y, y + bh, 1, depth, region.container, first + len(out), z, tag))
                y += bh + float(rng.uniform(0.0, 0.02))
            x += col_w + float(rng.uniform(0.0, 0.05))
    return out


# ---------------------------------------------------------------------------------------------
# Renderers
# ---------------------------------------------------------------------------------------------

PALLET_H = 0.144


def _pallet(layer: Layer, s: Stack, y0: float | None = None, depth_cm: float | None = None) -> float:
    """A wooden pallet under a stack; returns the height of its top deck."""
    y = s.y0 if y0 is None else y0
    d = s.count * s.unit_depth * 100.0 if depth_cm is None else depth_cm
    layer.add_box(s.x0, s.x1, y + PALLET_H - 0.022, y + PALLET_H, "wood", d * 0.85)  # top deck, edge-on
    layer.add_box(s.x0, s.x1, y, y + 0.022, "wood", d * 0.45)  # bottom boards
    w = s.x1 - s.x0
    for bx in (s.x0, s.x0 + w / 2 - 0.05, s.x1 - 0.1):  # blocks; the fork openings between stay light
        layer.add_box(bx, bx + 0.1, y + 0.022, y + PALLET_H - 0.022, "wood", d * 0.35)
    return y + PALLET_H


def _cartons(layer: Layer, r0: int, c0: int, h: int, w: int, x0: float, y0_top: float, cw: float, ch: float,
             depth_cm: float) -> np.ndarray:
    """Cardboard path (cm) of a carton wall grid over a patch (walls parallel to the beam show as lines)."""
    g = layer.grid
    colp = line_profile(w, g.col(x0) - c0, cw / g.col_m, 0.008 / g.col_m)
    rowp = line_profile(h, g.row(y0_top) - r0, ch / g.row_m, 0.008 / g.row_m)
    lines = 1.0 - (1.0 - colp)[None, :] * (1.0 - rowp)[:, None]
    across = max(1.0, depth_cm / 40.0)  # cartons across the beam: two walls each, facing the beam
    return (lines * np.float32(depth_cm * 0.25) + np.float32(across * 0.8)).astype(np.float32)


def _render_palletised(layer: Layer, goods: str, variant: str, stacks: Sequence[Stack], p: dict[str, float],
                       rng: np.random.Generator) -> None:
    g = layer.grid
    for s in stacks:
        depth_cm = s.count * s.unit_depth * 100.0 * 0.92
        yb = _pallet(layer, s)
        y_top = s.y1 - float(rng.uniform(0.0, 0.1))
        pt = layer.patch(s.x0, s.x1, yb, y_top)
        if pt is None:
            continue
        r0, c0, X, Y = pt
        h, w = Y.shape[0], X.shape[1]
        seed = int(rng.integers(2**31))
        srng = np.random.default_rng(seed)
        if goods == "fruit":
            rad = p.get("radius", 0.05)
            el = p.get("elong", 1.0)
            a, b = rad * math.sqrt(el), rad / math.sqrt(el)
            field = np.zeros((h, w), np.float32)
            for _layer in range(2):
                ang = float(srng.uniform(-0.4, 0.4)) if el > 1.5 else 0.0
                rows, cols = lattice(h, w, 2.1 * a / g.col_m, 1.9 * b / g.row_m, 0.12, srng)
                field += stamp((h, w), rows, cols, ellipsoid_kernel(g, a, b, 2 * rad * 100, ang))
            tex = normalise_mean(field)
            c = p.get("contrast", 0.5)
            t = np.float32(depth_cm * p.get("pack", 0.4)) * (np.float32(1 - c) + np.float32(c) * tex)
            layer.add(r0, c0, t, "organic")
            layer.add(r0, c0, _cartons(layer, r0, c0, h, w, s.x0, y_top, p.get("carton_w", 0.4),
                                       p.get("carton_h", 0.25), depth_cm), "cardboard")
        elif goods == "seafood":
            bw, bh = p.get("block_w", 0.5), p.get("block_h", 0.12)
            fl = p.get("fish_len", 0.25)
            field = np.zeros((h, w), np.float32)
            for ang in (0.0, 0.3, -0.3, 1.2):
                rows, cols = lattice(h, w, 1.3 * fl / g.col_m, 0.9 * fl / 3 / g.row_m, 0.4, srng, hexagonal=False)
                field += stamp((h, w), rows, cols, ellipsoid_kernel(g, fl / 2, fl / 7, fl / 4 * 100, ang))
            tex = normalise_mean(field)
            c = p.get("contrast", 0.1)
            gaps = 1.0 - (1.0 - line_profile(w, g.col(s.x0) - c0, bw / g.col_m, 0.012 / g.col_m))[None, :] \
                * (1.0 - line_profile(h, g.row(y_top) - r0, bh / g.row_m, 0.01 / g.row_m))[:, None]
            t = np.float32(depth_cm * p.get("pack", 0.8)) * (1 - c + c * tex) * (1.0 - 0.3 * gaps)
            layer.add(r0, c0, (t * 0.55).astype(np.float32), "ice")
            layer.add(r0, c0, (t * 0.45).astype(np.float32), "organic")
            layer.add(r0, c0, _cartons(layer, r0, c0, h, w, s.x0, y_top, bw, bh * 2, depth_cm) * 0.5, "cardboard")
        elif goods == "electronics":
            _render_electronics(layer, variant, s, p, r0, c0, X, Y, y_top, depth_cm, srng)
        else:  # fertiliser on pallets: 50 kg bags lying flat, seen as rows of pillows
            bag_h = p.get("bag_h", 0.13)
            v = ((g.row(y_top) - r0 - np.arange(h, dtype=np.float32) - 0.5) * g.row_m / bag_h) % 1.0
            prof_r = np.sqrt(np.clip(1 - (2 * v - 1) ** 4, 0, None))[:, None]
            u = (X - s.x0) / (s.x1 - s.x0) * 2 - 1
            prof_c = np.sqrt(np.clip(1 - np.abs(u) ** 8, 0, None))
            grain = layer.noise_at(0.004, 1, r0, c0, h, w)
            t = np.float32(depth_cm * p.get("pack", 0.6)) * prof_r * prof_c * (1 + np.float32(0.04) * grain)
            layer.add(r0, c0, t.astype(np.float32), "fertiliser")
            layer.add(r0, c0, (prof_r * prof_c * np.float32(0.6)).astype(np.float32), "plastic")


def _render_electronics(layer: Layer, variant: str, s: Stack, p: dict[str, float], r0: int, c0: int,
                        X: np.ndarray, Y: np.ndarray, y_top: float, depth_cm: float, rng: np.random.Generator) -> None:
    g = layer.grid
    h, w = Y.shape[0], X.shape[1]
    cw, ch = p.get("carton_w", 0.4), p.get("carton_h", 0.25)
    layer.add(r0, c0, _cartons(layer, r0, c0, h, w, s.x0, y_top, cw, ch, depth_cm), "cardboard")
    # foam / plastic trays: low density, uniform with a little structure
    base = np.float32(depth_cm * p.get("pack", 0.08)) * (1 + np.float32(0.15) * layer.noise_at(0.03, 11, r0, c0, h, w))
    layer.add(r0, c0, base.astype(np.float32), "plastic")
    # inside each carton: items on shelves (PCBs / reels seen edge-on as lines, devices as rectangles)
    u = ((X - s.x0) % cw) / cw
    v = ((y_top - Y) % ch) / ch
    inside = ((u > 0.08) & (u < 0.92)).astype(np.float32) * ((v > 0.1) & (v < 0.9)).astype(np.float32)
    n_across = max(1.0, depth_cm / 40.0)
    if variant == "pcb_assemblies":
        shelf = line_profile(h, g.row(y_top) - r0 + 0.2 * ch / g.row_m, ch / 4 / g.row_m, 0.003 / g.row_m)
        layer.add(r0, c0, (shelf[:, None] * inside * np.float32(n_across * 25 * p.get("pcb_share", 0.5))), "pcb")
        layer.add(r0, c0, (shelf[:, None] * inside * np.float32(n_across * 1.5)), "copper")
    elif variant == "ic_reels":
        reel = line_profile(w, g.col(s.x0) - c0, 0.018 / g.col_m, 0.004 / g.col_m)  # reels standing on edge
        layer.add(r0, c0, (reel[None, :] * inside * np.float32(n_across * 8)), "plastic")
        hub = ((np.abs(v - 0.5) < 0.08).astype(np.float32) * inside)
        layer.add(r0, c0, hub * np.float32(n_across * 1.2), "aluminium")
    else:  # devices: housings with a battery and a metal frame
        du = (u * 3) % 1.0
        dev = ((du > 0.1) & (du < 0.9)).astype(np.float32) * inside
        layer.add(r0, c0, dev * np.float32(n_across * 3.0), "plastic")
        bat = ((du > 0.3) & (du < 0.7) & (v > 0.3) & (v < 0.7)).astype(np.float32) * inside
        layer.add(r0, c0, bat * np.float32(n_across * 0.8), "aluminium")
        layer.add(r0, c0, bat * np.float32(n_across * 0.15), "copper")
    # small metal parts: screws, connectors, shielding cans
    area = (s.x1 - s.x0) * (s.y1 - s.y0)
    n = int(rng.poisson(p.get("metal_density", 150) * area))
    if n:
        rows = rng.uniform(0, h, n)
        cols = rng.uniform(0, w, n)
        k = ellipsoid_kernel(g, 0.008, 0.006, 1.2)
        wts = rng.uniform(0.5, 2.0, n).astype(np.float32) * np.float32(min(n_across, 3))
        layer.add(r0, c0, stamp((h, w), rows, cols, k, wts), "steel")


def _render_bags(layer: Layer, goods: str, stacks: Sequence[Stack], p: dict[str, float],
                 rng: np.random.Generator) -> None:
    g = layer.grid
    material = "fertiliser" if goods == "fertiliser" else "coke"
    for s in stacks:
        depth_cm = s.count * s.unit_depth * 100.0
        pt = layer.patch(s.x0 - 0.03, s.x1 + 0.03, s.y0, s.y1 + 0.05)
        if pt is None:
            continue
        r0, c0, X, Y = pt
        h, w = Y.shape[0], X.shape[1]
        seed = int(rng.integers(2**31))
        srng = np.random.default_rng(seed)
        xc, half = (s.x0 + s.x1) / 2, (s.x1 - s.x0) / 2 + 0.02
        u = (X - xc) / half
        # the top of a filled bag slumps and is irregular
        top = s.y1 - 0.06 * np.abs(u) ** 2 + 0.025 * layer.noise_at(0.15, 1, r0, c0, 1, w)
        v = (Y - s.y0) / np.maximum(top - s.y0, 0.05)
        prof = np.sqrt(np.clip(1 - np.abs(u) ** 6, 0, None)) * np.sqrt(np.clip(1 - np.abs(2 * v - 1) ** 8, 0, None))
        prof = prof * (v >= 0) * (v <= 1)
        c = p.get("contrast", 0.05)
        if goods == "coke":
            field = np.zeros((h, w), np.float32)
            lump = p.get("lump", 0.04)
            for scale_ in (0.6, 1.0, 1.8):
                rr = lump * scale_
                n = int(h * w * g.row_m * g.col_m / (rr * rr) * 0.9)
                if n <= 0:
                    continue
                rows, cols = srng.uniform(0, h, n), srng.uniform(0, w, n)
                ang = float(srng.uniform(0, math.pi))
                field += stamp((h, w), rows, cols, ellipsoid_kernel(g, rr * 1.3, rr * 0.8, rr * 100, ang))
            tex = normalise_mean(field)
        else:
            tex = 1 + layer.noise_at(0.004, 1, r0, c0, h, w)
        t = np.float32(depth_cm * p.get("pack", 0.55)) * prof * (1 - c + c * tex)
        layer.add(r0, c0, t.astype(np.float32), material)
        layer.add(r0, c0, (prof * np.float32(s.count * 0.8)).astype(np.float32), "plastic")  # woven PP fabric


def _render_chemicals(layer: Layer, variant: str, stacks: Sequence[Stack], p: dict[str, float],
                      rng: np.random.Generator) -> None:
    g = layer.grid
    liquid = p.get("liquid", 0.9)
    for s in stacks:
        n = s.count
        if variant == "ibc":
            layer.add_box(s.x0, s.x1, s.y0, s.y0 + 0.15, "steel", n * 6.0)  # steel/plastic pallet base
            ty0, ty1 = s.y0 + 0.15, s.y1 - 0.05
            level = ty0 + (ty1 - ty0) * liquid * float(rng.uniform(0.95, 1.02))
            layer.add_box(s.x0 + 0.04, s.x1 - 0.04, ty0, min(level, ty1), "chemical", n * s.unit_depth * 100 * 0.92)
            layer.add_box(s.x0 + 0.04, s.x1 - 0.04, ty0, ty1, "plastic", n * 0.4)
            for edge in (s.x0 + 0.04, s.x1 - 0.05):
                layer.add_box(edge, edge + 0.01, ty0, ty1, "plastic", n * s.unit_depth * 100 * 0.2)
            # cage: tubes every 15 cm (vertical) and 20 cm (horizontal) on both faces
            pt = layer.patch(s.x0, s.x1, ty0, s.y1)
            if pt is not None:
                r0, c0, X, Y = pt
                h, w = Y.shape[0], X.shape[1]
                colp = line_profile(w, g.col(s.x0) - c0, 0.15 / g.col_m, 0.02 / g.col_m)
                rowp = line_profile(h, g.row(s.y1) - r0, 0.2 / g.row_m, 0.02 / g.row_m)
                cage = 1 - (1 - colp)[None, :] * (1 - rowp)[:, None]
                layer.add(r0, c0, (cage * np.float32(n * 2 * 0.35)).astype(np.float32), "steel")
            layer.add_box(s.x0 + 0.5, s.x0 + 0.7, s.y1 - 0.06, s.y1, "plastic", n * 12.0)  # lid
            layer.add_box(s.x0 + 0.05, s.x0 + 0.15, s.y0 + 0.15, s.y0 + 0.28, "steel", n * 3.0)  # outlet valve
            continue
        # drums, axis vertical: path through a cylinder of radius R at offset u is 2 sqrt(R^2 - u^2)
        steel = variant == "steel_drums"
        yb = _pallet(layer, s, depth_cm=n * s.unit_depth * 100)
        dy0, dy1 = yb, min(s.y1, yb + 0.88)
        pt = layer.patch(s.x0, s.x1, dy0, dy1)
        if pt is None:
            continue
        r0, c0, X, Y = pt
        R = 0.2925
        shell = 0.0012 if steel else 0.004
        xc = (s.x0 + s.x1) / 2
        du = np.abs(X - xc)
        outer = 2 * np.sqrt(np.clip(R * R - du * du, 0, None))
        inner = 2 * np.sqrt(np.clip((R - shell) ** 2 - du * du, 0, None))
        level = dy0 + (dy1 - dy0) * liquid * float(rng.uniform(0.97, 1.02))
        hw = (Y.shape[0], X.shape[1])
        wet = np.less(Y, level).astype(np.float32)
        layer.add(r0, c0, (wet * inner * np.float32(n * 100)).astype(np.float32), "chemical")
        layer.add(r0, c0, (np.broadcast_to(outer - inner, hw) * np.float32(n * 100)).astype(np.float32),
                  "steel" if steel else "plastic")
        ends = layer.patch(s.x0, s.x1, dy0, dy1)
        if ends is not None:  # heads and, for steel drums, the two rolling hoops
            rr0, cc0, _X2, _Y2 = ends
            h = _Y2.shape[0]
            starts = [g.row(dy1) - rr0, g.row(dy0 + 0.012) - rr0]
            widths = [0.012, 0.012]
            if steel:
                starts += [g.row(dy0 + (dy1 - dy0) * f + 0.006) - rr0 for f in (1 / 3, 2 / 3)]
                widths += [0.006, 0.006]
            rows_cov = interval_coverage(h, np.array(starts), np.array(starts) + np.array(widths) / g.row_m)
            material = "steel" if steel else "plastic"
            layer.add(rr0, cc0, (rows_cov[:, None] * outer * np.float32(n * 100 * (0.25 if steel else 0.5)))
                      .astype(np.float32), material)


def _render_parcels(layer: Layer, stacks: Sequence[Stack], rng: np.random.Generator) -> None:
    g = layer.grid
    for s in stacks:
        pt = layer.patch(s.x0, s.x1, s.y0, s.y1)
        if pt is None:
            continue
        r0, c0, X, Y = pt
        h, w = Y.shape[0], X.shape[1]
        d = s.unit_depth * 100.0
        # carton: faces across the beam plus walls seen edge-on at the box edges
        layer.add_box(s.x0, s.x1, s.y0, s.y1, "cardboard", 0.8)
        for e0, e1 in ((s.x0, s.x0 + 0.005), (s.x1 - 0.005, s.x1)):
            layer.add_box(e0, e1, s.y0, s.y1, "cardboard", d * 0.5)
        for e0, e1 in ((s.y0, s.y0 + 0.005), (s.y1 - 0.005, s.y1)):
            layer.add_box(s.x0, s.x1, e0, e1, "cardboard", d * 0.5)
        bw, bh = s.x1 - s.x0, s.y1 - s.y0
        u = (X - s.x0) / bw
        v = (Y - s.y0) / bh
        tag = s.tag
        glassy = bool(rng.random() < 0.33)  # one draw per box keeps the stream stable across content types
        if tag == "clothes":
            t = np.float32(d * 0.12) * (1 + np.float32(0.35) * layer.noise_at(0.03, 3, r0, c0, h, w))
            layer.add(r0, c0, np.clip(t, 0, None).astype(np.float32), "organic")
        elif tag == "books":
            inner = ((u > 0.05) & (u < 0.95) & (v > 0.05) & (v < 0.9)).astype(np.float32)
            pages = 1 - 0.15 * line_profile(h, float(rng.uniform(0, 5)), 0.03 / g.row_m, 0.004 / g.row_m)[:, None]
            layer.add(r0, c0, (inner * pages * np.float32(d * 0.75)).astype(np.float32), "paper")
        elif tag == "food":
            grain = layer.noise_at(0.006, 5, r0, c0, h, w)
            inner = ((v > 0.02) & (v < 0.85)).astype(np.float32)
            layer.add(r0, c0, (inner * np.float32(d * 0.3) * (1 + np.float32(0.2) * grain)).astype(np.float32),
                      "organic")
        elif tag == "bottles":
            n_b = max(1, int(bw / 0.09))
            pitch = bw / n_b
            uu = ((X - s.x0) % pitch) / pitch * 2 - 1
            chord = np.sqrt(np.clip(1 - uu * uu, 0, None)) * np.float32(pitch * 0.9 * 100)
            fill = (v < min(0.9, 0.3 / bh + 0.1)).astype(np.float32)
            layer.add(r0, c0, (chord * fill * np.float32(max(1.0, d / 9.0) * 0.8)).astype(np.float32), "organic")
            layer.add(r0, c0, (np.broadcast_to(chord, (h, w)) * np.float32(0.05 * max(1.0, d / 9.0)))
                      .astype(np.float32), "glass" if glassy else "plastic")
        elif tag == "shoes":
            for k in range(int(max(1, bw / 0.15))):
                cx = s.x0 + (k + 0.5) * bw / max(1, int(max(1, bw / 0.15)))
                k_t = np.sqrt(np.clip(1 - ((X - cx) / 0.06) ** 2 - ((Y - s.y0 - 0.06) / 0.05) ** 2, 0, None))
                layer.add(r0, c0, (k_t * np.float32(min(d, 30) * 0.6)).astype(np.float32), "rubber")
        elif tag == "gadgets":
            inner = ((u > 0.2) & (u < 0.8) & (v > 0.2) & (v < 0.6)).astype(np.float32)
            layer.add(r0, c0, inner * np.float32(4.0), "plastic")
            layer.add(r0, c0, inner * np.float32(0.6), "aluminium")
            bat = ((u > 0.35) & (u < 0.55) & (v > 0.3) & (v < 0.45)).astype(np.float32)
            layer.add(r0, c0, bat * np.float32(0.4), "copper")
            layer.add(r0, c0, ((v > 0.02) & (v < 0.15)).astype(np.float32) * np.float32(d * 0.1), "plastic")
        elif tag == "tools":  # wrenches and the like: long steel parts (a benign look-alike for TIP threats)
            for _k in range(int(rng.integers(1, 4))):
                ang = float(rng.uniform(0, math.pi))
                ln = min(bw, bh, 0.3) * float(rng.uniform(0.6, 1.0))
                cx, cy = s.x0 + bw * float(rng.uniform(0.3, 0.7)), s.y0 + bh * float(rng.uniform(0.3, 0.7))
                dx, dy = math.cos(ang) * ln / 2, math.sin(ang) * ln / 2
                layer.add_poly([(cx - dx, cy - dy), (cx + dx, cy + dy)], "steel", 1.0, line_m=0.015)
        else:  # toys: plastic shapes
            t = np.clip(layer.noise_at(0.05, 7, r0, c0, h, w), 0, None) * np.float32(d * 0.15)
            layer.add(r0, c0, t.astype(np.float32), "plastic")


def render_stacks(layer: Layer, goods: str, variant: str, stacks: Sequence[Stack], params: dict[str, float],
                  rng: np.random.Generator) -> None:
    """Draw ``stacks`` of ``goods`` into ``layer`` (path lengths along the beam, per material)."""
    if not stacks:
        return
    if goods in ("fruit", "seafood", "electronics") or (goods == "fertiliser" and variant == "bags_on_pallet"):
        _render_palletised(layer, goods, variant, stacks, params, rng)
    elif goods in ("fertiliser", "coke"):
        _render_bags(layer, goods, stacks, params, rng)
    elif goods == "chemicals":
        _render_chemicals(layer, variant, stacks, params, rng)
    elif goods == "parcels":
        _render_parcels(layer, stacks, rng)
    else:
        raise SimulationError(f"unknown goods class {goods!r}; known: {', '.join(GOODS_CLASSES)}")


# ---------------------------------------------------------------------------------------------
# Threat shapes (TIP)
# ---------------------------------------------------------------------------------------------

Part = tuple[str, float, list[tuple[float, float]], float]  # material, cm, polygon (metres), line width (0: fill)

PISTOL: list[Part] = [
    ("plastic", 2.8, [(0.02, 0.075), (0.165, 0.075), (0.165, 0.095), (0.02, 0.095)], 0.0),  # frame
    ("plastic", 3.0, [(0.12, 0.08), (0.165, 0.08), (0.19, -0.02), (0.145, -0.03)], 0.0),  # grip
    ("steel", 2.0, [(0.13, 0.07), (0.157, 0.07), (0.178, -0.015), (0.152, -0.022)], 0.0),  # magazine
    ("steel", 2.4, [(0.0, 0.095), (0.19, 0.095), (0.19, 0.128), (0.0, 0.128)], 0.0),  # slide
    ("steel", 1.2, [(0.07, 0.075), (0.065, 0.045), (0.11, 0.04), (0.125, 0.07)], 0.006),  # trigger guard
]
RIFLE: list[Part] = [
    ("steel", 1.6, [(0.0, 0.0), (0.42, 0.0), (0.42, 0.02), (0.0, 0.02)], 0.0),  # barrel
    ("wood", 4.0, [(0.2, -0.012), (0.42, -0.012), (0.42, 0.035), (0.2, 0.03)], 0.0),  # handguard
    ("steel", 3.5, [(0.42, -0.03), (0.7, -0.03), (0.7, 0.04), (0.42, 0.04)], 0.0),  # receiver
    ("steel", 2.8, [(0.47, -0.03), (0.55, -0.03), (0.6, -0.2), (0.53, -0.225)], 0.0),  # magazine
    ("plastic", 3.0, [(0.65, -0.03), (0.69, -0.03), (0.715, -0.13), (0.675, -0.13)], 0.0),  # pistol grip
    ("wood", 4.0, [(0.7, -0.02), (0.7, 0.04), (0.96, 0.02), (0.96, -0.1)], 0.0),  # stock
]
WEAPONS: dict[str, list[Part]] = {"pistol": PISTOL, "rifle": RIFLE}


def transform_parts(parts: Sequence[Part], cx: float, cy: float, angle: float, scale: float,
                    flip: bool) -> list[Part]:
    """Parts moved so their bounding-box centre is at (cx, cy), rotated, scaled and optionally mirrored."""
    pts = np.array([p for part in parts for p in part[2]], np.float64)
    mx, my = (pts[:, 0].min() + pts[:, 0].max()) / 2, (pts[:, 1].min() + pts[:, 1].max()) / 2
    ca, sa = math.cos(angle), math.sin(angle)
    out: list[Part] = []
    for material, cm, poly, line in parts:
        new = []
        for x, y in poly:
            u, v = (x - mx) * scale, (y - my) * scale
            if flip:
                u = -u
            new.append((cx + u * ca - v * sa, cy + u * sa + v * ca))
        out.append((material, cm, new, line * scale))
    return out


def parts_extent(parts: Sequence[Part]) -> tuple[float, float, float, float]:
    pts = np.array([p for part in parts for p in part[2]], np.float64)
    pad = max((part[3] for part in parts), default=0.0)
    return (float(pts[:, 0].min() - pad), float(pts[:, 0].max() + pad), float(pts[:, 1].min() - pad),
            float(pts[:, 1].max() + pad))


def draw_parts(layer: Layer, parts: Sequence[Part]) -> None:
    for material, cm, poly, line in parts:
        layer.add_poly(poly, material, cm, line_m=line)


def draw_contraband(layer: Layer, x0: float, x1: float, y0: float, y1: float, depth_cm: float,
                    rng: np.random.Generator) -> None:
    """Bricks of dense organic packages (drugs, cigarettes) packed into a compartment."""
    bw, bh = float(rng.uniform(0.15, 0.3)), float(rng.uniform(0.05, 0.1))
    dens = float(rng.uniform(0.6, 0.9))
    y = y0 + 0.005
    while y + bh * 0.5 < y1:
        x = x0 + 0.005
        while x + bw * 0.5 < x1:
            if rng.random() < 0.9:
                layer.add_box(x, min(x + bw - 0.01, x1), y, min(y + bh - 0.008, y1), "organic", depth_cm * dens)
                layer.add_box(x, min(x + bw - 0.01, x1), y, min(y + bh - 0.008, y1), "plastic", 0.6)
            x += bw
        y += bh
