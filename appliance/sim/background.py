"""The empty lane as each camera sees it: sky, tree line, road with markings, gate canopy.

Backgrounds depend only on (camera, size, light, weather) and are cached; so are the
overlays that vary per frame (rain streak layers, sensor-noise bank).
"""

from __future__ import annotations

import logging
from functools import lru_cache

import cv2
import numpy as np

from appliance.sim.draw import U8, vertical_gradient
from appliance.sim.model import Camera, Light, Weather

log = logging.getLogger(__name__)

# Horizon row (share of the frame height) and camera height (mm) per camera; scene.py
# uses the same numbers to place vehicles on the road.
HORIZON = {"front": 0.45, "rear": 0.47}
CAMERA_HEIGHT_MM = {"front": 1700.0, "rear": 2000.0}
NOISE_PAD = 24
NOISE_BANK = 4
RAIN_LAYERS = 4


def ground_x(camera: Camera, width: int, height: int, y: float, lateral_mm: float) -> float:
    """Screen x of a point on the road ``lateral_mm`` from the lane centre, on row ``y``."""
    y_h = HORIZON[camera] * height
    return width / 2 + (y - y_h) * lateral_mm / CAMERA_HEIGHT_MM[camera]


@lru_cache(maxsize=16)
def background(camera: Camera, width: int, height: int, light: Light, weather: Weather) -> U8:
    """The empty lane for ``camera`` (cached; do not modify the returned array)."""
    rng = np.random.default_rng([7, 0 if camera == "front" else 1])
    night = light == "night"
    wet = weather == "rain"
    y_h = int(HORIZON[camera] * height)
    if night:
        img = vertical_gradient(height, width, (40, 22, 12), (30, 28, 26))
    else:
        img = vertical_gradient(height, width, (225, 200, 170), (205, 200, 195))
    if wet and not night:
        img = np.asarray(cv2.addWeighted(img, 0.6, np.full_like(img, 170), 0.4, 0), np.uint8)
    # Tree line and low buildings on the horizon.
    hills = np.cumsum(rng.normal(0, 1.2, width)) * height / 900
    hills = hills - hills.mean()
    tree = (40, 70, 45) if not night else (16, 20, 16)
    for x in range(0, width, 2):
        top = int(y_h - height * 0.05 + hills[x])
        cv2.line(img, (x, top), (x, y_h), tree, 2)
    for _ in range(5):
        bx = int(rng.uniform(0, width * 0.9))
        bw, bh = int(width * rng.uniform(0.04, 0.09)), int(height * rng.uniform(0.04, 0.1))
        shade = int(rng.uniform(120, 170)) if not night else int(rng.uniform(25, 40))
        cv2.rectangle(img, (bx, y_h - bh), (bx + bw, y_h), (shade, shade, shade + 5), -1)
        if night:
            for _ in range(4):
                wx, wy = int(bx + rng.uniform(0.1, 0.9) * bw), int(y_h - rng.uniform(0.2, 0.9) * bh)
                cv2.rectangle(
                    img, (wx, wy), (wx + max(2, width // 400), wy + max(2, height // 300)), (90, 200, 230), -1
                )
    _road(img, camera, y_h, night, wet, rng)
    _canopy(img, camera, night)
    out = np.ascontiguousarray(img)
    out.setflags(write=False)
    return out


def _road(img: U8, camera: Camera, y_h: int, night: bool, wet: bool, rng: np.random.Generator) -> None:
    height, width = img.shape[:2]
    base = 38 if night else (85 if wet else 110)
    road_h = height - y_h
    small = rng.normal(0, 1, (max(2, road_h // 6), max(2, width // 6))).astype(np.float32)
    texture = cv2.resize(small, (width, road_h), interpolation=cv2.INTER_LINEAR)
    fine = cv2.resize(rng.normal(0, 1, (max(2, road_h // 2), max(2, width // 2))).astype(np.float32), (width, road_h))
    grey = base + texture * (2.5 if night else 7) + fine * (2 if night else 6)
    depth = np.linspace(0.85, 1.1, road_h, dtype=np.float32)[:, None]
    grey = grey * depth
    road = np.clip(np.dstack([grey, grey, grey * (1.02 if not night else 0.95)]), 0, 255).astype(np.uint8)
    if night:  # sodium lamps: an orange cast on the road
        road = np.asarray(cv2.addWeighted(road, 1.0, np.full_like(road, (6, 22, 40)), 0.5, 0), np.uint8)
    img[y_h:] = road
    paint = (215, 215, 215) if not night else (110, 110, 105)
    yellow = (40, 190, 230) if not night else (30, 90, 110)

    def stripe(lateral_mm: float, colour: tuple[int, int, int], width_mm: float, dashed: bool) -> None:
        y0 = y_h + 2
        steps = 60
        for k in range(steps):
            ya = y0 + (height - y0) * (k / steps) ** 1.6
            yb = y0 + (height - y0) * ((k + 1) / steps) ** 1.6
            if dashed and k % 3 == 2:
                continue
            xa, xb = ground_x(camera, width, height, ya, lateral_mm), ground_x(camera, width, height, yb, lateral_mm)
            wa = max(1.0, (ya - y_h) * width_mm / 1700)
            wb = max(1.0, (yb - y_h) * width_mm / 1700)
            pts = np.array([[xa - wa / 2, ya], [xa + wa / 2, ya], [xb + wb / 2, yb], [xb - wb / 2, yb]], np.int32)
            cv2.fillConvexPoly(img, pts, colour, cv2.LINE_AA)

    stripe(-1950, yellow, 150, False)
    stripe(1950, paint, 150, False)
    stripe(-5700, paint, 120, True)
    stripe(5700, paint, 120, True)
    # Stop line / speed bump across the lane near the gate on the front camera.
    if camera == "front":
        yb = int(y_h + (height - y_h) * 0.25)
        xa, xb = ground_x(camera, width, height, yb, -1950), ground_x(camera, width, height, yb, 1950)
        cv2.rectangle(img, (int(xa), yb), (int(xb), yb + max(2, height // 120)), paint, -1)
    if wet:  # puddle sheen
        sheen = np.clip(
            cv2.GaussianBlur(rng.normal(0, 1, (height - y_h, width)).astype(np.float32), (0, 0), width / 80) * 60, 0, 40
        )
        img[y_h:] = cv2.add(img[y_h:], np.dstack([sheen] * 3).astype(np.uint8))


def _canopy(img: U8, camera: Camera, night: bool) -> None:
    """Gate canopy edge across the top, two poles, and a booth on one side."""
    height, width = img.shape[:2]
    roof = (70, 70, 72) if not night else (22, 22, 24)
    edge = int(height * (0.07 if camera == "front" else 0.05))
    cv2.rectangle(img, (0, 0), (width, edge), roof, -1)
    cv2.rectangle(
        img, (0, edge), (width, edge + max(2, height // 90)), (150, 150, 150) if not night else (50, 50, 50), -1
    )
    for k in range(6):
        lx = int(width * (0.1 + 0.16 * k))
        lamp = (230, 240, 245) if night else (200, 205, 210)
        cv2.rectangle(img, (lx, edge - height // 60), (lx + width // 14, edge - 2), lamp, -1)
        if night:
            glow = np.zeros((height // 3, width // 5), np.float32)
            cv2.ellipse(
                glow, (glow.shape[1] // 2, 0), (glow.shape[1] // 3, glow.shape[0] * 2 // 3), 0, 0, 180, 45.0, -1
            )
            glow = cv2.GaussianBlur(glow, (0, 0), height / 40)
            gx0 = lx + width // 28 - glow.shape[1] // 2
            x0, x1 = max(0, gx0), min(width, gx0 + glow.shape[1])
            patch = glow[:, x0 - gx0 : x1 - gx0]
            roi = img[edge : edge + patch.shape[0], x0:x1]
            roi[:] = cv2.add(roi, np.dstack([patch * 0.8, patch * 0.95, patch]).astype(np.uint8)[: roi.shape[0]])
    pole = (150, 150, 155) if not night else (45, 45, 50)
    for side in (-1, 1):
        cx = int(width / 2 + side * width * 0.41)
        pw = max(4, width // 45)
        bottom = int(height * 0.78)
        cv2.rectangle(img, (cx - pw // 2, edge), (cx + pw // 2, bottom), pole, -1)
        cv2.rectangle(img, (cx - pw // 2, edge), (cx - pw // 6, bottom), tuple(int(c * 0.7) for c in pole), -1)
        cv2.rectangle(img, (cx - pw // 2 - 2, bottom - height // 40), (cx + pw // 2 + 2, bottom), (40, 190, 230), -1)
    side = 1 if camera == "front" else -1
    bx = int(width / 2 + side * width * 0.47)
    bw, bh = width // 9, int(height * 0.3)
    by = int(height * 0.72) - bh
    x0, x1 = (bx, min(width, bx + bw)) if side > 0 else (max(0, bx - bw), bx)
    booth = (200, 200, 195) if not night else (50, 50, 50)
    cv2.rectangle(img, (x0, by), (x1, by + bh), booth, -1)
    win = (120, 90, 60) if not night else (80, 160, 190)
    cv2.rectangle(img, (x0 + bw // 8, by + bh // 6), (x1 - bw // 8, by + bh // 2), win, -1)


@lru_cache(maxsize=4)
def noise_bank(width: int, height: int, seed: int = 11) -> tuple[U8, ...]:
    """Sensor noise frames, 128-centred (sigma ~10), padded so random crops differ."""
    rng = np.random.default_rng(seed)
    bank = []
    for _ in range(NOISE_BANK):
        n = rng.normal(128.0, 10.0, (height + NOISE_PAD, width + NOISE_PAD, 3)).astype(np.float32)
        bank.append(np.clip(n, 0, 255).astype(np.uint8))
    return tuple(bank)


@lru_cache(maxsize=4)
def rain_layers(width: int, height: int, seed: int = 13) -> tuple[U8, ...]:
    """Additive rain-streak layers (slanted bright streaks on black), padded for random crops."""
    rng = np.random.default_rng(seed)
    layers = []
    h, w = height + NOISE_PAD * 4, width + NOISE_PAD * 4
    for _ in range(RAIN_LAYERS):
        layer = np.zeros((h, w), np.uint8)
        n = int(w * h / 2500)
        xs, ys = rng.uniform(0, w, n), rng.uniform(0, h, n)
        lengths = rng.uniform(0.015, 0.04, n) * height
        bright = rng.uniform(25, 70, n)
        for x, y, length, b in zip(xs, ys, lengths, bright, strict=True):
            dx, dy = 0.18 * length, length
            cv2.line(layer, (int(x), int(y)), (int(x + dx), int(y + dy)), int(b), max(1, width // 1500), cv2.LINE_AA)
        layer = np.asarray(cv2.GaussianBlur(layer, (3, 3), 0), np.uint8)
        layers.append(np.ascontiguousarray(np.dstack([layer] * 3)))
    return tuple(layers)
