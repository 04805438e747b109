"""Composes camera frames: background, the vehicle face warped into the lane, conditions.

Geometry (at 1080 rows; everything scales with the frame height): a pinhole camera
``CAMERA_HEIGHT_MM`` above the road, horizon at ``HORIZON``; a face point at height ``h``
mm and lateral offset ``x`` mm lands at ``(cx + s*x, y_h + s*(H_cam - h))`` where ``s`` is
the scale in pixels per mm. The front camera sees a vehicle approach and slow down
(``s`` grows to ``NEAR_SCALE``); the rear camera sees it pull away (``s`` shrinks from it).

Closest frames at 1920x1080: front plate characters 31-40 px tall (VN 2-line / CN);
rear plate 29 px (VN 2-line) to 47 px (CN 2-line lower line). The door marking (125 mm
characters) is fully in view from ``s`` ~0.38 (standard height) / ~0.32 (high cube)
down, i.e. 40-48 px characters a few frames after the closest one; the seal code keeps
~2.2 px per module in the closest rear frame.

Conditions: night (dark face and background, retroreflective plates, lamp glow), rain
(streak layers, lower contrast), motion blur (vertical box kernel of ``blur_px``), dirt and
occlusion (painted on the face), sensor noise (stronger at night) and slow light drift.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.errors import SimulationError
from appliance.sim.background import (
    CAMERA_HEIGHT_MM,
    HORIZON,
    NOISE_PAD,
    background,
    noise_bank,
    rain_layers,
)
from appliance.sim.codes_render import code_size_modules
from appliance.sim.draw import U8
from appliance.sim.model import Camera, Conditions, Light, Vehicle, Weather
from appliance.sim.vehicles_render import Face, render_face, seal_module_px

log = logging.getLogger(__name__)

NEAR_SCALE = {"front": 0.45, "rear": 0.43}  # px per mm at 1080 rows, closest frame
FAR_RATIO = {"front": 2.6, "rear": 2.5}  # distance of the farthest frame / the closest
FACE_OVERSAMPLE = 1.15  # faces are drawn a bit finer than the closest frame needs
NOISE_SIGMA = {"day": 0.15, "night": 0.35}  # multiples of the bank's sigma (~10 levels)


@dataclass
class PreparedFace:
    """A face ready to warp: lit for its conditions, as a BGRA pyramid (finest first)."""

    levels: list[U8]
    px_per_mm: float
    width_mm: float
    height_mm: float
    face: Face


def face_resolution(height: int) -> float:
    """Pixels per mm at which faces are drawn for frames ``height`` rows tall."""
    return max(NEAR_SCALE.values()) * height / 1080.0 * FACE_OVERSAMPLE


def scale_at(camera: Camera, progress: float, height: int) -> float:
    """Scale (px per mm) of the vehicle ``progress`` (0..1) through its passage."""
    u = min(1.0, max(0.0, progress))
    ratio = FAR_RATIO[camera]
    # Front: decelerating towards the gate; rear: accelerating away from it.
    d = 1.0 + (ratio - 1.0) * ((1.0 - u) ** 2 if camera == "front" else u**2)
    return NEAR_SCALE[camera] * height / 1080.0 / d


def prepare_face(vehicle: Vehicle, camera: Camera, height: int) -> PreparedFace:
    """Render ``vehicle``'s face for ``camera``, light it and build its pyramid."""
    r = face_resolution(height)
    module = None
    seal = vehicle.seals[0] if vehicle.seals else None
    if camera == "rear" and seal is not None and seal.serial and seal.symbology:
        near = NEAR_SCALE["rear"] * height / 1080.0
        module = seal_module_px(r, near, code_size_modules(seal.serial, seal.symbology)[0])
    face = render_face(vehicle, camera, r, seal_module_px=module)
    image = _light(face, vehicle.conditions, camera, np.random.default_rng([vehicle.look.seed, 5]))
    levels = [image]
    while min(levels[-1].shape[:2]) > 64 and len(levels) < 6:
        levels.append(np.asarray(cv2.pyrDown(levels[-1]), np.uint8))
    return PreparedFace(levels, r, image.shape[1] / r, image.shape[0] / r, face)


def _bands(bgr: U8, top: float, bottom: float, bands: int = 24) -> None:
    """Multiply ``bgr`` in place by a gain fading from ``top`` to ``bottom`` (in bands)."""
    h = bgr.shape[0]
    edges = np.linspace(0, h, bands + 1).astype(int)
    for i in range(bands):
        y0, y1 = edges[i], edges[i + 1]
        if y1 > y0:
            g = top + (bottom - top) * (i + 0.5) / bands
            cv2.convertScaleAbs(bgr[y0:y1], dst=bgr[y0:y1], alpha=g)


def _light(face: Face, cond: Conditions, camera: Camera, rng: np.random.Generator) -> U8:
    """The face under its light as BGRA: day gain, or night with lit plates and lamp glow."""
    src, alpha = face.bgr, face.alpha.copy()
    bgr: U8
    if cond.light == "day":
        gain = float(rng.uniform(0.9, 1.08))
        if cond.weather == "rain":
            bgr = np.asarray(cv2.convertScaleAbs(src, alpha=gain * 0.85, beta=18.0), np.uint8)
        else:
            bgr = np.asarray(cv2.convertScaleAbs(src, alpha=gain), np.uint8)
    else:
        bgr = src.copy()
        # Gantry floodlights: brighter at the top of the rear face, dim at the front.
        if camera == "rear":
            _bands(bgr, 0.55, 0.38)
        else:
            cv2.convertScaleAbs(bgr, dst=bgr, alpha=0.3)
        bgr = np.asarray(cv2.add(bgr, np.full(bgr.shape, (6, 0, 0), np.uint8)), np.uint8)  # bluish shadows
        for name in ("plate", "container_number", "size_type", "seal_code", "fleet_id"):
            box = face.regions.get(name)
            if box is not None:
                # Retroreflective plates under the camera's illuminator, marks under floodlight.
                _relight(bgr, src, box, 0.8 if name == "plate" else 0.62)
        _glow(bgr, alpha, face.lights, 1.0 if camera == "front" else 0.7)
    return np.asarray(cv2.merge([*cv2.split(bgr), alpha]), np.uint8)


def _relight(bgr: U8, src: U8, box: tuple[int, int, int, int], gain: float) -> None:
    """Blend ``src * gain`` into ``bgr`` over ``box`` with a soft edge (no visible patch)."""
    h, w = bgr.shape[:2]
    x, y, bw, bh = box
    feather = max(3, int(0.12 * min(bw, bh) + 0.04 * max(bw, bh)))
    x0, y0 = max(0, x - 2 * feather), max(0, y - 2 * feather)
    x1, y1 = min(w, x + bw + 2 * feather), min(h, y + bh + 2 * feather)
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.rectangle(
        mask,
        (x - x0 - feather // 2, y - y0 - feather // 2),
        (x + bw - x0 + feather // 2, y + bh - y0 + feather // 2),
        1.0,
        -1,
    )
    mask = cv2.GaussianBlur(mask, (0, 0), feather / 2)[..., None]
    lit = src[y0:y1, x0:x1].astype(np.float32) * gain
    roi = bgr[y0:y1, x0:x1].astype(np.float32)
    bgr[y0:y1, x0:x1] = np.clip(roi + (np.maximum(lit, roi) - roi) * mask, 0, 255).astype(np.uint8)


def _glow(bgr: U8, alpha: U8, lights: list[tuple[int, int, int, tuple[int, int, int]]], strength: float) -> None:
    """Lamps at night: a bright core plus a wide halo that may spill past the vehicle."""
    h, w = alpha.shape
    for x, y, radius, colour in lights:
        reach = int(radius * 6)
        x0, x1, y0, y1 = max(0, x - reach), min(w, x + reach), max(0, y - reach), min(h, y + reach)
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d2 = ((xx - x) ** 2 + (yy - y) ** 2) / float(max(1, radius) ** 2)
        light = (np.exp(-d2 * 1.5) * 255.0 + np.exp(-d2 / 5.0) * 110.0) * strength
        col = np.asarray(colour, np.float32) / 255.0
        roi = bgr[y0:y1, x0:x1].astype(np.float32) + light[..., None] * col
        a = alpha[y0:y1, x0:x1]
        # Past the vehicle's outline the halo is lamp-coloured light with partial cover,
        # so it brightens whatever lies behind it.
        outside = a < 128
        roi[outside] = np.asarray(colour, np.float32)
        bgr[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)
        a[outside] = np.clip(light[outside] * 0.4, 0, 255).astype(np.uint8)


def face_quad(
    camera: Camera,
    vehicle: Vehicle,
    scale: float,
    width: int,
    height: int,
    face_w_mm: float,
    face_h_mm: float,
    progress: float,
) -> np.ndarray:
    """Screen corners (TL, TR, BR, BL) of the face at ``scale`` px/mm, with mild perspective."""
    look = vehicle.look
    y_h = HORIZON[camera] * height
    hc = CAMERA_HEIGHT_MM[camera]
    drift = 0.01 * (progress - 0.5) * (1 if look.lateral >= 0 else -1)
    cx = width * (0.5 + look.lateral + drift)
    half = scale * face_w_mm / 2
    y_top, y_bot = y_h + scale * (hc - face_h_mm), y_h + scale * hc
    quad = np.array([[cx - half, y_top], [cx + half, y_top], [cx + half, y_bot], [cx - half, y_bot]], np.float64)
    # Keystone: the nearer side looks taller (a slight yaw of the vehicle to the camera).
    for i, k in ((0, -look.yaw), (3, -look.yaw), (1, look.yaw), (2, look.yaw)):
        quad[i, 1] = y_h + (quad[i, 1] - y_h) * (1.0 + k)
    angle = math.radians(look.roll_deg)
    centre = quad.mean(axis=0)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.asarray((quad - centre) @ rot.T + centre, np.float64)


class CameraRenderer:
    """Renders the frames of one camera; keeps the backgrounds and overlays it needs."""

    def __init__(self, camera: Camera, width: int, height: int, seed: int) -> None:
        if camera not in ("front", "rear"):
            raise SimulationError(f"unknown camera {camera!r} (expected front or rear)")
        self.camera: Camera = camera
        self.width, self.height, self.seed = width, height, seed
        self.noise = noise_bank(width, height)
        self._rain: tuple[U8, ...] | None = None

    def _rain_layers(self) -> tuple[U8, ...]:
        if self._rain is None:
            self._rain = rain_layers(self.width, self.height)
        return self._rain

    def frame(
        self,
        index: int,
        t: float,
        light: Light,
        weather: Weather,
        vehicle: Vehicle | None = None,
        prepared: PreparedFace | None = None,
        progress: float = 0.0,
        fade_to: tuple[Light, Weather, float] | None = None,
    ) -> U8:
        """Frame ``index`` (time ``t``): the empty lane, or ``vehicle`` ``progress`` through.

        ``fade_to`` (light, weather, weight) blends an empty lane towards other conditions.
        """
        rng = np.random.default_rng([self.seed, 0 if self.camera == "front" else 1, index])
        frame = background(self.camera, self.width, self.height, light, weather).copy()
        if fade_to is not None and fade_to[2] > 0.0:
            # Between vehicles in different light: cross-fade the two empty-lane looks.
            other = background(self.camera, self.width, self.height, fade_to[0], fade_to[1])
            w = min(1.0, fade_to[2])
            cv2.addWeighted(frame, 1.0 - w, other, w, 0.0, dst=frame)
            if w >= 0.5:
                light, weather = fade_to[0], fade_to[1]
        if vehicle is not None and prepared is not None:
            self._composite(frame, vehicle, prepared, progress)
        if weather == "rain":
            layers = self._rain_layers()
            layer = layers[index % len(layers)]
            oy, ox = (int(v) for v in rng.integers(0, NOISE_PAD * 4, 2))
            cv2.add(frame, layer[oy : oy + self.height, ox : ox + self.width], dst=frame)
        # Slow light drift (clouds, lamps) plus sensor noise, in one pass.
        gain = 1.0 + 0.035 * math.sin(t / 9.0) + 0.015 * math.sin(t / 2.3 + 1.0) + rng.normal(0, 0.004)
        k = NOISE_SIGMA[light]
        noise = self.noise[index % len(self.noise)]
        oy, ox = (int(v) for v in rng.integers(0, NOISE_PAD, 2))
        crop = noise[oy : oy + self.height, ox : ox + self.width]
        return np.asarray(cv2.addWeighted(frame, gain, crop, k, -128.0 * k), np.uint8)

    def quad(self, vehicle: Vehicle, prepared: PreparedFace, progress: float) -> np.ndarray:
        """Screen corners (TL, TR, BR, BL) of ``prepared``'s face ``progress`` through the passage.

        The corners of the face image (all pyramid levels) land there; ground-truth boxes
        (appliance/sim/annotate.py) use the same quad, so they are where the pixels are.
        """
        s = scale_at(self.camera, progress, self.height)
        return face_quad(
            self.camera, vehicle, s, self.width, self.height, prepared.width_mm, prepared.height_mm, progress
        )

    def _composite(self, frame: U8, vehicle: Vehicle, prepared: PreparedFace, progress: float) -> None:
        s = scale_at(self.camera, progress, self.height)
        quad = self.quad(vehicle, prepared, progress)
        # Finest pyramid level not more than 2x the scale we need (less aliasing).
        level = 0
        while level + 1 < len(prepared.levels) and prepared.px_per_mm / 2 ** (level + 1) >= s:
            level += 1
        src_img = prepared.levels[level]
        h, w = src_img.shape[:2]
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        x0 = max(0, math.floor(quad[:, 0].min()))
        y0 = max(0, math.floor(quad[:, 1].min()))
        x1 = min(self.width, math.ceil(quad[:, 0].max()))
        y1 = min(self.height, math.ceil(quad[:, 1].max()))
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        m = cv2.getPerspectiveTransform(src, (quad - [x0, y0]).astype(np.float32))
        warped = cv2.warpPerspective(
            src_img,
            m,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0, 0),
        )
        blur = vehicle.conditions.blur_px
        if blur >= 2:
            warped = cv2.blur(warped, (1, int(blur)))
        alpha = warped[..., 3].astype(np.float32) * (1.0 / 255.0)
        roi = frame[y0:y1, x0:x1]
        fg = np.ascontiguousarray(warped[..., :3])
        roi[:] = cv2.blendLinear(fg, roi, alpha, 1.0 - alpha)


def render_vehicle_frames(
    vehicle: Vehicle,
    camera: Camera,
    *,
    width: int = 1920,
    height: int = 1080,
    frames: int | None = None,
    seed: int = 0,
    start_time: float = 0.0,
    fps: float = 5.0,
) -> list[U8]:
    """The frames of ``camera`` during ``vehicle``'s passage (for tests and benchmarks).

    ``frames`` defaults to the vehicle's planned frame count (at least 2).
    """
    n = frames if frames is not None else max(2, vehicle.frames)
    if n < 1:
        raise SimulationError(f"frames must be >= 1, got {n}")
    renderer = CameraRenderer(camera, width, height, seed)
    prepared = prepare_face(vehicle, camera, height)
    cond = vehicle.conditions
    out = []
    for i in range(n):
        progress = i / (n - 1) if n > 1 else 1.0
        out.append(renderer.frame(i, start_time + i / fps, cond.light, cond.weather, vehicle, prepared, progress))
    return out
