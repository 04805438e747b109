"""Simulated passenger-lane face captures, made from ``skimage.data.astronaut()`` (public domain).

Used by the face tests and by the passenger-lane simulator (``appliance/sim/passengers.py``);
scikit-image is in the ``dev`` extra (what ``make demo`` and ``make test`` install), not in the
appliance's runtime. These are NOT real presentation attacks and not real head motion: they are crude, deterministic
renderings that exercise the code paths and put the thresholds somewhere sensible. Anything measured
on them says nothing about a real lane's attack-detection rates.

* ``live_sequence``: the photo seen by a camera, with a small global affine jitter per frame and a
  smooth local warp that moves the nose / upper-lip region sideways relative to the eye corners (what
  a slight head turn does to a 3D face: the nose sticks out, so it shifts more than the eye corners).
* ``still_sequence``: the photo with sensor noise only (a person standing perfectly still).
* ``printed_photo_sequence``: the photo printed (lower dynamic range and saturation, halftone dots,
  paper grain, a white paper margin) and moved rigidly in front of a wall: one homography per frame
  (translation, in-plane rotation, perspective tilt). ``print_cues=False`` gives the same rigid motion
  of the bare photo (to test the motion check alone).
* ``replay_sequence``: the photo on a phone/tablet screen: a faint pixel grid, a moire beat pattern
  with colour fringes, a glare blob, a dark bezel, the same kind of rigid motion.

All frames are BGR uint8, as OpenCV delivers them.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import cv2
import numpy as np

from appliance.errors import SimulationError

#: The astronaut's five dlib landmarks (x, y) in the 512x512 photo, measured once with the 5-point
#: model and fixed here so the fixtures do not depend on the code they test.
ASTRONAUT_LANDMARKS = np.array([(255, 104), (238, 105), (195, 101), (212, 103), (224, 135)], np.float64)
ASTRONAUT_IOD = 43.0  # distance between the eye centres, px
_PHOTO_CROP = (80, 0, 370, 350)  # x0, y0, x1, y1: the part of the photo that is "printed" / shown on a screen


def _skimage_data() -> Any:
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise SimulationError(
            "simulated faces need scikit-image (skimage.data.astronaut): install the dev extra "
            "(`pip install -e .[dev]`, which `make demo` and `make test` do)"
        ) from exc
    return data


@functools.lru_cache(maxsize=1)
def _astronaut_bgr() -> np.ndarray:
    data = _skimage_data()

    bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    bgr.setflags(write=False)
    return bgr


def astronaut_bgr() -> np.ndarray:
    """The astronaut photo as a BGR uint8 array (a fresh, writable copy)."""
    return _astronaut_bgr().copy()


def _noise(img: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    out = img.astype(np.float32) + rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _head_turn(img: np.ndarray, shift_px: float) -> np.ndarray:
    """Move the nose / upper-lip region ``shift_px`` sideways, the eye corners not at all."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    nose = ASTRONAUT_LANDMARKS[4]
    eye_y = ASTRONAUT_LANDMARKS[:4, 1].max()
    sx, sy = 0.45 * ASTRONAUT_IOD, 0.55 * ASTRONAUT_IOD
    bump = np.exp(-0.5 * (((xs - nose[0]) / sx) ** 2 + ((ys - nose[1] - 3) / sy) ** 2))
    bump *= _smoothstep((ys - eye_y - 2) / (0.45 * ASTRONAUT_IOD))  # nothing moves on the eye line
    map_x = (xs - shift_px * bump).astype(np.float32)
    return cv2.remap(img, map_x, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def live_sequence(n: int = 8, parallax: float = 0.14, seed: int = 0) -> list[np.ndarray]:
    """A simulated live capture: slight global motion plus a head turn of ``parallax`` (nose shift,
    in inter-ocular distances) to one side and back past the middle."""
    rng = np.random.default_rng(seed)
    base = astronaut_bgr()
    frames = []
    for k in range(n):
        t = k / max(1, n - 1)
        turn = parallax * ASTRONAUT_IOD * math.sin(2 * math.pi * 0.75 * t)
        img = _head_turn(base, turn)
        angle = 1.5 * math.sin(2 * math.pi * t)
        scale = 1.0 + 0.02 * math.sin(math.pi * t)
        m = cv2.getRotationMatrix2D((224.0, 140.0), angle, scale)
        m[:, 2] += np.array([3.0 * math.sin(2 * math.pi * t), 2.0 * math.cos(2 * math.pi * t)])
        img = cv2.warpAffine(img, m, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frames.append(_noise(img, rng))
    return frames


def still_sequence(n: int = 8, seed: int = 0) -> list[np.ndarray]:
    """The photo, unmoved, with fresh sensor noise per frame."""
    rng = np.random.default_rng(seed)
    base = astronaut_bgr()
    return [_noise(base, rng) for _ in range(n)]


# -- rigid presentations ----------------------------------------------------------------------------

FRAME_W, FRAME_H = 640, 480


def _wall(rng: np.random.Generator) -> np.ndarray:
    """A plain lane wall: a vertical brightness gradient with soft blotches."""
    ys = np.linspace(0.0, 1.0, FRAME_H, dtype=np.float32)[:, None, None]
    base = np.array([120, 132, 140], np.float32)[None, None, :] * (1.05 - 0.25 * ys)
    blotch = cv2.GaussianBlur(rng.normal(0, 12, (FRAME_H, FRAME_W)).astype(np.float32), (0, 0), 25)
    wall = base + blotch[..., None] * 3
    return np.clip(np.broadcast_to(wall, (FRAME_H, FRAME_W, 3)), 0, 255).astype(np.float32)


def _pose(k: int, n: int) -> tuple[float, float, float, float, float]:
    """Per-frame (dx, dy, roll, yaw-tilt, pitch-tilt) of a hand-held flat object, degrees and px."""
    t = k / max(1, n - 1)
    return (
        14.0 * math.sin(2 * math.pi * t),
        8.0 * math.sin(2 * math.pi * 0.5 * t),
        4.0 * math.sin(2 * math.pi * 0.75 * t),
        18.0 * math.sin(2 * math.pi * 0.75 * t),
        8.0 * math.sin(2 * math.pi * t + 1.0),
    )


def _homography(w: int, h: int, scale: float, centre: tuple[float, float], pose: tuple[float, ...]) -> np.ndarray:
    """The homography that puts a flat w x h picture, turned by ``pose``, into the camera frame."""
    dx, dy, roll, yaw, pitch = pose
    f = 900.0
    z0 = f / scale
    r = (
        _rot("z", math.radians(roll)) @ _rot("y", math.radians(yaw)) @ _rot("x", math.radians(pitch))
    )
    corners = np.array([(0, 0), (w, 0), (w, h), (0, h)], np.float64)
    plane = np.column_stack([corners - (w / 2, h / 2), np.zeros(4)])
    cam = plane @ r.T + (dx / scale, dy / scale, z0)
    proj = f * cam[:, :2] / cam[:, 2:3] + centre
    return cv2.getPerspectiveTransform(corners.astype(np.float32), proj.astype(np.float32))


def _rot(axis: str, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    if axis == "x":
        return np.array([(1, 0, 0), (0, c, -s), (0, s, c)])
    if axis == "y":
        return np.array([(c, 0, s), (0, 1, 0), (-s, 0, c)])
    return np.array([(c, -s, 0), (s, c, 0), (0, 0, 1)])


def _composite(wall: np.ndarray, picture: np.ndarray, hmat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    size = (FRAME_W, FRAME_H)
    warped = cv2.warpPerspective(picture.astype(np.float32), hmat, size, flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones(picture.shape[:2], np.float32), hmat, size, flags=cv2.INTER_LINEAR)
    out = wall * (1 - mask[..., None]) + warped * mask[..., None]
    out = cv2.GaussianBlur(out, (0, 0), 0.7)  # camera optics
    return _noise(np.clip(out, 0, 255).astype(np.uint8), rng)


def _photo() -> np.ndarray:
    x0, y0, x1, y1 = _PHOTO_CROP
    return astronaut_bgr()[y0:y1, x0:x1].astype(np.float32)


def printed_photo(print_cues: bool = True, seed: int = 1) -> np.ndarray:
    """The astronaut photo as a print, float32 BGR: washed-out inks, halftone, grain, white margin."""
    photo = _photo()
    if not print_cues:
        return photo
    rng = np.random.default_rng(seed)
    hsv = cv2.cvtColor(np.clip(photo, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 1] *= 0.5
    img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
    img = 45 + img * (205 - 45) / 255.0  # ink black to paper white
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (xs + ys) / math.sqrt(2), (xs - ys) / math.sqrt(2)
    period = 3.0
    dots = 0.5 + 0.5 * np.cos(2 * math.pi * u / period) * np.cos(2 * math.pi * v / period)
    img *= (1 - 0.22 * dots)[..., None]
    grain = cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (0, 0), 0.8)
    img += grain[..., None]
    margin = 22
    paper = np.full((h + 2 * margin, w + 2 * margin, 3), (222, 226, 228), np.float32)
    paper[margin:margin + h, margin:margin + w] = img
    return paper


def printed_photo_sequence(n: int = 8, print_cues: bool = True, seed: int = 1) -> list[np.ndarray]:
    """A hand-held print moved rigidly in front of the camera (one homography per frame)."""
    rng = np.random.default_rng(seed)
    wall = _wall(rng)
    picture = printed_photo(print_cues, seed)
    h, w = picture.shape[:2]
    frames = []
    for k in range(n):
        hmat = _homography(w, h, 1.05, (FRAME_W / 2, FRAME_H / 2 + 10), _pose(k, n))
        frames.append(_composite(wall, picture, hmat, rng))
    return frames


def screen_picture() -> np.ndarray:
    """The photo as a screen shows it, float32 BGR: a cool white point, raised blacks, a faint pixel
    grid (dark gaps between pixel rows and columns), inside a dark bezel."""
    photo = _photo()
    img = 20 + 0.92 * photo * np.array([1.05, 1.0, 0.94], np.float32)
    h, w = img.shape[:2]
    grid = np.ones((h, w), np.float32)
    grid[1::2, :] *= 0.9
    grid[:, 1::2] *= 0.93
    img *= grid[..., None]
    bezel = 30
    out = np.full((h + 2 * bezel, w + 2 * bezel, 3), (18, 18, 20), np.float32)
    out[bezel:bezel + h, bezel:bezel + w] = img
    return out


def replay_sequence(n: int = 8, seed: int = 2) -> list[np.ndarray]:
    """The photo replayed on a phone/tablet moved rigidly: moire, glare, a dark bezel."""
    rng = np.random.default_rng(seed)
    wall = _wall(rng)
    picture = screen_picture()
    h, w = picture.shape[:2]
    ys, xs = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    frames = []
    for k in range(n):
        hmat = _homography(w, h, 1.05, (FRAME_W / 2, FRAME_H / 2 + 10), _pose(k, n))
        warped = cv2.warpPerspective(picture, hmat, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(np.ones((h, w), np.float32), hmat, (FRAME_W, FRAME_H), flags=cv2.INTER_LINEAR)
        # The beat between the screen's pixel grid and the sensor's: a fine, slightly rotated grating.
        angle = math.radians(10 + 3 * k / max(1, n - 1))
        phase = 2 * math.pi * (xs * math.cos(angle) + ys * math.sin(angle)) / 4.3
        moire = 1 + 0.06 * np.stack([np.sin(phase + c) for c in (0.0, 2.1, 4.2)], -1)  # colour fringes
        # Glare: a soft white reflection of a ceiling light on the glass, over the forehead.
        gx, gy = cv2.perspectiveTransform(np.array([[[0.55 * w, 0.27 * h]]], np.float32), hmat)[0, 0]
        glare = 180 * np.exp(-(((xs - gx) / 32) ** 2 + ((ys - gy) / 17) ** 2))
        screen = (warped * moire + glare[..., None]) * mask[..., None]
        out = wall * (1 - mask[..., None]) + screen
        out = cv2.GaussianBlur(np.clip(out, 0, 255), (0, 0), 0.6)
        frames.append(_noise(out.astype(np.uint8), rng))
    return frames


def side_by_side() -> np.ndarray:
    """The photo pasted twice side by side (two faces)."""
    img = astronaut_bgr()
    return np.ascontiguousarray(np.hstack([img, img]))


def other_face(index: int, size: int = 200) -> np.ndarray:
    """Another person: face ``index`` (0..99) of ``skimage.data.lfw_subset()`` (25 x 25 grey crops from
    Labeled Faces in the Wild), upscaled to ``size`` px on a grey 320 x 320 canvas, BGR. Blurry, but
    dlib finds most of them (89 of the first 100 at upsample 0) and their descriptors lie 0.7-0.9
    from the astronaut's: impostors and watchlist entries for the simulator."""
    if not 0 <= index < 100:
        raise ValueError("other_face: index must be 0..99 (the face half of lfw_subset)")
    grey = (_skimage_data().lfw_subset()[index] * 255).astype(np.uint8)
    big = cv2.resize(grey, (size, size), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((320, 320), 128, np.uint8)
    off = (320 - size) // 2
    canvas[off:off + size, off:off + size] = big
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)


def other_face_sequence(index: int, n: int = 8, seed: int = 3) -> list[np.ndarray]:
    """``other_face`` on a 640 x 480 wall, moving slightly, with sensor noise."""
    rng = np.random.default_rng(seed)
    wall = _wall(rng)
    face = other_face(index).astype(np.float32)
    frames = []
    for k in range(n):
        t = k / max(1, n - 1)
        shift = np.array([[1, 0, 160 + 6 * math.sin(2 * math.pi * t)],
                          [0, 1, 80 + 4 * math.cos(2 * math.pi * t)], [0, 0, 1]], np.float64)
        frames.append(_composite(wall, face, shift, rng))
    return frames


def landscape() -> np.ndarray:
    """A faceless outdoor-ish scene: sky gradient, hills, grass texture (BGR)."""
    data = _skimage_data()

    h, w = 360, 640
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    sky = np.stack([np.full((h, w), 230.0) - 60 * ys, np.full((h, w), 190.0) - 40 * ys, np.full((h, w), 140.0)], -1)
    grass = cv2.resize(data.grass(), (w, h)).astype(np.float32)
    xs = np.arange(w, dtype=np.float32)
    ridge = (0.55 * h + 30 * np.sin(xs / 70) + 15 * np.sin(xs / 23)).astype(np.float32)
    ground = (np.arange(h, dtype=np.float32)[:, None] > ridge[None, :])[..., None]
    land = np.stack([grass * 0.3, grass * 0.6 + 30, grass * 0.35], -1)
    return np.clip(np.where(ground, land, sky), 0, 255).astype(np.uint8)
