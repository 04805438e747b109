"""Manifest consistency: does the scan look like the declared goods and quantity?

Task ``xray-consistency`` in the model store (US 10,422,919-style "probability that the scan
matches the declared cargo", InteliATE-style count check; ../shared/ANCHORS.md section 6).

The descriptor (``compute_descriptor``; ``DESCRIPTOR_NAMES``, D = 75; 20-30 ms for a 40' scan)
    Computed with numpy/OpenCV from the calibrated attenuation inside the found containers'
    interiors (``regions.find_containers``; ``cargo_interior`` with a small end margin, since loads
    start at the front wall, and never lower than ``FLOOR_M`` under the roof), after resampling to
    the model's pixel pitch (``MODEL_ROW_M`` x ``MODEL_COL_M``: the simulator at scale 0.5). *Load
    pixels* are interior pixels whose high-energy attenuation is above ``LOAD`` (the two side walls
    of an empty container stay under it); *loaded columns* hold load over at least 15 % of the
    interior height (gaps under 15 cm closed). Parts, pooled over the containers:

    ``att_0..11``    histogram of high-energy attenuation over load pixels (fractions; bins
                     ``ATT_EDGES``; the last holds photon-starved pixels),
    ``ratio_0..11``  histogram of the dual-energy ratio low/high over load pixels above 0.5
                     (``RATIO_EDGES``: organic ~1.1, inorganic 1.2-1.36, metal above 1.6),
    ``vfill_0..9``   the vertical fill profile: share of load pixels per tenth of the interior
                     height (top to bottom), over the loaded columns,
    material         ``fill`` (load pixels / interior), ``att_mean/std/p10/p50/p90``, ``starved``
                     (share >= ``STARVED``), ``ratio_mean`` (sum low / sum high), ``ratio_std``,
    texture          ``laplacian`` (mean |Laplacian|), ``local_std`` (5x5) and ``coarse_std`` (5x5 on
                     a 4x smaller image), each over the mean attenuation; ``edges_x/_y``: share of
                     load pixels on a strong step across / along the scan (unit and box outlines),
    size             ``length_m`` (front to back of the load, summed over containers),
                     ``occupied_m`` (loaded columns only), ``length_share``, ``height_m`` and
                     ``height_share`` of the load, ``containers``, ``interior_m``,
    units            ``levels``: units stacked, 1 + the deep narrow valleys (pallet bands) of the
                     median row profile, counted per metre of length and averaged (a payload-limited
                     load is one level high at the back); ``period_fill_m`` / ``period_mean_m``:
                     the unit repeat along the length, 0.5-1.6 m, from the autocorrelation of the
                     column fill and of the column mean attenuation, with their strengths;
                     ``gaps_per_m`` between units; ``units_fill/_mean`` = length / period,
    mass             ``mass_high/_low``: attenuation above the wall level summed x pixel area (m2;
                     proportional to the mass for one material),
    logs             ``log_*`` of the size, level, mass, period, unit and edge cues (floored): the
                     quantity model is log-linear in them (a product of powers).

The model (``ConsistencyModel``; ONNX graph from ``build_graph``)
    ``descriptor`` float32 [N, D] -> ``probabilities`` [N, C] (standardisation + multinomial
    logistic regression) and ``quantity`` [N, C] (per class: exp of a linear function of the
    standardised descriptor; as fitted (appliance/training/xray_consistency.py), occupied length x
    levels x a per-class density, for some classes times a power of the unit period).

The scorer (``ConsistencyScorer``) gives per scan: the class probabilities, P(declared), the
predicted class, the estimated quantity for the declared class, ``goods_consistent`` (P(declared)
>= the model's ``goods`` threshold, chosen for a false-alarm rate of about 2 per 100 consistent
scans), ``quantity_consistent`` (|estimate - declared| / declared <= the declared class's quantity
tolerance) and a score 0..1 (0.5 = on a threshold; >= 0.5 only when both checks pass). A scan it cannot judge (no
container found, an empty container, an undeclared or unknown class) comes back ``decided=False``
with the reason, never "consistent"; malformed input (NaN, wrong shapes) raises ``ScanError``.
Single-energy scans (``low`` None) get a flat ratio (1.0): the model is fitted on dual-energy scans,
so its class probabilities are then out of their domain (the quantity terms do not use the ratio).

Quantity tolerances (manifest ``thresholds``)
    ``quantity_tolerance`` is the default (the declared +-20 %); ``quantity_tolerance.<class>``, one
    per goods class where the training chose one on validation (some classes' counts are noisier:
    parcels), overrides it for that class. A package without per-class keys (v1) checks every class
    at the default. ``tolerances_from_thresholds`` refuses a per-class key that names no class of
    ``labels`` or a value that is not a finite number in (0, ``MAX_TOLERANCE``].
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from appliance.errors import ModelError
from appliance.xray.regions import Box, cargo_interior, find_containers
from appliance.xray.scan import ScanError

TASK = "xray-consistency"
DESCRIPTOR_VERSION = 1  # bump when the descriptor changes: a model fitted on another version is refused
MODEL_ROW_M = 0.006  # the model's pixel pitch: rows (detector channels) ...
MODEL_COL_M = 0.008  # ... and columns (scan lines): the simulator at scale 0.5
LOAD = 0.3  # attenuation above which an interior pixel holds load (empty container walls: 0.06-0.2)
END_MARGIN = 0.015  # share of a found box's length cut at each end (the corner posts; the load starts at the front)
FLOOR_M = 2.40  # the interior ends this far under the roof: a standard container's floor is 2.43 m under it
STARVED = 7.0  # attenuation of photon-starved pixels (-ln(eps) is about 7.9 for a 16-bit scanner)
EMPTY_FILL = 0.02  # below this share of load pixels the container is empty
ATT_EDGES = np.array([0.3, 0.45, 0.65, 0.9, 1.25, 1.7, 2.3, 3.0, 3.8, 4.7, 5.7, 7.0, 1e9])
RATIO_EDGES = np.array([0.0, 0.97, 1.03, 1.07, 1.1, 1.13, 1.17, 1.22, 1.3, 1.4, 1.6, 2.0, 1e9])
PROFILE_BINS = 10
LEVEL_CHUNK_M = 1.0  # the levels are counted per metre of load length
PERIOD_M = (0.5, 1.6)  # unit period along the length searched (drums 0.6 m, pallets and bags ~1-1.3 m)

_SCALARS = (
    "fill", "att_mean", "att_std", "att_p10", "att_p50", "att_p90", "starved", "ratio_mean", "ratio_std",
    "laplacian", "local_std", "coarse_std", "length_m", "occupied_m", "length_share", "height_m",
    "height_share", "levels", "period_fill_m", "period_fill_strength", "period_mean_m",
    "period_mean_strength", "gaps_per_m", "mass_high", "mass_low", "units_fill", "units_mean", "containers",
    "interior_m", "edges_x", "edges_y", "log_length", "log_occupied", "log_levels", "log_height", "log_mass",
    "log_period_fill", "log_period_mean", "log_units_fill", "log_units_mean", "log_edges",
)  # fmt: skip
DESCRIPTOR_NAMES: tuple[str, ...] = (
    *(f"att_{i}" for i in range(len(ATT_EDGES) - 1)),
    *(f"ratio_{i}" for i in range(len(RATIO_EDGES) - 1)),
    *(f"vfill_{i}" for i in range(PROFILE_BINS)),
    *_SCALARS,
)
D = len(DESCRIPTOR_NAMES)


@dataclass
class Descriptor:
    vector: np.ndarray  # float32 [D], in DESCRIPTOR_NAMES order
    interiors: list[Box]  # the interiors it was computed on (pixels of the image it was given)
    fill: float  # share of load pixels in the interiors

    def named(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(DESCRIPTOR_NAMES, self.vector, strict=True)}

    @property
    def empty(self) -> bool:
        return self.fill < EMPTY_FILL


def _hist(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return np.zeros(len(edges) - 1)
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(idx, minlength=len(edges) - 1).astype(np.float64)
    return counts / counts.sum()


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    energy = float((x * x).sum())
    if energy <= 1e-12:
        return np.zeros(x.size)
    spectrum = np.fft.rfft(x, 2 * x.size)
    return np.asarray(np.fft.irfft(spectrum * np.conj(spectrum))[: x.size] / energy)


def _period(profiles: Sequence[np.ndarray], pitch_m: float) -> tuple[float, float]:
    """(period in metres, autocorrelation at it) of the unit repeat along the length: the first
    autocorrelation peak in ``PERIOD_M`` within 0.2 of the highest (not a multiple of it)."""
    lo, hi = round(PERIOD_M[0] / pitch_m), round(PERIOD_M[1] / pitch_m) + 2
    acc, weight = np.zeros(hi), 0.0
    for p in profiles:
        if p.size < lo + 4:
            continue
        a = _autocorrelation(p.astype(np.float64))[:hi]
        acc[: a.size] += a * p.size
        weight += p.size
    if weight == 0:
        return 0.0, 0.0
    seg = acc[lo:] / weight
    if seg.size < 3:
        return 0.0, 0.0
    peaks = np.flatnonzero((seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:])) + 1
    if peaks.size == 0:
        return 0.0, 0.0
    best = float(seg[peaks].max())
    first = int(peaks[np.flatnonzero(seg[peaks] >= best - 0.2 * abs(best))[0]])
    return (lo + first) * pitch_m, float(seg[first])


def _levels(profile: np.ndarray, pitch_m: float) -> int:
    """Stacked levels: 1 + the deep valleys (pallet bands) of the smoothed median row profile of
    the load, at least 0.7 m from each other and from the top of the load."""
    n = profile.size
    if n < 4:
        return 1 if n else 0
    k = max(1, round(0.06 / pitch_m))
    p = cv2.blur(profile.astype(np.float32)[:, None], (1, k), borderType=cv2.BORDER_REPLICATE)[:, 0]
    loaded = np.flatnonzero(p > LOAD)
    if loaded.size == 0:
        return 0
    top = int(loaded[0])
    near, far, spacing = round(0.1 / pitch_m), round(0.5 / pitch_m), round(0.7 / pitch_m)
    m = np.arange(top + spacing, n - near - 1)
    if m.size == 0:
        return 1
    csum = np.concatenate([[0.0], np.cumsum(p, dtype=np.float64)])
    a0 = np.maximum(top, m - far)  # the window above: [m - far, m - near), not above the load's top
    above = (csum[m - near] - csum[a0]) / np.maximum(m - near - a0, 1)
    b1 = m + far  # the window below: [m + near, m + far), inside the profile
    below = np.where(b1 <= n, (csum[np.minimum(b1, n)] - csum[m + near]) / (far - near), 0.0)
    ref = np.minimum(above, below)
    minimum = (p[m] <= p[m - 1]) & (p[m] <= p[m + 1])
    deep = minimum & (ref > LOAD) & (p[m] < 0.5 * ref) & (m - near > a0)
    chosen: list[int] = []
    for i in np.flatnonzero(deep)[np.argsort((p[m] / np.maximum(ref, 1e-6))[deep], kind="stable")]:
        if all(abs(int(m[i]) - c) >= spacing for c in chosen):
            chosen.append(int(m[i]))
    return 1 + len(chosen)


def _check_images(high: np.ndarray, low: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(high, np.ndarray) or high.ndim != 2 or min(high.shape) < 8:
        shape = getattr(high, "shape", None)
        raise ScanError(f"consistency: the attenuation image must be 2-D and at least 8 x 8 px, got shape {shape}")
    if low is not None and (not isinstance(low, np.ndarray) or low.shape != high.shape):
        raise ScanError(f"consistency: the low-energy image must have the high one's shape {high.shape}, got "
                        f"{getattr(low, 'shape', None)}")
    hi = np.asarray(high, np.float32)
    lo = hi if low is None else np.asarray(low, np.float32)
    for name, image in (("high", hi), ("low", lo)):
        if not np.isfinite(image).all():
            bad = int((~np.isfinite(image)).sum())
            raise ScanError(f"consistency: the {name}-energy attenuation has {bad} NaN/inf pixels; calibrate the "
                            "scan first (dark/air flat field gives finite attenuation)")
    return hi, lo


def resample(high: np.ndarray, low: np.ndarray | None, row_m: float, col_m: float,
             boxes: Sequence[Box] | None = None, *, target_row_m: float = MODEL_ROW_M,
             target_col_m: float = MODEL_COL_M) -> tuple[np.ndarray, np.ndarray, list[Box] | None]:
    """The images (and boxes) at the model's pixel pitch (area averaging when the scan is finer)."""
    if not (math.isfinite(row_m) and math.isfinite(col_m) and row_m > 0 and col_m > 0):
        raise ScanError(f"consistency: the pixel pitch must be positive metres, got row {row_m}, column {col_m}")
    hi, lo = _check_images(high, low)
    fy, fx = row_m / target_row_m, col_m / target_col_m
    if abs(fy - 1) < 0.02 and abs(fx - 1) < 0.02:
        return hi, lo, None if boxes is None else list(boxes)
    rows, cols = hi.shape
    size = (max(8, round(cols * fx)), max(8, round(rows * fy)))
    interp = cv2.INTER_AREA if fx < 1 and fy < 1 else cv2.INTER_LINEAR
    hi2 = np.asarray(cv2.resize(hi, size, interpolation=interp), np.float32)
    lo2 = hi2 if lo is hi else np.asarray(cv2.resize(lo, size, interpolation=interp), np.float32)
    sx, sy = size[0] / cols, size[1] / rows
    scaled = None if boxes is None else [(round(x * sx), round(y * sy), max(1, round(w * sx)), max(1, round(h * sy)))
                                         for x, y, w, h in boxes]
    return hi2, lo2, scaled


def compute_descriptor(high: np.ndarray, low: np.ndarray | None, boxes: Sequence[Box], row_m: float = MODEL_ROW_M,
                       col_m: float = MODEL_COL_M) -> Descriptor:
    """The descriptor of the load inside ``boxes`` (found container boxes, pixels of ``high``).

    ``high``/``low``: calibrated attenuation; ``row_m``/``col_m``: their pixel pitch in metres. The
    texture terms are only comparable at the model's pitch: use ``resample`` first (the scorer does).
    """
    hi_img, lo_img = _check_images(high, low)
    rows_total, cols_total = hi_img.shape
    interiors: list[Box] = []
    att_parts: list[np.ndarray] = []  # pixel statistics on every second row and column (speed)
    ratio_hi: list[np.ndarray] = []
    ratio_lo: list[np.ndarray] = []
    fill_profiles: list[np.ndarray] = []
    mean_profiles: list[np.ndarray] = []
    vprofile = np.zeros(PROFILE_BINS)
    loaded_cols = interior_px = load_px = 0
    length_m = occupied_m = interior_m = height_sum = height_share_sum = 0.0
    levels_sum = levels_cols = gaps = 0
    mass_high = mass_low = lap_sum = std_sum = coarse_sum = edges_x = edges_y = 0.0
    coarse_n = 0
    pixel_area = row_m * col_m
    for box in boxes:
        x, y, w, h = cargo_interior(box, end_margin=END_MARGIN)
        # a found box may reach down to the chassis: stop above the container's floor
        h = max(1, min(h, round(box[1] + FLOOR_M / row_m) - y))
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(cols_total, x + w), min(rows_total, y + h)
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        interiors.append((x0, y0, x1 - x0, y1 - y0))
        hi = np.ascontiguousarray(hi_img[y0:y1, x0:x1])
        lo = np.ascontiguousarray(lo_img[y0:y1, x0:x1])
        ih, iw = hi.shape
        mask = hi > LOAD
        interior_px += mask.size
        interior_m += iw * col_m
        n_load = int(np.count_nonzero(mask))
        load_px += n_load
        if n_load == 0:
            continue
        s_hi, s_lo, s_mask = hi[::2, ::2], lo[::2, ::2], mask[::2, ::2]
        # the wall level: what the two side walls alone attenuate (interior pixels without load)
        wall, wall_low = ((float(np.median(s_hi[~s_mask])), float(np.median(s_lo[~s_mask])))
                          if not s_mask.all() else (0.12, 0.12))
        col_fill = mask.mean(axis=0)
        close = max(3, round(0.15 / col_m))
        loaded = cv2.morphologyEx((col_fill > 0.15).astype(np.uint8)[None, :], cv2.MORPH_CLOSE,
                                  np.ones((1, close), np.uint8))[0] > 0
        idx = np.flatnonzero(loaded)
        if idx.size:
            c0, c1 = int(idx[0]), int(idx[-1]) + 1
            length_m += (c1 - c0) * col_m
            occupied_m += idx.size * col_m
            loaded_cols += idx.size
            row_fill = mask[:, loaded].mean(axis=1)
            edges = np.linspace(0, ih, PROFILE_BINS + 1).round().astype(int)
            vprofile += np.array([row_fill[a:b].mean() if b > a else 0.0
                                  for a, b in itertools.pairwise(edges)]) * idx.size
            top = np.flatnonzero(row_fill > 0.3)
            load_h = (ih - int(top[0])) * row_m if top.size else 0.0
            height_sum += load_h * (c1 - c0)
            height_share_sum += (load_h / (ih * row_m)) * (c1 - c0)
            fill_profiles.append(col_fill[c0:c1])
            mean_profiles.append(hi[:, c0:c1].mean(axis=0))
            # levels per metre of length (a heavy load is one level high at the back: units are
            # taken off the back, top first, to stay within the payload)
            chunk = max(8, round(LEVEL_CHUNK_M / col_m))
            for start in range(c0, c1, chunk):
                cols = idx[(idx >= start) & (idx < start + chunk)]
                if cols.size >= chunk // 3:
                    levels_sum += _levels(np.median(hi[:, cols[::2]], axis=1), row_m) * cols.size
                    levels_cols += cols.size
            # gaps between units: runs of (nearly) empty columns inside the load's extent
            inside = col_fill[c0:c1] < 0.5 * float(np.median(col_fill[loaded]))
            gaps += int(np.count_nonzero(np.diff(inside.astype(np.int8)) == 1))
        att_parts.append(s_hi[s_mask])
        ok = s_mask & (s_hi > 0.5)
        ratio_hi.append(s_hi[ok])
        ratio_lo.append(s_lo[ok])
        mass_high += float(np.where(mask, np.maximum(hi - wall, 0), 0).sum()) * pixel_area
        mass_low += float(np.where(mask, np.maximum(lo - wall_low, 0), 0).sum()) * pixel_area
        lap_sum += float(np.abs(cv2.Laplacian(hi, cv2.CV_32F, ksize=1))[mask].sum())
        mean = cv2.blur(hi, (5, 5))
        spread = np.sqrt(np.maximum(cv2.blur(hi * hi, (5, 5)) - mean * mean, 0))
        std_sum += float(spread[mask].sum())
        # edges (box and unit outlines): strong steps across and along the scan, relative to the load's level
        smooth = cv2.GaussianBlur(hi, (0, 0), 1.0)
        step = 0.5 * float(hi[mask].mean())
        edges_x += float(np.count_nonzero((np.abs(cv2.Sobel(smooth, cv2.CV_32F, 1, 0)) > step) & mask))
        edges_y += float(np.count_nonzero((np.abs(cv2.Sobel(smooth, cv2.CV_32F, 0, 1)) > step) & mask))
        if ih >= 16 and iw >= 16:
            small = cv2.resize(hi, (iw // 4, ih // 4), interpolation=cv2.INTER_AREA)
            sm = cv2.blur(small, (5, 5))
            ss = np.sqrt(np.maximum(cv2.blur(small * small, (5, 5)) - sm * sm, 0))
            small_mask = small > LOAD
            coarse_sum += float(ss[small_mask].sum())
            coarse_n += int(np.count_nonzero(small_mask))
    att = np.concatenate(att_parts) if att_parts else np.zeros(0, np.float32)
    rh = np.concatenate(ratio_hi) if ratio_hi else np.zeros(0, np.float32)
    rl = np.concatenate(ratio_lo) if ratio_lo else np.zeros(0, np.float32)
    ratio = rl / rh if rh.size else np.zeros(0, np.float32)
    fill = load_px / interior_px if interior_px else 0.0
    att_mean = float(att.mean()) if att.size else 0.0
    norm = max(att_mean, 0.1)
    p10, p50, p90 = (float(v) for v in np.percentile(att, [10, 50, 90])) if att.size else (0.0, 0.0, 0.0)
    extent_cols = sum(p.size for p in fill_profiles)
    height_m = height_sum / extent_cols if extent_cols else 0.0
    height_share = height_share_sum / extent_cols if extent_cols else 0.0
    levels = levels_sum / levels_cols if levels_cols else 0.0
    pf, sf = _period(fill_profiles, col_m)
    pm, sm_ = _period(mean_profiles, col_m)
    units_fill = (length_m + 0.04) / pf if pf > 0 else 0.0
    units_mean = (length_m + 0.04) / pm if pm > 0 else 0.0
    scalars = {
        "fill": fill, "att_mean": att_mean, "att_std": float(att.std()) if att.size else 0.0,
        "att_p10": p10, "att_p50": p50, "att_p90": p90,
        "starved": float((att >= STARVED).mean()) if att.size else 0.0,
        "ratio_mean": float(rl.sum() / rh.sum()) if rh.size and rh.sum() > 0 else 0.0,
        "ratio_std": float(ratio.std()) if ratio.size else 0.0,
        "laplacian": lap_sum / max(load_px, 1) / norm, "local_std": std_sum / max(load_px, 1) / norm,
        "coarse_std": coarse_sum / max(coarse_n, 1) / norm,
        "length_m": length_m, "occupied_m": occupied_m, "length_share": length_m / interior_m if interior_m else 0.0,
        "height_m": height_m, "height_share": height_share, "levels": levels,
        "period_fill_m": pf, "period_fill_strength": sf, "period_mean_m": pm, "period_mean_strength": sm_,
        "gaps_per_m": gaps / length_m if length_m > 0 else 0.0, "mass_high": mass_high, "mass_low": mass_low,
        "units_fill": units_fill, "units_mean": units_mean, "containers": float(len(interiors)),
        "interior_m": interior_m, "edges_x": edges_x / max(load_px, 1), "edges_y": edges_y / max(load_px, 1),
        # logs (floored): the quantity model is log-linear, a product of powers of these
        "log_length": math.log(max(length_m, 0.05)), "log_occupied": math.log(max(occupied_m, 0.05)),
        "log_levels": math.log(max(levels, 1.0)), "log_height": math.log(max(height_m, 0.05)),
        "log_mass": math.log(max(mass_high, 0.01)), "log_period_fill": math.log(max(pf, 0.3)),
        "log_period_mean": math.log(max(pm, 0.3)), "log_units_fill": math.log(max(units_fill, 0.5)),
        "log_units_mean": math.log(max(units_mean, 0.5)),
        "log_edges": math.log(max(edges_x * edges_y / max(load_px, 1) ** 2, 1e-4)),
    }  # fmt: skip
    vector = np.concatenate([
        _hist(att, ATT_EDGES), _hist(ratio, RATIO_EDGES),
        vprofile / loaded_cols if loaded_cols else np.zeros(PROFILE_BINS),
        np.array([scalars[n] for n in _SCALARS]),
    ]).astype(np.float32)  # fmt: skip
    return Descriptor(vector, interiors, fill)


def describe_scan(high: np.ndarray, low: np.ndarray | None, row_m: float, col_m: float,
                  containers: Sequence[Box] | None = None, *, model_row_m: float = MODEL_ROW_M,
                  model_col_m: float = MODEL_COL_M) -> tuple[Descriptor, list[Box]]:
    """What the scorer looks at: the scan resampled to the model's pitch, its containers (found
    there unless given, in scan pixels), the descriptor. Returns (descriptor, boxes in scan pixels)."""
    hi, lo, boxes = resample(high, low, row_m, col_m, containers, target_row_m=model_row_m,
                             target_col_m=model_col_m)
    if boxes is None:
        boxes = find_containers(hi)
    descriptor = compute_descriptor(hi, lo, boxes, model_row_m, model_col_m)
    if containers is not None:
        return descriptor, list(containers)
    sx, sy = high.shape[1] / hi.shape[1], high.shape[0] / hi.shape[0]
    return descriptor, [(round(x * sx), round(y * sy), round(w * sx), round(h * sy)) for x, y, w, h in boxes]


# ---------------------------------------------------------------------------------------------
# The model: numpy reference and ONNX graph
# ---------------------------------------------------------------------------------------------

OPSET = 17
LOG_Q_RANGE = (-10.0, 15.0)  # log-quantity clipped before exp (no inf from a wild descriptor)


@dataclass
class ConsistencyModel:
    """Standardisation + multinomial logistic regression (classes) + per-class log-linear quantity.

    ``probabilities = softmax(z @ weights + bias)``, ``quantity = exp(clip(z @ q_weights + q_bias))``
    with ``z = (descriptor - mu) / sigma``."""

    labels: tuple[str, ...]
    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D,)
    weights: np.ndarray  # (D, C)
    bias: np.ndarray  # (C,)
    q_weights: np.ndarray  # (D, C)
    q_bias: np.ndarray  # (C,)

    def __post_init__(self) -> None:
        d, c = len(self.mu), len(self.labels)
        shapes = {
            "mu": (self.mu.shape, (d,)), "sigma": (self.sigma.shape, (d,)), "weights": (self.weights.shape, (d, c)),
            "bias": (self.bias.shape, (c,)), "q_weights": (self.q_weights.shape, (d, c)),
            "q_bias": (self.q_bias.shape, (c,)),
        }  # fmt: skip
        for name, (got, want) in shapes.items():
            if got != want:
                raise ModelError(f"consistency model: {name} has shape {got}, expected {want}")
        if np.any(self.sigma <= 0):
            raise ModelError("consistency model: sigma must be positive")

    def predict(self, descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities [N, C], quantity [N, C]) in float64: the reference the ONNX graph reproduces."""
        x = np.atleast_2d(np.asarray(descriptors, np.float64))
        z = (x - self.mu) / self.sigma
        logits = z @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        q = np.exp(np.clip(z @ self.q_weights + self.q_bias, *LOG_Q_RANGE))
        return p, q

    def onnx_bytes(self) -> bytes:
        return build_graph(self).SerializeToString()


def build_graph(model: ConsistencyModel) -> Any:
    """The serving graph (onnx.ModelProto): ``descriptor`` float32 [N, D] -> ``probabilities`` [N, C],
    ``quantity`` [N, C]. Byte-identical for the same parameters."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name)

    d, c = len(model.mu), len(model.labels)
    inits = [const("mu", model.mu), const("sigma", model.sigma), const("weights", model.weights),
             const("bias", model.bias), const("q_weights", model.q_weights), const("q_bias", model.q_bias),
             const("q_min", np.array(LOG_Q_RANGE[0])), const("q_max", np.array(LOG_Q_RANGE[1]))]
    nodes = [
        helper.make_node("Sub", ["descriptor", "mu"], ["centred"], name="centred"),
        helper.make_node("Div", ["centred", "sigma"], ["z"], name="z"),
        helper.make_node("MatMul", ["z", "weights"], ["logits_w"], name="logits_w"),
        helper.make_node("Add", ["logits_w", "bias"], ["logits"], name="logits"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="probabilities", axis=-1),
        helper.make_node("MatMul", ["z", "q_weights"], ["log_q_w"], name="log_q_w"),
        helper.make_node("Add", ["log_q_w", "q_bias"], ["log_q"], name="log_q"),
        helper.make_node("Clip", ["log_q", "q_min", "q_max"], ["log_q_clipped"], name="log_q_clipped"),
        helper.make_node("Exp", ["log_q_clipped"], ["quantity"], name="quantity"),
    ]
    graph = helper.make_graph(
        nodes, "xray_consistency",
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", d])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", c]),
         helper.make_tensor_value_info("quantity", TensorProto.FLOAT, ["N", c])],
        inits, doc_string=f"X-ray manifest consistency: load descriptor ({d}) -> class probabilities and "
                          f"quantity per class ({', '.join(model.labels)})",
    )  # fmt: skip
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8,
                                   producer_name="gate-appliance xray consistency", producer_version="1")
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


# ---------------------------------------------------------------------------------------------
# Scoring a scan
# ---------------------------------------------------------------------------------------------

DEFAULT_TOLERANCE = 0.2
MAX_TOLERANCE = 1.0  # a relative error of 100 % (declared 10, seen 20) can never be "consistent"
TOLERANCE_KEY = "quantity_tolerance"  # manifest thresholds: the default; "quantity_tolerance.<class>" per class
EMPTY = "empty"


def _check_tolerance(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 < value <= MAX_TOLERANCE:
        raise ModelError(f"{where} must be a relative error in (0, {MAX_TOLERANCE:g}] (a quantity tolerance, e.g. "
                         f"0.2 for +-20 %), got {value!r}")
    return float(value)


def tolerances_from_thresholds(thresholds: Mapping[str, float], labels: Sequence[str],
                               where: str = "manifest") -> tuple[float, dict[str, float]]:
    """(default tolerance, {class: tolerance}) from a manifest's ``thresholds``: ``quantity_tolerance``
    (absent: ``DEFAULT_TOLERANCE``) and ``quantity_tolerance.<class>``; raises ModelError naming the key."""
    default = _check_tolerance(thresholds.get(TOLERANCE_KEY, DEFAULT_TOLERANCE), f"{where}: thresholds.{TOLERANCE_KEY}")
    per_class: dict[str, float] = {}
    prefix = TOLERANCE_KEY + "."
    for key, value in thresholds.items():
        if not key.startswith(prefix):
            continue
        goods = key[len(prefix):]
        if goods not in labels:
            raise ModelError(f"{where}: thresholds.{key} names goods class {goods!r}, which is not one of the "
                             f"model's labels ({', '.join(labels)})")
        per_class[goods] = _check_tolerance(value, f"{where}: thresholds.{key}")
    return default, per_class


@dataclass
class ConsistencyResult:
    """What the scan says about the declaration.

    ``decided``: both checks could be made; otherwise ``reason`` says why not, and the result is
    never "consistent" (a scan the model cannot judge goes to an officer). ``goods_consistent`` is
    computed whenever the declared class is known (or declared empty), ``quantity_consistent``
    whenever a positive quantity is declared too. ``score`` 0..1: the lower of the two checks'
    parts, each 0.5 exactly at its threshold (goods: P(declared) mapped piecewise-linearly so
    that the threshold sits at 0.5; quantity: 1 - relative error / (2 x tolerance)); so
    ``score >= 0.5`` exactly when every check made passed, and 0.0 when none could be made."""

    decided: bool
    reason: str
    declared_goods: str | None
    declared_quantity: float | None
    probabilities: dict[str, float]
    p_declared: float
    predicted: str  # the most probable class, or "empty"; "" when there was nothing to look at
    quantity_estimate: float | None  # for the declared class
    relative_error: float | None  # |estimate - declared| / declared
    goods_consistent: bool
    quantity_consistent: bool
    score: float
    goods_threshold: float
    quantity_tolerance: float  # the one applied: the declared class's, else the model's default
    containers: list[Box] = field(default_factory=list)  # scan pixels
    descriptor: Descriptor | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        return self.decided and self.goods_consistent and self.quantity_consistent


class ConsistencyScorer:
    """``run(feeds) -> [probabilities, quantity]`` (an ONNX session), the class labels, the goods
    threshold (minimum P(declared)), the quantity tolerance (the default, and per class where given)
    and the model's pixel pitch."""

    def __init__(self, run: Callable[[dict[str, np.ndarray]], list[np.ndarray]], labels: Sequence[str],
                 goods_threshold: float, quantity_tolerance: float = DEFAULT_TOLERANCE,
                 row_m: float = MODEL_ROW_M, col_m: float = MODEL_COL_M,
                 quantity_tolerances: Mapping[str, float] | None = None):
        if not 0.0 <= goods_threshold < 1.0:
            raise ModelError(f"consistency: the goods threshold must be within 0..1, got {goods_threshold}")
        self.run = run
        self.labels = tuple(labels)
        self.goods_threshold = float(goods_threshold)
        self.quantity_tolerance = _check_tolerance(quantity_tolerance, "consistency: the default quantity tolerance")
        self.quantity_tolerances: dict[str, float] = {}
        for goods, value in (quantity_tolerances or {}).items():
            if goods not in self.labels:
                raise ModelError(f"consistency: a quantity tolerance is given for {goods!r}, which is not one of "
                                 f"the model's labels ({', '.join(self.labels)})")
            where = f"consistency: the quantity tolerance of {goods!r}"
            self.quantity_tolerances[goods] = _check_tolerance(value, where)
        self.row_m = row_m
        self.col_m = col_m

    def tolerance_for(self, goods: str | None) -> float:
        """The quantity tolerance of a goods class (the default for a class without its own)."""
        return self.quantity_tolerances.get(goods or "", self.quantity_tolerance)

    def with_tolerances(self, quantity_tolerance: float,
                        quantity_tolerances: Mapping[str, float] | None = None) -> ConsistencyScorer:
        """The same model and goods threshold with other quantity tolerances (e.g. the single +-20 %)."""
        return ConsistencyScorer(self.run, self.labels, self.goods_threshold, quantity_tolerance, self.row_m,
                                 self.col_m, quantity_tolerances)

    @classmethod
    def from_model(cls, model: Any) -> ConsistencyScorer:
        """From an ``OnnxModel`` (or anything with ``.run(feeds)`` and ``.manifest``) of task ``xray-consistency``."""
        manifest = model.manifest
        if manifest.task != TASK:
            raise ModelError(f"{manifest.name}: a {manifest.task} model cannot check manifest consistency")
        if not manifest.labels:
            raise ModelError(f"{manifest.name}: an {TASK} manifest must list its goods classes in labels")
        pre = manifest.preprocess
        version = pre.get("descriptor_version", DESCRIPTOR_VERSION)
        size = pre.get("descriptor_size", D)
        if version != DESCRIPTOR_VERSION or size != D:
            raise ModelError(f"{manifest.name}: fitted on descriptor v{version} ({size} values); this appliance "
                             f"computes v{DESCRIPTOR_VERSION} ({D} values): refit the model")
        default, per_class = tolerances_from_thresholds(manifest.thresholds, manifest.labels, manifest.name)
        return cls(model.run, tuple(manifest.labels), float(manifest.thresholds.get("goods", 0.5)), default,
                   float(pre.get("row_m", MODEL_ROW_M)), float(pre.get("col_m", MODEL_COL_M)), per_class)

    @classmethod
    def from_fitted(cls, model: ConsistencyModel, goods_threshold: float,
                    quantity_tolerance: float = DEFAULT_TOLERANCE,
                    quantity_tolerances: Mapping[str, float] | None = None) -> ConsistencyScorer:
        """On an in-memory fitted model (through ONNX Runtime, exactly as a package would run)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(model.onnx_bytes(), options, providers=["CPUExecutionProvider"])
        return cls(lambda feeds: list(session.run(None, feeds)), model.labels, goods_threshold, quantity_tolerance,
                   quantity_tolerances=quantity_tolerances)

    def describe(self, high: np.ndarray, low: np.ndarray | None, row_m: float, col_m: float,
                 containers: Sequence[Box] | None = None) -> tuple[Descriptor, list[Box]]:
        """(descriptor at the model's pitch, container boxes in scan pixels)."""
        return describe_scan(high, low, row_m, col_m, containers, model_row_m=self.row_m, model_col_m=self.col_m)

    def score(self, high: np.ndarray, low: np.ndarray | None, declared_goods: str | None,
              declared_quantity: float | None, *, row_m: float, col_m: float,
              containers: Sequence[Box] | None = None) -> ConsistencyResult:
        """Check a calibrated scan (attenuation, pixel pitch ``row_m`` x ``col_m`` metres) against its
        declaration; ``containers`` (scan pixels) are found here when not given."""
        t0 = time.perf_counter()
        descriptor, boxes = self.describe(high, low, row_m, col_m, containers)
        ms = 1000 * (time.perf_counter() - t0)
        result = self.score_descriptor(descriptor, declared_goods, declared_quantity, containers=boxes)
        result.timings_ms = {"descriptor": ms, **result.timings_ms}
        return result

    def score_descriptor(self, descriptor: Descriptor, declared_goods: str | None, declared_quantity: float | None,
                         *, containers: Sequence[Box] = ()) -> ConsistencyResult:
        """Check a descriptor (``describe``) against the declaration."""
        declared = (declared_goods or "").strip() or None
        quantity = None if declared_quantity is None else float(declared_quantity)
        if quantity is not None and not math.isfinite(quantity):
            raise ScanError(f"consistency: the declared quantity must be a finite number, got {declared_quantity!r}")

        def result(decided: bool, reason: str, **values: Any) -> ConsistencyResult:
            fields: dict[str, Any] = {
                "probabilities": {}, "p_declared": 0.0, "predicted": "", "quantity_estimate": None,
                "relative_error": None, "goods_consistent": False, "quantity_consistent": False, "score": 0.0,
                **values,
            }  # fmt: skip
            return ConsistencyResult(decided=decided, reason=reason, declared_goods=declared,
                                     declared_quantity=quantity, goods_threshold=self.goods_threshold,
                                     quantity_tolerance=self.tolerance_for(declared), containers=list(containers),
                                     descriptor=descriptor, **fields)

        declared_empty = declared is not None and declared.lower() == EMPTY
        if not descriptor.interiors:
            return result(False, "no container found in the scan")
        if descriptor.empty:
            if (declared is None or declared_empty) and not quantity:
                return result(True, "", p_declared=1.0, predicted=EMPTY, quantity_estimate=0.0, relative_error=0.0,
                              goods_consistent=True, quantity_consistent=True, score=1.0)
            return result(True, "the container looks empty", predicted=EMPTY, quantity_estimate=0.0,
                          relative_error=1.0 if quantity else None, goods_consistent=declared_empty,
                          quantity_consistent=not quantity)
        t0 = time.perf_counter()
        probs_out, q_out = self.run({"descriptor": descriptor.vector[None, :].astype(np.float32)})[:2]
        timings = {"model": 1000 * (time.perf_counter() - t0)}
        probs = np.asarray(probs_out, np.float64).reshape(-1)
        qs = np.asarray(q_out, np.float64).reshape(-1)
        if probs.shape != (len(self.labels),) or qs.shape != (len(self.labels),):
            raise ModelError(f"consistency: the model returned {probs.shape} / {qs.shape} values for "
                             f"{len(self.labels)} labels")
        probabilities = {g: float(p) for g, p in zip(self.labels, probs, strict=True)}
        predicted = self.labels[int(np.argmax(probs))]
        seen = {"probabilities": probabilities, "predicted": predicted, "timings_ms": timings}
        if declared_empty:
            return result(True, "declared empty, but the container holds a load", quantity_consistent=not quantity,
                          **seen)
        if declared is None or declared not in self.labels:
            why = ("no declared goods" if declared is None else
                   f"declared goods {declared!r} is not a class the model knows ({', '.join(self.labels)})")
            return result(False, why, **seen)
        index = self.labels.index(declared)
        p = float(probs[index])
        t = self.goods_threshold
        goods_part = min(1.0, 0.5 * p / t if p < t else 0.5 + 0.5 * (p - t) / (1 - t))
        estimate = float(qs[index])
        checked = {"p_declared": p, "goods_consistent": p >= t, "quantity_estimate": estimate, **seen}
        if quantity is None or quantity <= 0:
            return result(False, "no declared quantity", score=goods_part, **checked)
        rel = abs(estimate - quantity) / quantity
        tolerance = self.tolerance_for(declared)
        quantity_part = float(np.clip(1 - rel / (2 * tolerance), 0.0, 1.0))
        return result(True, "", relative_error=rel, quantity_consistent=rel <= tolerance,
                      score=float(np.clip(min(goods_part, quantity_part), 0.0, 1.0)), **checked)
