"""The generic synthetic anomalies the X-ray detector trains on (appliance/training/xray_synth.py)."""

from __future__ import annotations

import cv2
import numpy as np

from appliance.training.xray_synth import T_MIN, add_object, partition, transplant


def _load(value: float = 2.0, shape: tuple[int, int] = (128, 128)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    high = np.full(shape, value, np.float32) + 0.01 * rng.standard_normal(shape).astype(np.float32)
    return high, (high * 1.1).astype(np.float32)


def test_an_added_object_attenuates_inside_its_label_only() -> None:
    high, low = _load()
    for seed in range(20):
        new_high, new_low, label = add_object(high, low, np.random.default_rng(seed))
        inside, outside = label > 0, label == 0
        if inside.sum() < 10:
            continue
        # More attenuation where the object is; the rest of the patch is untouched.
        assert new_high[inside].mean() > high[inside].mean() + 0.05
        far = cv2.dilate(label, np.ones((7, 7), np.uint8)) == 0  # beyond the soft edge
        assert np.abs(new_high - high)[far].max() < 1e-4
        assert outside.sum() > far.sum()
        assert new_low[inside].mean() > low[inside].mean()


def test_an_object_over_a_dense_load_starves_like_the_calibration_clips() -> None:
    high, low = _load(7.5)
    worst = 0.0
    for seed in range(20):
        new_high, _, _ = add_object(high, low, np.random.default_rng(seed))
        worst = max(worst, float(new_high.max()))
    assert worst <= -np.log(T_MIN) + 1e-4  # never past the floor a real calibrated scan can show


def test_a_transplant_is_labelled_where_the_image_changed() -> None:
    high, low = _load(2.0)
    same_high, same_low = _load(2.0)
    other_high, other_low = _load(4.0)
    _, _, label_same = transplant(high, low, same_high, same_low, np.random.default_rng(1))
    new_high, _, label_other = transplant(high, low, other_high, other_low, np.random.default_rng(1))
    assert label_same.sum() == 0  # the same load pasted over itself is no anomaly
    assert label_other.sum() > 100
    assert np.median(new_high[label_other > 0]) > 3.9  # the other load, bar the blended edge


def test_a_partition_is_a_straight_plate_across_the_patch() -> None:
    high, low = _load(1.0)
    other_high, other_low = _load(3.0)
    for seed in range(10):
        new_high, _, label = partition(high, low, other_high, other_low, np.random.default_rng(seed))
        rows, cols = np.nonzero(label)
        assert len(rows)
        # it spans the patch in one direction
        assert (rows.min() == 0 and rows.max() == 127) or (cols.min() == 0 and cols.max() == 127)
        assert new_high[label > 0].mean() > high[label > 0].mean()
