"""FaceFinder: dlib HOG detector + 5-point landmarks, on the astronaut photo and images made from it."""

from __future__ import annotations

import cv2
import dlib
import numpy as np
import pytest

from appliance.errors import FrameError
from appliance.faces.detect import FaceFinder, as_rgb, face_chip
from appliance.sim import faces_render as ff


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return ff.astronaut_bgr()


@pytest.fixture(scope="module")
def astronaut_faces(finder, astronaut):
    return finder.find(astronaut)


def test_one_face_with_plausible_landmarks(astronaut_faces):
    assert len(astronaut_faces) == 1
    face = astronaut_faces[0]
    x, y, w, h = face.box
    assert 60 <= w <= 140 and 60 <= h <= 140
    assert face.score > 0.5
    p = face.landmarks
    assert p.shape == (5, 2) and p.dtype == np.float32
    # every point inside the box (the box is tight around eyes, nose and mouth)
    assert np.all((p[:, 0] > x) & (p[:, 0] < x + w) & (p[:, 1] > y) & (p[:, 1] < y + h))
    # dlib's order: 0/1 outer/inner corner of the eye on the image's right, 2/3 of the one on the left
    assert p[0, 0] > p[1, 0] > p[3, 0] > p[2, 0]
    iod = face.inter_ocular
    assert 35 < iod < 55
    eyes_y = p[:4, 1].mean()
    assert 0.5 * iod < p[4, 1] - eyes_y < 1.0 * iod  # nose base below the eyes
    left, right = face.eye_centres
    assert left[0] < p[4, 0] < right[0]  # and between them
    # close to the fixture's fixed reference points (measured once)
    assert np.abs(p - ff.ASTRONAUT_LANDMARKS).max() < 4


def test_chip_is_rgb_and_matches_dlib(finder, astronaut, astronaut_faces):
    face = astronaut_faces[0]
    chip = finder.chip(astronaut, face)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    rgb = cv2.cvtColor(astronaut, cv2.COLOR_BGR2RGB)
    expected = dlib.get_face_chip(rgb, face.shape, size=150, padding=0.25)
    assert np.array_equal(chip, expected)
    skin = chip[60:110, 45:105].reshape(-1, 3).mean(axis=0)
    assert skin[0] > skin[2] + 20  # red above blue: channels were swapped to RGB, not left BGR


def test_no_face_on_blank_or_landscape(finder):
    assert finder.find(np.zeros((300, 400, 3), np.uint8)) == []
    assert finder.find(np.full((300, 400, 3), 200, np.uint8)) == []
    assert finder.find(ff.landscape()) == []


def test_two_faces_side_by_side(finder):
    faces = finder.find(ff.side_by_side())
    assert len(faces) == 2
    xs = sorted(f.box[0] for f in faces)
    assert 480 < xs[1] - xs[0] < 540  # one per copy


def test_faces_sorted_largest_first(finder, astronaut):
    big = cv2.resize(astronaut, None, fx=1.4, fy=1.4, interpolation=cv2.INTER_CUBIC)
    canvas = np.zeros((big.shape[0], astronaut.shape[1] + big.shape[1], 3), np.uint8)
    canvas[: astronaut.shape[0], : astronaut.shape[1]] = astronaut
    canvas[:, astronaut.shape[1]:] = big
    faces = finder.find(canvas)
    assert len(faces) == 2
    assert faces[0].box[0] > astronaut.shape[1]  # the enlarged copy comes first
    assert faces[0].box[2] > faces[1].box[2]


def test_large_frame_is_detected_downscaled_and_mapped_back(finder, astronaut, astronaut_faces):
    canvas = np.full((1200, 1920, 3), 90, np.uint8)
    big = cv2.resize(astronaut, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    ox, oy = 700, 100
    canvas[oy:oy + 1024, ox:ox + 1024] = big
    faces = finder.find(canvas)
    assert len(faces) == 1
    expected = astronaut_faces[0].landmarks * 2 + (ox, oy)
    assert np.abs(faces[0].landmarks - expected).max() < 8  # landmarks fitted at full resolution
    x, y, w, _ = faces[0].box
    assert ox < x < ox + 1024 and oy < y < oy + 1024 and 150 < w < 260
    assert face_chip(canvas, faces[0]).shape == (150, 150, 3)


def test_grey_and_bgra_images_are_accepted(finder, astronaut):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert len(finder.find(grey)) == 1
    bgra = cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA)
    assert len(finder.find(bgra)) == 1


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ([[0, 0], [0, 0]], "numpy image"),
        (None, "numpy image"),
        (np.zeros((100, 100, 3), np.float32), "uint8"),
        (np.zeros((100, 100, 2), np.uint8), "shape"),
        (np.zeros((2, 100, 100, 3), np.uint8), "shape"),
        (np.zeros((100,), np.uint8), "shape"),
        (np.zeros((20, 300, 3), np.uint8), "too small"),
        (np.zeros((0, 0, 3), np.uint8), "too small"),
    ],
)
def test_bad_images_raise_frame_error(finder, image, message):
    with pytest.raises(FrameError, match=message):
        finder.find(image)
    with pytest.raises(FrameError):
        as_rgb(image)


def test_bad_settings():
    with pytest.raises(ValueError):
        FaceFinder(upsample=2)
    with pytest.raises(ValueError):
        FaceFinder(max_detect_side=100)
