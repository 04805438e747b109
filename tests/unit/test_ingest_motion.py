"""MotionGate: quiet on noise and slow light changes, fires on a moving object, with hysteresis."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from appliance.ingest.motion import MotionGate, MotionResult

H, W = 270, 480  # a quarter of 1080p keeps the tests fast; the gate works on ~160 px anyway


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """A textured static lane background."""
    rng = np.random.default_rng(1)
    base = rng.integers(30, 220, (H, W, 3), dtype=np.uint8)
    return cv2.GaussianBlur(base, (0, 0), 3)


@functools.cache
def _noise_field(k: int) -> np.ndarray:
    return np.random.default_rng(100 + k).standard_normal((H, W, 3), dtype=np.float32)


def noisy(img: np.ndarray, k: int, sigma: float) -> np.ndarray:
    """img plus Gaussian sensor noise; k picks one of 16 independent noise fields."""
    return np.clip(img.astype(np.float32) + sigma * _noise_field(k % 16), 0, 255).astype(np.uint8)


def with_box(img: np.ndarray, x: int, y: int = 90, w: int = 90, h: int = 80) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (x, y), (x + w, y + h), (15, 15, 15), -1)
    return out


@pytest.mark.parametrize("sigma", [4.0, 12.0])
def test_sensor_noise_does_not_trigger(scene: np.ndarray, sigma: float) -> None:
    gate = MotionGate()
    results = [gate.update(noisy(scene, k, sigma)) for k in range(60)]
    assert not any(r.moving for r in results)
    assert max(r.fraction for r in results) < gate.min_fraction


def test_rain_speckle_does_not_trigger(scene: np.ndarray) -> None:
    """150 small bright streaks per frame at random places (rain/snow in headlights)."""
    rng = np.random.default_rng(5)
    gate = MotionGate()
    results = []
    for _ in range(30):
        f = scene.copy()
        for _ in range(150):
            x, y = int(rng.integers(0, W - 3)), int(rng.integers(0, H - 6))
            f[y : y + 6, x : x + 2] = 255
        results.append(gate.update(f))
    assert not any(r.moving for r in results), max(r.fraction for r in results)


@pytest.mark.parametrize("kind", ["offset", "gain"])
def test_slow_global_light_change_does_not_trigger(scene: np.ndarray, kind: str) -> None:
    gate = MotionGate()
    results = []
    for i in range(150):
        f = scene.astype(np.float32)
        f = f - 60 + 0.8 * i if kind == "offset" else f * (0.55 + 0.006 * i)  # dusk to day, in 30 s at 5 fps
        results.append(gate.update(noisy(np.clip(f, 0, 255).astype(np.uint8), i, 3.0)))
    assert not any(r.moving for r in results), max(r.fraction for r in results)


def test_light_compensation_is_what_keeps_the_gate_quiet(scene: np.ndarray) -> None:
    """Control for the test above: the same ramp, twice as fast, with compensation off, fires."""
    gate = MotionGate(compensate_light=False)
    fired = False
    for i in range(100):
        f = np.clip(scene.astype(np.float32) - 60 + 1.6 * i, 0, 255).astype(np.uint8)
        fired |= gate.update(f).moving
    assert fired
    gate = MotionGate()
    assert not any(
        gate.update(np.clip(scene.astype(np.float32) - 60 + 1.6 * i, 0, 255).astype(np.uint8)).moving
        for i in range(100)
    )


def test_moving_rectangle_triggers_with_bbox_and_hysteresis(scene: np.ndarray) -> None:
    gate = MotionGate(open_frames=2, close_frames=4)
    states: list[MotionResult] = []
    for i in range(40):
        img = scene if not 10 <= i < 25 else with_box(scene, x=20 + 15 * (i - 10))
        states.append(gate.update(noisy(img, i, 4.0)))
    moving = [r.moving for r in states]
    assert moving[:10] == [False] * 10
    assert states[10].raw and not states[10].moving  # one frame is not enough to open
    assert all(moving[11:25])  # opened on the second moving frame
    assert moving[25:28] == [True] * 3  # stays open for close_frames - 1 still frames
    assert moving[28:] == [False] * 12  # closed on the 4th still frame
    r = states[15]
    assert r.fraction > 0.02 and r.bbox is not None
    x, y, w, h = r.bbox
    box_x = 20 + 15 * 5
    assert x <= box_x + 10 and x + w >= box_x + 80  # the box lies inside the bbox ...
    assert y <= 100 and y + h >= 160
    assert w < 300 and h < 200  # ... which is not the whole frame


def test_single_frame_blip_does_not_open_the_gate(scene: np.ndarray) -> None:
    gate = MotionGate(open_frames=2)
    seq = [scene] * 5 + [with_box(scene, 100)] + [scene] * 5
    results = [gate.update(f) for f in seq]
    assert results[5].raw
    assert not any(r.moving for r in results)


def test_roi_ignores_motion_outside(scene: np.ndarray) -> None:
    roi = [(240, 0), (479, 0), (479, 269), (240, 269)]  # right half only
    gate = MotionGate(roi=roi)
    left = [gate.update(f) for f in [scene] * 3 + [with_box(scene, 20 + 10 * i) for i in range(6)]]
    assert not any(r.moving for r in left)
    gate = MotionGate(roi=roi)
    right = [gate.update(f) for f in [scene] * 3 + [with_box(scene, 280 + 10 * i) for i in range(6)]]
    assert any(r.moving for r in right)


def test_frame_size_change_relearns_and_gray_input_works(scene: np.ndarray) -> None:
    gate = MotionGate()
    gate.update(scene)
    gray = cv2.cvtColor(cv2.resize(scene, (320, 180)), cv2.COLOR_BGR2GRAY)
    r = gate.update(gray)
    assert not r.moving and r.fraction == 0.0
    assert not gate.update(gray).moving


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 8}, {"blur_ksize": 4}, {"alpha": 0.0}, {"open_frames": 0}, {"roi": [(0, 0), (1, 1)]}],
)
def test_bad_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MotionGate(**kwargs)
