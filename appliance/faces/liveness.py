"""Is a live person in front of the camera? Two simple, explainable presentation-attack checks.

Neither check is a trained presentation-attack-detection (PAD) model, and neither has been measured
against real attacks: the thresholds were set on simulated captures (``tests/faces_fixtures.py``:
one real face photo, warped to imitate a head turn, printed and replayed on a screen in simulation).
Treat every number here as a starting point to re-measure on the lane's own camera with real prints,
phones and tablets before relying on it.

``passive`` (one frame at a time; the median over a few frames of the capture)
    Four image cues, each scored 0 (looks live) .. 1 (looks like an attack):

    * ``moire``: the strongest narrow peak in the high-frequency power spectrum of the face region
      (a square of 0.9 times the face box, Hann-windowed; periods of about 2-7 px), relative to the
      median power at the same spatial frequency. A screen's pixel grid beating with the sensor's,
      or printing dots, gives such peaks; skin, hair and eyes do not. Defeated by: prints or screens
      with detail finer than the camera resolves, a defocused or distant presentation, heavy JPEG
      compression. False alarms: fine regular textures inside the face box (some glasses frames, a
      patterned headscarf), 8x8 JPEG block artefacts.
    * ``print_colours``: low dynamic range (1st-99th percentile of grey on the chip) AND low mean
      saturation, as on a matte print. Weak: a pale face in flat light comes close; a monochrome or
      infrared camera always has zero saturation (set ``colour_cues=False`` there).
    * ``glare``: the largest blob of clipped, colourless pixels around the face (a square of 1.2
      times the face box), as a share of that square: a reflection on a screen's glass. Glare beside
      the face is not seen; an oily forehead under a spot light can be.
    * ``frame_border``: a convex four-sided contour, searched on the whole frame, that encloses all
      five landmarks and is 1.5-40 times the face box's area: the edge of a sheet of paper, a phone
      or tablet bezel. Missed when the border is outside the frame, hidden by fingers along a whole
      side, or low in contrast against the background. A window or door frame closed all round the
      head would trigger it.

    The check fails when any cue's median reaches ``passive_threshold``; its score is the largest
    median cue score.

``motion`` (across the frames of one capture)
    A real head that turns even a little moves the nose base sideways against the eye corners (the
    nose stands out of the face); a flat picture turned about one axis does not. The check measures,
    per frame, the nose base's offset from the eye corners' midpoint along the eye line, in
    inter-ocular distances (IOD), and its spread over the capture (``parallax``; the highest and the
    lowest frame are dropped from 6 frames on, so one bad landmark fit does not count).

    Why not an affine fitted on the four eye corners, predicting the nose: the four corners lie
    almost on one line, so the affine's mapping of the perpendicular direction, where the nose is,
    is set by landmark noise. On the simulated captures its nose residual was 0.07-0.47 IOD for
    rigid pictures and up to 0.31 for a still face: no separation. Along the eye line the motion is
    well determined, and a picture turned about one axis keeps the nose's offset along that line
    (the cosine of the turn cancels in the ratio); that component alone is used, in effect the
    residual of a similarity along the eye line with a free scale across it.

    * ``parallax >= min_parallax``: passed.
    * the face moved (roll, position or size changed by the ``min_*`` amounts) but without parallax:
      failed, ``no_parallax`` (a flat picture, or a person who moved without turning the head).
    * hardly any movement at all: cannot tell, ``no_motion`` (ask the passenger to turn the head a
      little; MANUAL meanwhile). Fewer than ``min_frames`` frames: cannot tell, ``too_few_frames``.

    Defeated by:

    * a video replay of the real person's moving head (the passive cues are then the only defence),
      a 3D mask, a photo bent around a cylinder or cut out around the nose;
    * a flat picture tilted about both axes at once: pitch and yaw together shear the face, which
      moves the nose along the eye line by about 0.73 * tan(yaw) * sin(pitch) IOD. On exact
      (noise-free) landmark tracks of a picture turned at random about both axes, 8 frames each, 300
      tracks per row: with tilts up to 15 degrees none reached ``min_parallax`` (largest 0.075), up
      to 20 degrees 13 % did, up to 25 degrees 43 %; a picture pitched 25 degrees and turned +-20
      degrees passes (kept as a known-limit test in tests/unit/test_face_liveness.py). Five
      landmarks, four of them almost on a line, cannot tell that shear from a head turn; dense
      optical flow over the face (does it follow one homography?) could, and is the next step if
      the motion check must carry weight;
    * landmark errors: glare or a finger over an eye, or motion blur, can throw the 5-point fit
      about and fake parallax (seen in simulation with a glare blob over one eye of a replayed
      photo; the passive glare cue flagged that capture).

    Nodding (pitch) is not used: a tilted picture changes the vertical offsets too.

There is no blink check: the five landmarks do not locate the eyelids, the intensity of the eye
regions changes with gaze, glasses and lighting as much as with a blink, and people blink every few
seconds, so a 1-2 s capture often holds none: such a check could neither pass nor fail reliably, and
a replayed video blinks anyway.

``check`` combines the enabled checks: any failure -> ``live=False``; else any "cannot tell" ->
``live=None``; else ``live=True``. Only numbers (scores) are logged, at DEBUG.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from appliance.errors import ConfigError
from appliance.faces.detect import CHIP_SIZE, L_INNER, L_OUTER, NOSE, R_INNER, R_OUTER, Face, as_rgb, chip_from_rgb

log = logging.getLogger(__name__)

CHECKS = ("passive", "motion")

#: Reason code -> short English explanation.
REASONS: dict[str, str] = {
    "moire": "Fine regular patterns on the face, as from a screen's pixels or a print's dots.",
    "print_colours": "Washed-out colours and low contrast on the face, as on a printed photo.",
    "glare": "A large patch of glare on the face, as on a screen's glass.",
    "frame_border": "A straight-edged frame (paper edge or screen bezel) surrounds the face.",
    "no_parallax": "The face moved like a flat picture: the nose did not shift against the eyes.",
    "no_motion": "The head hardly moved, so liveness cannot be judged: ask the passenger to turn the head a little.",
    "too_few_frames": "Too few frames with one face to judge head movement.",
    "no_frames": "No frame with a face to judge.",
}

_INNER = slice((CHIP_SIZE - 100) // 2, (CHIP_SIZE + 100) // 2)


def _ramp(value: float, zero: float, one: float) -> float:
    """0 at ``zero``, 1 at ``one``, linear between, clipped (works for falling ramps too)."""
    if one == zero:
        return float(value >= one)
    return float(min(1.0, max(0.0, (value - zero) / (one - zero))))


@dataclass(frozen=True)
class LivenessSettings:
    """Which checks run, and their thresholds. Cue ramps go from the value scoring 0 to the value
    scoring 1; the defaults sit between what the simulated live and attack captures measured."""

    checks: tuple[str, ...] = CHECKS
    # -- passive --
    passive_threshold: float = 0.5
    #: Frames of the capture the passive cues are computed on (evenly spread), median taken.
    passive_frames: int = 3
    #: Spectral peak / median power: simulated live captures 9-35, print 160-360, screen 350-2500.
    moire_ramp: tuple[float, float] = (60.0, 150.0)
    colour_cues: bool = True
    #: Grey 1st-99th percentile range of the chip: simulated live 159-184, print 89-99, screen 169-183.
    range_ramp: tuple[float, float] = (130.0, 100.0)
    #: Mean saturation (0..1) of the chip: simulated live 0.30, print 0.11, screen 0.18.
    saturation_ramp: tuple[float, float] = (0.2, 0.12)
    #: Largest glare blob, share of the face region (1.2 x the box): simulated live <= 0.014, screen 0.06-0.09.
    glare_ramp: tuple[float, float] = (0.03, 0.07)
    border: bool = True
    # -- motion --
    min_frames: int = 4
    #: Least spread of the nose's offset along the eye line, in inter-ocular distances. Simulated:
    #: rigid pictures 0.015-0.034, a still face 0.001, head turns 0.086 (small) and 0.154 (larger).
    min_parallax: float = 0.08
    #: Movement that makes a missing parallax count as a flat picture (any one of them suffices).
    min_roll_change_deg: float = 3.0
    min_shift: float = 0.25  # eye-midpoint travel, inter-ocular distances
    min_scale_change: float = 0.08  # relative change of the inter-ocular distance

    def __post_init__(self) -> None:
        unknown = [c for c in self.checks if c not in CHECKS]
        if unknown or not self.checks:
            raise ConfigError(f"liveness checks must be a non-empty subset of {CHECKS}, got {self.checks}")
        if not 0 < self.passive_threshold <= 1 or self.passive_frames < 1:
            raise ConfigError("liveness: passive_threshold must be in (0, 1] and passive_frames >= 1")
        if self.min_frames < 2 or self.min_parallax <= 0:
            raise ConfigError("liveness: min_frames must be >= 2 and min_parallax > 0")
        if min(self.min_roll_change_deg, self.min_shift, self.min_scale_change) <= 0:
            raise ConfigError("liveness: the min_* movement thresholds must be > 0")


@dataclass(frozen=True)
class CheckResult:
    name: str
    score: float  # passive: attack score 0..1 (high = attack-like); motion: parallax in IODs (high = live-like)
    passed: bool | None  # None: cannot tell
    reasons: tuple[str, ...] = ()
    details: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Liveness:
    live: bool | None  # None: cannot tell (the lane goes to MANUAL)
    reasons: tuple[str, ...]
    scores: dict[str, float]
    checks: tuple[CheckResult, ...] = ()

    @property
    def explanations(self) -> tuple[str, ...]:
        return tuple(REASONS[r] for r in self.reasons)


# -- passive -------------------------------------------------------------------------------------


def _square(box: tuple[int, int, int, int], k: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A square of ``k`` times the box's larger side around the box's centre, clipped: x0, y0, x1, y1."""
    x, y, w, h = box
    cx, cy, half = x + w / 2, y + h / 2, k * max(w, h) / 2
    return (max(0, round(cx - half)), max(0, round(cy - half)),
            min(shape[1], round(cx + half)), min(shape[0], round(cy + half)))


def moire_peak(grey: np.ndarray) -> float:
    """Strongest narrow high-frequency spectral peak of a grey patch, over the median power at its radius."""
    n = min(grey.shape[:2])
    if n < 24:
        return 0.0
    g = grey[:n, :n].astype(np.float32)
    g -= g.mean()
    window = np.outer(np.hanning(n), np.hanning(n)).astype(np.float32)
    power = np.abs(np.fft.fftshift(np.fft.fft2(g * window))) ** 2
    fy, fx = np.mgrid[0:n, 0:n]
    radius = np.hypot(fx - n // 2, fy - n // 2)
    rings = np.round(radius).astype(np.int64)
    band = (radius >= 0.14 * n) & (radius <= 0.48 * n)  # periods of about 2 to 7 px
    ring_ids = rings[band]
    values = power[band]
    order = np.argsort(ring_ids, kind="stable")
    ids_sorted, vals_sorted = ring_ids[order], values[order]
    starts = np.flatnonzero(np.r_[True, ids_sorted[1:] != ids_sorted[:-1]])
    medians = np.array([np.median(part) for part in np.split(vals_sorted, starts[1:])])
    ring_median = np.repeat(medians, np.diff(np.r_[starts, len(ids_sorted)]))
    whitened = vals_sorted / np.maximum(ring_median, 1e-9)
    top = np.partition(whitened, -4)[-4:]  # a grating gives a symmetric pair of peaks, often split in two bins
    return float(top.mean())


def glare_share(region_bgr: np.ndarray) -> float:
    """Largest connected patch of clipped, colourless pixels, as a share of the region."""
    hsv = cv2.cvtColor(region_bgr, cv2.COLOR_BGR2HSV)
    mask = ((hsv[..., 2] >= 240) & (hsv[..., 1] <= 50)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return 0.0
    return float(stats[1:, cv2.CC_STAT_AREA].max()) / mask.size


def frame_border(image_bgr: np.ndarray, face: Face, max_side: int = 480) -> float:
    """1.0 when a convex quadrilateral contour encloses the face (paper edge, bezel), else 0.0.

    Searched on the whole frame, shrunk to ``max_side``: a print or a phone is usually much taller
    than the face on it, so a window around the face would cut its border off."""
    grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY) if image_bgr.ndim == 3 else image_bgr
    scale = min(1.0, max_side / max(grey.shape[:2]))
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    edges = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 40, 120)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    box_area = face.box[2] * face.box[3] * scale * scale
    points = [(float(px) * scale, float(py) * scale) for px, py in face.landmarks]
    for contour in contours:
        area = cv2.contourArea(contour)
        if area < 1.5 * box_area or area > 40 * box_area:
            continue
        hull = cv2.convexHull(contour)
        quad = cv2.approxPolyDP(hull, 0.03 * cv2.arcLength(hull, True), True)
        if len(quad) != 4 or not cv2.isContourConvex(quad):
            continue
        if area < 0.85 * cv2.contourArea(quad):  # the contour must fill its quadrilateral (no blob)
            continue
        if all(cv2.pointPolygonTest(quad, p, False) > 0 for p in points):
            return 1.0
    return 0.0


def passive_cues(image_bgr: np.ndarray, face: Face, settings: LivenessSettings | None = None,
                 chip: np.ndarray | None = None) -> dict[str, float]:
    """Raw measures and cue scores (``*_cue``, 0..1) of one frame."""
    s = settings or LivenessSettings()
    rgb = as_rgb(image_bgr)
    bgr = image_bgr if image_bgr.ndim == 3 and image_bgr.shape[2] == 3 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if chip is None:
        chip = chip_from_rgb(rgb, face)
    x0, y0, x1, y1 = _square(face.box, 0.9, bgr.shape)
    face_region = bgr[y0:y1, x0:x1]
    out: dict[str, float] = {}
    peak = moire_peak(cv2.cvtColor(face_region, cv2.COLOR_BGR2GRAY)) if face_region.size else 0.0
    out["moire_peak"] = peak
    out["moire_cue"] = _ramp(peak, *s.moire_ramp)
    if s.colour_cues:
        inner = chip[_INNER, _INNER]
        grey = cv2.cvtColor(inner, cv2.COLOR_RGB2GRAY)
        lo, hi = np.percentile(grey, (1, 99))
        saturation = float(cv2.cvtColor(inner, cv2.COLOR_RGB2HSV)[..., 1].mean()) / 255.0
        out["dynamic_range"] = float(hi - lo)
        out["saturation"] = saturation
        out["print_colours_cue"] = min(_ramp(float(hi - lo), *s.range_ramp), _ramp(saturation, *s.saturation_ramp))
    gx0, gy0, gx1, gy1 = _square(face.box, 1.2, bgr.shape)
    glare_region = bgr[gy0:gy1, gx0:gx1]
    glare = glare_share(glare_region) if glare_region.size else 0.0
    out["glare_share"] = glare
    out["glare_cue"] = _ramp(glare, *s.glare_ramp)
    if s.border:
        out["frame_border_cue"] = frame_border(bgr, face)
    return out


def passive(frames: Sequence[tuple[np.ndarray, Face]], settings: LivenessSettings | None = None) -> CheckResult:
    """The passive check on up to ``passive_frames`` frames evenly spread over the capture."""
    s = settings or LivenessSettings()
    if not frames:
        return CheckResult("passive", 0.0, None, ("no_frames",))
    picks = sorted(set(np.linspace(0, len(frames) - 1, min(s.passive_frames, len(frames))).round().astype(int)))
    per_frame = [passive_cues(frames[i][0], frames[i][1], s) for i in picks]
    details = {k: float(np.median([c[k] for c in per_frame])) for k in per_frame[0]}
    cues = {k[: -len("_cue")]: v for k, v in details.items() if k.endswith("_cue")}
    score = max(cues.values())
    reasons = tuple(name for name, v in cues.items() if v >= s.passive_threshold)
    return CheckResult("passive", round(score, 4), not reasons, reasons, {k: round(v, 4) for k, v in details.items()})


# -- motion --------------------------------------------------------------------------------------


def _trimmed_range(values: np.ndarray) -> float:
    """max - min, without the single highest and lowest value when there are 6 or more."""
    v = np.sort(np.asarray(values, np.float64))
    if len(v) >= 6:
        v = v[1:-1]
    return float(v[-1] - v[0]) if len(v) else 0.0


def landmark_geometry(landmarks: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """(inter-ocular distance, roll in degrees, nose offset along the eye line in IODs, eye midpoint)."""
    p = np.asarray(landmarks, np.float64)
    left = (p[L_OUTER] + p[L_INNER]) / 2
    right = (p[R_OUTER] + p[R_INNER]) / 2
    eye = right - left
    iod = float(np.linalg.norm(eye))
    mid = p[[R_OUTER, R_INNER, L_OUTER, L_INNER]].mean(axis=0)
    if iod < 1e-6:
        return 0.0, 0.0, 0.0, mid
    offset = float(np.dot(p[NOSE] - mid, eye / iod) / iod)
    return iod, math.degrees(math.atan2(eye[1], eye[0])), offset, mid


def motion(faces: Sequence[Face], settings: LivenessSettings | None = None) -> CheckResult:
    """The motion-parallax check on the faces of one capture, in time order (one face per frame)."""
    s = settings or LivenessSettings()
    if len(faces) < s.min_frames:
        return CheckResult("motion", 0.0, None, ("too_few_frames",), {"frames": float(len(faces))})
    geo = [landmark_geometry(f.landmarks) for f in faces]
    iods = np.array([g[0] for g in geo])
    if iods.min() <= 0:
        return CheckResult("motion", 0.0, None, ("no_motion",), {"frames": float(len(faces))})
    rolls = np.array([g[1] for g in geo])
    offsets = np.array([g[2] for g in geo])
    mids = np.array([g[3] for g in geo])
    ref = float(np.median(iods))
    parallax = _trimmed_range(offsets)
    roll_change = _trimmed_range(np.unwrap(np.radians(rolls)) * 180 / math.pi)
    shift = math.hypot(_trimmed_range(mids[:, 0]), _trimmed_range(mids[:, 1])) / ref
    scale_change = _trimmed_range(np.log(iods / ref))
    moved = max(
        roll_change / s.min_roll_change_deg,
        shift / s.min_shift,
        scale_change / math.log1p(s.min_scale_change),
        parallax / s.min_parallax,
    )
    details = {
        "frames": float(len(faces)),
        "parallax": round(parallax, 4),
        "roll_change_deg": round(roll_change, 3),
        "shift": round(shift, 4),
        "scale_change": round(math.expm1(scale_change), 4),
        "movement": round(moved, 3),
    }
    if parallax >= s.min_parallax:
        return CheckResult("motion", round(parallax, 4), True, (), details)
    if moved >= 1.0:
        return CheckResult("motion", round(parallax, 4), False, ("no_parallax",), details)
    return CheckResult("motion", round(parallax, 4), None, ("no_motion",), details)


# -- all checks ----------------------------------------------------------------------------------


def check(frames: Sequence[tuple[np.ndarray, Face]], settings: LivenessSettings | None = None) -> Liveness:
    """Run the enabled checks on one capture: (frame, its one face) pairs in time order."""
    s = settings or LivenessSettings()
    if not frames:
        return Liveness(None, ("no_frames",), {})
    results: list[CheckResult] = []
    if "passive" in s.checks:
        results.append(passive(frames, s))
    if "motion" in s.checks:
        results.append(motion([face for _, face in frames], s))
    scores: dict[str, float] = {}
    for r in results:
        scores[r.name] = r.score
        scores.update({f"{r.name}_{k}": v for k, v in r.details.items()})
    failed = [r for r in results if r.passed is False]
    unsure = [r for r in results if r.passed is None]
    if failed:
        live: bool | None = False
        reasons = tuple(code for r in failed for code in r.reasons)
    elif unsure:
        live = None
        reasons = tuple(code for r in unsure for code in r.reasons)
    else:
        live, reasons = True, ()
    log.debug("liveness: %s %s", live, {k: round(v, 4) for k, v in scores.items()})
    return Liveness(live, reasons, scores, tuple(results))
