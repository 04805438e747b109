"""Generic synthetic anomalies for training the X-ray anomaly detector on normal scans (DRAEM-style).

The detector (``xray_cnn``) learns what a goods class's normal load looks like by being shown
normal patches and the same patches spoilt by *generic* perturbations, never the simulator's threat
projection (``appliance/sim/xray.py`` TIP: dense blocks, weapons, hidden compartments, undeclared
goods), which stays for measuring. Two perturbations:

``add_object``
    a random shape (polygon, ellipse, rotated box or a few strokes, 4-45 px) of a random material
    (metals, glass, salts, organics) and a random added attenuation (0.15-6, log-uniform), added by
    Beer-Lambert in transmission with the photon noise the extra attenuation implies, then clipped
    like the calibration clips a starved pixel;
``transplant``
    a box or ellipse of the patch replaced by the same region of a normal patch of *another* goods
    class (the load is not what the class looks like there);
``partition``
    a straight plate (steel, aluminium or wood) across the patch, often with the space on one side of
    it filled with something else (another load's texture, or a random material).

The label is the perturbed area (pixels where it changed the image).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from appliance.sim.xray_goods import MATERIALS

# The virtual scanner's open-beam signal per energy, counts per photon and read noise
# (appliance/sim/xray.py make_scanner / ScannerModel) and the calibration's transmission floor.
OPEN_BEAM = {"high": 50_000.0, "low": 30_000.0}
COUNTS_PER_PHOTON, READ_NOISE = 2.0, 6.0
T_MIN, T_MAX = 3.6e-4, 1.5
OBJECT_MATERIALS = ("steel", "steel", "lead", "tungsten", "aluminium", "copper", "glass", "organic", "plastic",
                    "fertiliser", "chemical", "pcb")
SIZE_PX = (4.0, 45.0)
ADDED_ATTENUATION = (0.15, 6.0)


def shape_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """float32 0/1 mask of one random shape inside an ``h`` x ``w`` patch."""
    m = np.zeros((h, w), np.float32)
    cx, cy = rng.uniform(0.15 * w, 0.85 * w), rng.uniform(0.15 * h, 0.85 * h)
    size = math.exp(rng.uniform(math.log(SIZE_PX[0]), math.log(SIZE_PX[1])))
    kind = int(rng.integers(4))
    if kind == 0:  # polygon
        n = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * math.pi, n))
        rad = size * rng.uniform(0.4, 1.0, n)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 1.0)
    elif kind == 1:  # ellipse
        axes = (max(1, int(size)), max(1, int(size * rng.uniform(0.2, 1))))
        cv2.ellipse(m, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    elif kind == 2:  # rotated box
        rect = ((cx, cy), (size * rng.uniform(0.5, 2), size * rng.uniform(0.15, 1)), float(rng.uniform(0, 180)))
        cv2.fillPoly(m, [cv2.boxPoints(rect).astype(np.int32)], 1.0)
    else:  # strokes
        for _ in range(int(rng.integers(1, 4))):
            path = [(cx, cy)]
            for _ in range(int(rng.integers(1, 4))):
                a, length = rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 1.2) * size
                path.append((path[-1][0] + length * math.cos(a), path[-1][1] + length * math.sin(a)))
            cv2.polylines(m, [np.array(path, np.int32)], False, 1.0, int(rng.integers(2, 7)))
    return m


def _attenuate(att: np.ndarray, added: np.ndarray, energy: str, rng: np.random.Generator) -> np.ndarray:
    """``att`` with ``added`` more attenuation, as the scanner would have measured it (noise, floor)."""
    s0 = OPEN_BEAM[energy]
    t = np.exp(-att.astype(np.float32))
    t2 = t * np.exp(-added)
    need = (COUNTS_PER_PHOTON * s0 * t2 + READ_NOISE**2) / s0**2  # the noise variance at the new level
    have = (COUNTS_PER_PHOTON * s0 * t + READ_NOISE**2) / s0**2 * np.exp(-2 * added)  # what is left of the old
    t2 = t2 + np.sqrt(np.maximum(need - have, 0)) * rng.standard_normal(t2.shape).astype(np.float32)
    return np.asarray(-np.log(np.clip(t2, T_MIN, T_MAX)), np.float32)


def add_object(high: np.ndarray, low: np.ndarray, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(high, low, label): one random object added to a patch of calibrated attenuation."""
    h, w = high.shape
    mask = shape_mask(h, w, rng)
    material = MATERIALS[OBJECT_MATERIALS[int(rng.integers(len(OBJECT_MATERIALS)))]]
    amount = math.exp(rng.uniform(math.log(ADDED_ATTENUATION[0]), math.log(ADDED_ATTENUATION[1])))
    profile = mask.copy()
    if rng.random() < 0.5:  # uneven thickness inside
        noise = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), float(rng.uniform(1, 4)))
        noise = (noise - noise.min()) / (float(np.ptp(noise)) + 1e-6)
        profile = mask * (0.4 + 0.6 * noise)
    if rng.random() < 0.5:  # soft edges
        profile = cv2.GaussianBlur(profile, (0, 0), 0.7)
    new_high = _attenuate(high, profile * amount, "high", rng)
    new_low = _attenuate(low, profile * amount * material.ratio, "low", rng)
    return new_high, new_low, (mask > 0.5).astype(np.float32)


def transplant(high: np.ndarray, low: np.ndarray, src_high: np.ndarray, src_low: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(high, low, label): a region replaced by the same region of ``src`` (another goods class)."""
    h, w = high.shape
    mask = np.zeros((h, w), np.float32)
    bw, bh = int(rng.uniform(16, min(110, w))), int(rng.uniform(16, min(110, h)))
    x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
    if rng.random() < 0.5:
        mask[y:y + bh, x:x + bw] = 1
    else:
        cv2.ellipse(mask, (x + bw // 2, y + bh // 2), (bw // 2, bh // 2), 0, 0, 360, 1.0, -1)
    soft = cv2.GaussianBlur(mask, (0, 0), 1.0)
    new_high = (high * (1 - soft) + src_high * soft).astype(np.float32)
    new_low = (low * (1 - soft) + src_low * soft).astype(np.float32)
    changed = np.abs(cv2.blur(src_high, (9, 9)) - cv2.blur(high, (9, 9))) > 0.05
    return new_high, new_low, ((mask > 0.5) & changed).astype(np.float32)


def partition(high: np.ndarray, low: np.ndarray, src_high: np.ndarray, src_low: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(high, low, label): a plate across the patch, sometimes with a filled space on one side of it."""
    h, w = high.shape
    vertical = rng.random() < 0.5
    n = w if vertical else h
    pos = int(rng.integers(n // 6, n - n // 6))
    thick = int(rng.integers(2, 5))
    depth = int(rng.integers(10, 50))
    a, b = sorted((pos, pos + (depth if rng.random() < 0.5 else -depth)))
    a, b = max(a, 0), min(b, n)
    plate = np.zeros((h, w), np.float32)
    fill = np.zeros((h, w), np.float32)
    filled = rng.random() < 0.7
    if vertical:
        plate[:, pos:pos + thick] = 1
        fill[:, a:b] = filled
    else:
        plate[pos:pos + thick, :] = 1
        fill[a:b, :] = filled
    fill *= 1 - plate
    material = MATERIALS[("steel", "aluminium", "wood", "steel")[int(rng.integers(4))]]
    amount = float(rng.uniform(0.4, 3.0))
    new_high = _attenuate(high, plate * amount, "high", rng)
    new_low = _attenuate(low, plate * amount * material.ratio, "low", rng)
    if fill.any():
        if rng.random() < 0.5:  # another load's texture behind the plate
            new_high = new_high * (1 - fill) + src_high * fill
            new_low = new_low * (1 - fill) + src_low * fill
        else:  # a random material
            texture = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), float(rng.uniform(1, 4)))
            texture = (texture - texture.min()) / (float(np.ptp(texture)) + 1e-6)
            inside = MATERIALS[OBJECT_MATERIALS[int(rng.integers(len(OBJECT_MATERIALS)))]]
            added = fill * (0.3 + 0.7 * texture) * float(rng.uniform(0.3, 3.0))
            new_high = _attenuate(new_high, added, "high", rng)
            new_low = _attenuate(new_low, added * inside.ratio, "low", rng)
    return new_high.astype(np.float32), new_low.astype(np.float32), np.maximum(plate, fill)
