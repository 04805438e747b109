"""Is a detected face good enough to embed and match? Size, sharpness, pose and exposure.

Every measure comes from the 5 landmarks and the aligned 150x150 chip (``detect.face_chip``); the
"face area" below is the chip's central 100x100 px, i.e. the chip without dlib's 0.25 padding.

* ``eye_distance_px``: distance between the eye centres (mean of each eye's two corners), frame px.
  dlib's descriptor works on a 150 px chip in which the eye centres lie about 53 px apart: much
  below that in the frame, the chip is an upscaled blur of too few pixels (at the default minimum,
  32 px, each frame pixel becomes 1.7 chip pixels).
* ``sharpness``: variance of the 3x3 Laplacian over the face area divided by the variance of the grey
  levels there (x 1000). Dividing by the contrast makes it the same for a dim and a bright exposure
  of one face; it drops steeply with defocus and motion blur. Sensor noise raises it: on a very dark,
  noisy frame it can overstate sharpness (the exposure check catches those).
* ``roll_deg``: angle of the line through the eye centres against the horizontal.
* ``yaw``: a proxy, not an angle: the offset of the nose base from the midpoint of the four eye
  corners, along the eye line, in inter-ocular distances (0 for a frontal face; a head turned about
  20 degrees gives roughly 0.15-0.25 depending on the face).
* ``brightness``: mean grey level of the face area; ``dark_clipped`` / ``bright_clipped``: share of
  its pixels at or below 8 / at or above 247.

Thresholds are in :class:`QualitySettings`; :func:`assess` returns every failed check, not just the
first. Reason codes and their explanations: :data:`REASONS`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from appliance.errors import ConfigError
from appliance.faces.detect import CHIP_SIZE, L_INNER, L_OUTER, NOSE, R_INNER, R_OUTER, Face, face_chip

log = logging.getLogger(__name__)

#: Reason code -> short English explanation (for the officer's screen and the event log).
REASONS: dict[str, str] = {
    "face_too_small": "The face is too small in the image: the passenger should step closer to the camera.",
    "face_cut_off": "Part of the face is outside the image.",
    "blurred": "The face image is blurred (out of focus or moving).",
    "pose_roll": "The head is tilted sideways too far.",
    "pose_yaw": "The head is turned away from the camera too far.",
    "too_dark": "The face is too dark (under-exposed or back-lit).",
    "too_bright": "The face is too bright (over-exposed or glare).",
}

_INNER = slice((CHIP_SIZE - 100) // 2, (CHIP_SIZE + 100) // 2)  # the chip without its 0.25 padding


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of :func:`assess`. Defaults were set on the astronaut test photo and degraded copies
    of it (tests/unit/test_face_quality.py); a lane should check them on its own camera."""

    #: Least distance between the eye centres, frame px (the detector's own minimum at upsample 0 is ~40).
    min_eye_distance_px: float = 32.0
    #: Least normalised sharpness (see the module docstring). The sharp test photo scores about 160
    #: (about 100 after one bilinear resampling), after a Gaussian blur of sigma 1 px 32, 1.5 px 18, 3 px 10.
    min_sharpness: float = 25.0
    #: Largest head roll, degrees.
    max_roll_deg: float = 20.0
    #: Largest yaw proxy (nose offset along the eye line, inter-ocular distances).
    max_yaw: float = 0.3
    #: Mean grey level of the face area must lie in [min_brightness, max_brightness].
    min_brightness: float = 50.0
    max_brightness: float = 210.0
    #: Largest share of the face area clipped to black (<= 8) or to white (>= 247).
    max_clipped: float = 0.2
    #: Largest share of the face box that may lie outside the frame.
    max_outside: float = 0.15

    def __post_init__(self) -> None:
        problems = [
            name for name, ok in (
                ("min_eye_distance_px", self.min_eye_distance_px > 0),
                ("min_sharpness", self.min_sharpness >= 0),
                ("max_roll_deg", 0 < self.max_roll_deg <= 90),
                ("max_yaw", 0 < self.max_yaw <= 1),
                ("min_brightness/max_brightness", 0 <= self.min_brightness < self.max_brightness <= 255),
                ("max_clipped", 0 < self.max_clipped <= 1),
                ("max_outside", 0 <= self.max_outside <= 1),
            ) if not ok
        ]
        if problems:
            raise ConfigError(f"face quality settings out of range: {', '.join(problems)}")


@dataclass(frozen=True)
class Quality:
    ok: bool
    reasons: tuple[str, ...]  # codes from REASONS, in a fixed order; empty when ok
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def explanations(self) -> tuple[str, ...]:
        return tuple(REASONS[r] for r in self.reasons)

    @property
    def sharpness(self) -> float:
        """For ranking several frames of one passage (higher is better)."""
        return self.metrics.get("sharpness", 0.0)


def pose(face: Face) -> tuple[float, float, float]:
    """(eye distance px, roll degrees, yaw proxy) from the five landmarks."""
    p = face.landmarks.astype(np.float64)
    left = (p[L_OUTER] + p[L_INNER]) / 2
    right = (p[R_OUTER] + p[R_INNER]) / 2
    eye = right - left
    iod = float(np.linalg.norm(eye))
    if iod < 1e-6:
        return 0.0, 0.0, 0.0
    roll = math.degrees(math.atan2(eye[1], eye[0]))
    mid = p[[R_OUTER, R_INNER, L_OUTER, L_INNER]].mean(axis=0)
    yaw = float(np.dot(p[NOSE] - mid, eye / iod) / iod)
    return iod, roll, yaw


def measure(image_bgr: np.ndarray, face: Face, chip: np.ndarray | None = None) -> dict[str, float]:
    """Every quality metric of one face (see the module docstring)."""
    if chip is None:
        chip = face_chip(image_bgr, face)
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)[_INNER, _INNER]
    g = grey.astype(np.float32)
    contrast = float(g.var())
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=1)
    sharpness = 1000.0 * float(lap.var()) / max(contrast, 1.0)
    iod, roll, yaw = pose(face)
    h, w = image_bgr.shape[:2]
    x, y, bw, bh = face.box
    inside = max(0, min(x + bw, w) - max(x, 0)) * max(0, min(y + bh, h) - max(y, 0))
    outside = 1.0 - inside / max(1, bw * bh)
    return {
        "eye_distance_px": round(iod, 2),
        "sharpness": round(sharpness, 2),
        "contrast": round(math.sqrt(contrast), 2),
        "roll_deg": round(roll, 2),
        "yaw": round(yaw, 4),
        "brightness": round(float(g.mean()), 2),
        "dark_clipped": round(float((grey <= 8).mean()), 4),
        "bright_clipped": round(float((grey >= 247).mean()), 4),
        "outside": round(outside, 4),
    }


def assess(
    image_bgr: np.ndarray,
    face: Face,
    settings: QualitySettings | None = None,
    chip: np.ndarray | None = None,
) -> Quality:
    """Judge one face; ``chip`` (from ``detect.face_chip``) saves recomputing it when the caller has it."""
    s = settings or QualitySettings()
    m = measure(image_bgr, face, chip)
    reasons = []
    if m["eye_distance_px"] < s.min_eye_distance_px:
        reasons.append("face_too_small")
    if m["outside"] > s.max_outside:
        reasons.append("face_cut_off")
    if m["sharpness"] < s.min_sharpness:
        reasons.append("blurred")
    if abs(m["roll_deg"]) > s.max_roll_deg:
        reasons.append("pose_roll")
    if abs(m["yaw"]) > s.max_yaw:
        reasons.append("pose_yaw")
    if m["brightness"] < s.min_brightness or m["dark_clipped"] > s.max_clipped:
        reasons.append("too_dark")
    if m["brightness"] > s.max_brightness or m["bright_clipped"] > s.max_clipped:
        reasons.append("too_bright")
    log.debug("face quality: %s -> %s", m, ",".join(reasons) or "ok")
    return Quality(not reasons, tuple(reasons), m)
