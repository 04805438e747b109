"""Find faces in a camera frame: dlib's HOG frontal detector and its 5-point landmark model.

* Detector: ``dlib.get_frontal_face_detector()`` (HOG + linear SVM, frontal and near-frontal faces
  only, about +-30 degrees of yaw). At ``upsample=0`` it finds faces whose box is at least about
  80 px wide (inter-ocular distance about 40 px); ``upsample=1`` halves that, at about four times the
  cost. dlib's mmod CNN detector is deliberately not used (seconds per frame on a CPU).
* Landmarks: ``shape_predictor_5_face_landmarks.dat`` from ``face_recognition_models`` (free to use;
  the 68-point model is not: its training data is licensed for non-commercial use only). The five
  points, in dlib's order, are: 0 outer and 1 inner corner of the eye on the image's right (the
  person's left eye), 2 outer and 3 inner corner of the eye on the image's left, 4 the base of the
  nose (subnasale). They are what ``dlib.get_face_chip`` aligns on.
* Large frames are detected on a copy whose longer side is ``max_detect_side`` (INTER_AREA); the
  boxes are mapped back and the landmarks are fitted on the full-resolution frame.

Images come in as OpenCV does them (BGR, or grey), uint8. Nothing here logs pixels or landmarks.
A ``FaceFinder`` holds dlib objects that are not documented as thread-safe: use one per thread.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from appliance.errors import FrameError, ModelError

log = logging.getLogger(__name__)

#: Smallest image side accepted: below this no face the detector can find would fit.
MIN_IMAGE_SIDE = 32
#: Largest image side accepted (a corrupt header must not make us allocate gigabytes).
MAX_IMAGE_SIDE = 16384

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# Landmark indices (dlib 5-point model).
R_OUTER, R_INNER, L_OUTER, L_INNER, NOSE = 0, 1, 2, 3, 4


def packaged_face_model(file_name: str) -> Path:
    """A model file of the ``face_recognition_models`` package (never imported: its ``__init__``
    needs ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("faces: the face_recognition_models package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / file_name
    if not path.is_file():
        raise ModelError(f"faces: {path} is missing (reinstall face_recognition_models)")
    return path


def predictor_path() -> Path:
    """dlib's 5-point landmark model."""
    return packaged_face_model("shape_predictor_5_face_landmarks.dat")


def descriptor_dat_path() -> Path:
    """dlib's ResNet face descriptor as dlib serialises it (what ``dlib_onnx`` converts)."""
    return packaged_face_model("dlib_face_recognition_resnet_model_v1.dat")


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in the coordinates of the frame it was found in."""

    box: tuple[int, int, int, int]  # x, y, w, h (may reach outside the frame)
    score: float  # detector SVM margin: > 0 detected at dlib's default threshold; higher is surer
    landmarks: np.ndarray  # (5, 2) float32, x/y, dlib's 5-point order (see the module docstring)
    shape: dlib.full_object_detection  # the same points for dlib.get_face_chip

    @property
    def eye_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Centres of the eye on the image's left and of the eye on the image's right."""
        p = self.landmarks.astype(np.float64)
        return (p[L_OUTER] + p[L_INNER]) / 2, (p[R_OUTER] + p[R_INNER]) / 2

    @property
    def inter_ocular(self) -> float:
        """Distance between the eye centres, in frame pixels."""
        left, right = self.eye_centres
        return float(np.linalg.norm(right - left))


def as_rgb(image: object, what: str = "face image") -> np.ndarray:
    """A checked, contiguous RGB uint8 copy of a BGR (H, W, 3), BGRA (H, W, 4) or grey (H, W) image."""
    if not isinstance(image, np.ndarray):
        raise FrameError(f"{what}: expected a numpy image, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FrameError(f"{what}: expected uint8 pixels, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise FrameError(f"{what}: expected a BGR, BGRA or grey image, got shape {image.shape}")
    h, w = image.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise FrameError(f"{what}: {w}x{h} is too small (each side must be at least {MIN_IMAGE_SIDE} px)")
    if max(h, w) > MAX_IMAGE_SIDE:
        raise FrameError(f"{what}: {w}x{h} is too large (at most {MAX_IMAGE_SIDE} px a side)")
    channels = 1 if image.ndim == 2 else image.shape[2]
    code = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}[channels]
    return np.ascontiguousarray(cv2.cvtColor(image, code))


def face_chip(image_bgr: np.ndarray, face: Face, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """The aligned face chip dlib's descriptor expects: ``size`` x ``size`` RGB uint8."""
    return chip_from_rgb(as_rgb(image_bgr), face, size, padding)


def chip_from_rgb(rgb: np.ndarray, face: Face, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    chip = dlib.get_face_chip(rgb, face.shape, size=size, padding=padding)
    return np.ascontiguousarray(chip, dtype=np.uint8)


class FaceFinder:
    """Frames -> faces (largest first), with landmarks and aligned chips.

    ``upsample``: 0 (faces from about 80 px wide, ~20 ms for 640x480 on one core) or 1 (from about
    40 px, ~4x slower). ``max_detect_side``: larger frames are detected on a shrunk copy.
    ``min_score``: the detector's SVM margin a face must reach (dlib's own default is 0). 0.2 drops
    the false detection dlib makes on the astronaut photo's suit badge (0.04 at upsample 0, 0.12 at
    upsample 1) while the simulated captures' real faces scored 0.22-1.65.
    """

    def __init__(
        self,
        upsample: int = 0,
        max_detect_side: int = 1280,
        min_score: float = 0.2,
        landmarks_model: Path | None = None,
    ):
        if upsample not in (0, 1):
            raise ValueError("FaceFinder: upsample must be 0 or 1 (2 costs ~16x and finds faces too small to use)")
        if max_detect_side < 160:
            raise ValueError("FaceFinder: max_detect_side must be at least 160 px")
        self.upsample = upsample
        self.max_detect_side = max_detect_side
        self.min_score = float(min_score)
        self._detector = dlib.get_frontal_face_detector()
        path = landmarks_model or predictor_path()
        try:
            self._predictor = dlib.shape_predictor(str(path))
        except RuntimeError as exc:
            raise ModelError(f"face landmarks: cannot load {path}: {exc}") from exc

    def find(self, image_bgr: np.ndarray) -> list[Face]:
        """Every face the detector accepts, largest box first."""
        rgb = as_rgb(image_bgr)
        return self.find_rgb(rgb)

    def find_rgb(self, rgb: np.ndarray) -> list[Face]:
        """``find`` for an image already checked and converted by :func:`as_rgb`."""
        h, w = rgb.shape[:2]
        scale = 1.0
        small = rgb
        if max(h, w) > self.max_detect_side:
            scale = self.max_detect_side / max(h, w)
            small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        rects, scores, _ = self._detector.run(small, self.upsample, self.min_score)
        faces: list[Face] = []
        for rect, score in zip(rects, scores, strict=True):
            if scale != 1.0:
                rect = dlib.rectangle(
                    round(rect.left() / scale), round(rect.top() / scale),
                    round(rect.right() / scale), round(rect.bottom() / scale),
                )
            shape = self._predictor(rgb, rect)
            points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.float32)
            box = (rect.left(), rect.top(), rect.width(), rect.height())
            faces.append(Face(box, float(score), points, shape))
        faces.sort(key=lambda f: f.box[2] * f.box[3], reverse=True)
        log.debug("faces: %d found (scale %.3f, scores %s)", len(faces), scale, [round(f.score, 2) for f in faces])
        return faces

    def chip(self, image_bgr: np.ndarray, face: Face) -> np.ndarray:
        """150x150 RGB uint8 chip aligned on the five landmarks (padding 0.25), for the descriptor."""
        return face_chip(image_bgr, face)
