"""Where the lane looks: the union of recent motion boxes, held briefly, else the whole frame."""

from __future__ import annotations

from appliance.lanes.regions import MotionRegion
from appliance.reads import BBox

W, H = 1920, 1080


def test_no_motion_box_means_the_whole_frame() -> None:
    region = MotionRegion()
    region.update(0.0, None)
    assert region.region(W, H) is None


def test_union_of_recent_boxes_grown_by_the_pad() -> None:
    region = MotionRegion(window_s=0.5, pad=0.04)
    region.update(0.0, (800, 300, 200, 200))
    region.update(0.2, (900, 400, 200, 300))
    grow = int(0.04 * W)
    assert region.region(W, H) == BBox(800 - grow, 300 - grow, 300 + 2 * grow, 400 + 2 * grow)


def test_old_boxes_leave_the_union() -> None:
    region = MotionRegion(window_s=0.5, pad=0.0)
    region.update(0.0, (0, 0, 100, 100))
    region.update(1.0, (1000, 500, 100, 100))
    assert region.region(W, H) == BBox(1000, 500, 100, 100)


def test_last_region_is_held_when_change_stops_then_dropped() -> None:
    region = MotionRegion(window_s=0.5, hold_s=2.0, pad=0.0)
    region.update(0.0, (600, 200, 300, 400))
    region.update(1.0, None)  # still "moving" (gate hysteresis) but nothing changed
    assert region.region(W, H) == BBox(600, 200, 300, 400)
    region.update(2.5, None)
    assert region.region(W, H) is None


def test_region_is_clamped_to_the_frame() -> None:
    region = MotionRegion(pad=0.1)
    region.update(0.0, (0, 900, 300, 180))
    box = region.region(W, H)
    assert box is not None
    assert box.x == 0 and box.y + box.h == H and box.x + box.w <= W


def test_region_covering_nearly_everything_is_the_whole_frame() -> None:
    region = MotionRegion(pad=0.0, min_share=0.85)
    region.update(0.0, (0, 0, W, H - 50))
    assert region.region(W, H) is None

