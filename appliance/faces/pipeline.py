"""The face steps of a passenger lane, configured from ``FacesConfig``: find, align, judge, check liveness.

``PassengerLane`` talks to this through its ``FacePipeline`` protocol, so a test or another
detector can stand in. Chips are cut at the size and padding the embedding model's manifest asks
for (``FaceEmbedder.chip_size`` / ``padding``), so another embedding model with its own alignment
works without code changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from appliance.config import FacesConfig
from appliance.faces import liveness as liveness_checks
from appliance.faces.detect import Face, FaceFinder, face_chip
from appliance.faces.quality import QualitySettings, assess


def quality_settings(config: FacesConfig) -> QualitySettings:
    q = config.quality
    return QualitySettings(
        min_eye_distance_px=q.min_eye_distance_px, min_sharpness=q.min_sharpness, max_roll_deg=q.max_roll_deg,
        max_yaw=q.max_yaw, min_brightness=q.min_brightness, max_brightness=q.max_brightness,
        max_clipped=q.max_clipped,
    )


def liveness_settings(config: FacesConfig) -> liveness_checks.LivenessSettings:
    c = config.liveness
    return liveness_checks.LivenessSettings(
        checks=tuple(c.checks), min_frames=c.min_frames, min_parallax=c.min_parallax,
        passive_threshold=c.passive_threshold,
    )


#: A face beyond the largest one counts (as a second person: tailgating) only from this detector score.
#: dlib's HOG finds false faces on textures at low scores (0.22-0.29 on the astronaut's suit patch after
#: video compression) while the simulated second people scored 0.9-1.3; a real second person turned away
#: or half hidden may score lower and be missed (docs/FACES.md).
EXTRA_FACE_MIN_SCORE = 0.5


class DlibFacePipeline:
    """dlib HOG detection + 5-point landmarks, the quality gate and the liveness checks.

    Holds dlib objects that are not documented as thread-safe: one instance per lane thread.
    """

    def __init__(self, config: FacesConfig, chip_size: int = 150, padding: float = 0.25,
                 finder: FaceFinder | None = None):
        self.finder = finder or FaceFinder()
        self.chip_size = chip_size
        self.padding = padding
        self.quality_settings = quality_settings(config)
        self.liveness_settings = liveness_settings(config)

    def find(self, image: np.ndarray) -> list[Face]:
        """The faces in a frame, largest first; faces other than the largest need EXTRA_FACE_MIN_SCORE."""
        faces = self.finder.find(image)
        return faces[:1] + [f for f in faces[1:] if f.score >= EXTRA_FACE_MIN_SCORE]

    def chip(self, image: np.ndarray, face: Any) -> np.ndarray:
        return face_chip(image, face, self.chip_size, self.padding)

    def quality(self, image: np.ndarray, face: Any) -> tuple[bool, tuple[str, ...], float]:
        q = assess(image, face, self.quality_settings)
        return q.ok, q.reasons, q.sharpness

    def liveness(self, frames: list[tuple[np.ndarray, Any]]) -> tuple[bool | None, tuple[str, ...], dict[str, float]]:
        result = liveness_checks.check(frames, self.liveness_settings)
        return result.live, result.reasons, result.scores
