"""Face quality: size, blur, pose, exposure, on the astronaut photo and degraded copies of it."""

from __future__ import annotations

import cv2
import dlib
import numpy as np
import pytest

from appliance.errors import ConfigError
from appliance.faces.detect import Face, FaceFinder, face_chip
from appliance.faces.quality import REASONS, QualitySettings, assess, pose
from appliance.sim import faces_render as ff


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder()


@pytest.fixture(scope="module")
def finder_up1() -> FaceFinder:
    return FaceFinder(upsample=1)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return ff.astronaut_bgr()


@pytest.fixture(scope="module")
def face(finder, astronaut) -> Face:
    (found,) = finder.find(astronaut)
    return found


def _only_face(finder: FaceFinder, image: np.ndarray) -> Face:
    faces = finder.find(image)
    assert len(faces) == 1
    return faces[0]


def test_original_is_accepted(astronaut, face):
    q = assess(astronaut, face)
    assert q.ok, q.metrics
    assert q.reasons == () and q.explanations == ()
    m = q.metrics
    assert 38 < m["eye_distance_px"] < 48
    assert abs(m["roll_deg"]) < 6 and abs(m["yaw"]) < 0.08
    assert m["sharpness"] > 2 * QualitySettings().min_sharpness
    assert 100 < m["brightness"] < 200
    assert q.sharpness == m["sharpness"]


def test_precomputed_chip_gives_the_same_result(astronaut, face):
    assert assess(astronaut, face, chip=face_chip(astronaut, face)).metrics == assess(astronaut, face).metrics


def test_tiny_face(finder_up1, astronaut):
    small = cv2.resize(astronaut, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    tiny = _only_face(finder_up1, small)
    q = assess(small, tiny)
    assert not q.ok
    assert "face_too_small" in q.reasons
    assert q.metrics["eye_distance_px"] < 25


def test_blurred_face(finder, astronaut):
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 2.5)
    q = assess(blurred, _only_face(finder, blurred))
    assert q.reasons == ("blurred",)
    mild = cv2.GaussianBlur(astronaut, (0, 0), 0.7)
    assert assess(mild, _only_face(finder, mild)).ok  # slight softness is fine


def test_dark_face(finder, astronaut):
    dark = (astronaut.astype(np.float32) * 0.2).astype(np.uint8)
    q = assess(dark, _only_face(finder, dark))
    assert "too_dark" in q.reasons
    assert "too_bright" not in q.reasons


def test_bright_face(astronaut, face):
    bright = np.clip(astronaut.astype(np.float32) * 1.6 + 60, 0, 255).astype(np.uint8)
    q = assess(bright, face)  # same geometry: the detector itself gives up on such a washed-out face
    assert "too_bright" in q.reasons
    assert "too_dark" not in q.reasons


def test_strongly_rotated_face(finder, astronaut):
    m = cv2.getRotationMatrix2D((224.0, 130.0), 35, 1.0)
    rotated = cv2.warpAffine(astronaut, m, (512, 512), borderMode=cv2.BORDER_REFLECT)
    q = assess(rotated, _only_face(finder, rotated))
    assert q.reasons == ("pose_roll",)
    assert q.metrics["roll_deg"] == pytest.approx(3.4 - 35, abs=4)  # the photo itself has about +3 degrees


def _with_landmarks(face: Face, points: np.ndarray) -> Face:
    x, y, w, h = face.box
    shape = dlib.full_object_detection(
        dlib.rectangle(x, y, x + w - 1, y + h - 1), [dlib.point(round(px), round(py)) for px, py in points]
    )
    return Face(face.box, face.score, points.astype(np.float32), shape)


def test_turned_face(astronaut, face):
    points = face.landmarks.astype(np.float64).copy()
    points[4, 0] += 0.45 * face.inter_ocular  # the nose far off the eyes' midpoint: a turned head
    q = assess(astronaut, _with_landmarks(face, points))
    assert "pose_yaw" in q.reasons
    assert q.metrics["yaw"] > 0.4


def test_yaw_proxy_ignores_roll(face):
    iod, roll, yaw = pose(face)
    centre = face.landmarks.mean(axis=0)
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 25, 1.0)
    turned = cv2.transform(face.landmarks[None].astype(np.float64), m)[0]
    iod2, roll2, yaw2 = pose(_with_landmarks(face, turned))
    assert iod2 == pytest.approx(iod, rel=1e-5)
    assert roll2 == pytest.approx(roll - 25, abs=1e-3)
    assert yaw2 == pytest.approx(yaw, abs=1e-5)


def test_face_cut_off(astronaut, face):
    q = assess(astronaut[:, :230], face)  # the right third of the face box lies outside the image
    assert "face_cut_off" in q.reasons


def test_every_reason_is_explained():
    assert all(text.endswith(".") for text in REASONS.values())
    for code in ("face_too_small", "blurred", "pose_roll", "pose_yaw", "too_dark", "too_bright", "face_cut_off"):
        assert code in REASONS


@pytest.mark.parametrize(
    "kwargs",
    [{"min_eye_distance_px": 0}, {"max_roll_deg": 0}, {"max_yaw": 2}, {"min_brightness": 220}, {"max_clipped": 0}],
)
def test_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        QualitySettings(**kwargs)


def test_stricter_settings_change_the_verdict(astronaut, face):
    assert assess(astronaut, face, QualitySettings(min_eye_distance_px=60)).reasons == ("face_too_small",)
