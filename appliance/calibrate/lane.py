"""The lane ROI and the expected plate size, checked on a camera's own frames with the lane's plate reader.

Every ``every``-th frame of a folder of images or a video is read whole by the lane's ``FrameAnalyzer``
(text detection, recognition, the VN/CN plate grammar). Each plate read gives its box: its height in pixels
is compared with the source's ``plate_height_px`` [min, max], its centre with the source's ``roi``. The
result says what fits, and suggests values from what was measured (the 10th-90th percentile of the plate
heights with a margin; the union of the plate boxes, grown, for the ROI).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.calibrate.camera import IMAGE_SUFFIXES
from appliance.calibrate.store import CameraCalibrationError
from appliance.config import AppConfig
from appliance.reads import PlateRead

MIN_PLATES = 3
IN_RANGE_SHARE = 0.8  # this share of the plate heights must lie in [min, max]
IN_ROI_SHARE = 0.9  # this share of the plates must have their centre inside the ROI


@dataclass(frozen=True)
class PlateBox:
    frame: str
    x: int
    y: int
    w: int
    h: int


def find_source(config: AppConfig, camera_id: str) -> tuple[str, Any]:
    for lane in config.lanes:
        for src in lane.sources:
            if src.id == camera_id:
                return lane.id, src
    known = sorted(s.id for lane in config.lanes for s in lane.sources)
    raise CameraCalibrationError(f"camera {camera_id!r} is not a source of the config (sources: {', '.join(known)})")


def frames(path: Path, every: int, max_frames: int) -> Iterator[tuple[str, np.ndarray]]:
    """(name, BGR image) of every ``every``-th frame of a folder of images or a video file."""
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise CameraCalibrationError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})")
        for p in images[::every][:max_frames]:
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if image is None:
                raise CameraCalibrationError(f"{p}: not a readable image")
            yield p.name, image
        return
    if not path.is_file():
        raise CameraCalibrationError(f"{path}: no such folder or video file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise CameraCalibrationError(f"{path}: OpenCV cannot open this video")
    try:
        index, yielded = 0, 0
        while yielded < max_frames:
            ok, image = cap.read()
            if not ok:
                break
            if index % every == 0:
                yield f"frame {index}", image
                yielded += 1
            index += 1
        if index == 0:
            raise CameraCalibrationError(f"{path}: the video has no readable frame")
    finally:
        cap.release()


def measure_plates(config: AppConfig, role: str, path: Path, every: int = 1,
                   max_frames: int = 200) -> tuple[list[PlateBox], int, tuple[int, int] | None]:
    """Plate boxes found on the frames, the number of frames read, and the frame size."""
    from appliance.lanes.analysis import FrameAnalyzer, Readers

    analyzer = FrameAnalyzer(Readers.from_config(config), None)
    boxes: list[PlateBox] = []
    count, size = 0, None
    for name, image in frames(path, every, max_frames):
        here = (image.shape[1], image.shape[0])
        if size is None:
            size = here
        elif here != size:
            raise CameraCalibrationError(f"{path}: {name} is {here[0]}x{here[1]}, the first frame {size[0]}x{size[1]}")
        count += 1
        for read in analyzer.reads_for(role, image):
            if isinstance(read, PlateRead) and read.bbox is not None:
                b = read.bbox
                boxes.append(PlateBox(name, b.x, b.y, b.w, b.h))
    return boxes, count, size


def check_lane(camera_id: str, lane_id: str, roi: tuple[int, int, int, int] | None,
               expected: tuple[float, float] | None, boxes: list[PlateBox], frames_read: int,
               size: tuple[int, int] | None) -> dict[str, Any]:
    problems: list[str] = []
    if size is None or frames_read == 0:
        raise CameraCalibrationError(f"camera {camera_id}: no frame was read")
    if len(boxes) < MIN_PLATES:
        raise CameraCalibrationError(
            f"camera {camera_id}: {len(boxes)} plate(s) read on {frames_read} frame(s), at least {MIN_PLATES} are "
            "needed to judge the plate size: give frames with vehicles in view (or a smaller --every)")
    heights = np.array([b.h for b in boxes], float)
    p10, p50, p90 = (float(np.percentile(heights, q)) for q in (10, 50, 90))
    suggested_height = [round(0.8 * p10, 1), round(1.25 * p90, 1)]
    x0, y0 = min(b.x for b in boxes), min(b.y for b in boxes)
    x1, y1 = max(b.x + b.w for b in boxes), max(b.y + b.h for b in boxes)
    grow_x, grow_y = int(0.1 * (x1 - x0)) + 8, int(0.1 * (y1 - y0)) + 8
    sx0, sy0 = max(0, x0 - grow_x), max(0, y0 - grow_y)
    suggested_roi = [sx0, sy0, min(size[0], x1 + grow_x) - sx0, min(size[1], y1 + grow_y) - sy0]
    height_share = None
    if expected is None:
        problems.append(f"plate_height_px is not set: measured {p10:.0f}-{p90:.0f} px (median {p50:.0f})")
    else:
        height_share = float(np.mean((heights >= expected[0]) & (heights <= expected[1])))
        if height_share < IN_RANGE_SHARE:
            problems.append(f"{100 * height_share:.0f} % of the plates are {expected[0]:g}-{expected[1]:g} px high "
                            f"(need {100 * IN_RANGE_SHARE:.0f} %); measured {p10:.0f}-{p90:.0f} px, median {p50:.0f}")
    roi_share = None
    if roi is None:
        problems.append("roi is not set (the whole frame is searched)")
    else:
        if roi[0] + roi[2] > size[0] or roi[1] + roi[3] > size[1]:
            problems.append(f"roi {list(roi)} reaches outside the {size[0]}x{size[1]} frame")
        inside = [roi[0] <= b.x + b.w / 2 <= roi[0] + roi[2] and roi[1] <= b.y + b.h / 2 <= roi[1] + roi[3]
                  for b in boxes]
        roi_share = float(np.mean(inside))
        if roi_share < IN_ROI_SHARE:
            problems.append(f"only {100 * roi_share:.0f} % of the plates have their centre inside roi {list(roi)} "
                            f"(need {100 * IN_ROI_SHARE:.0f} %)")
    return {
        "format": 1, "camera_id": camera_id, "lane_id": lane_id, "kind": "lane-check",
        "frame_size": list(size), "frames_read": frames_read, "plates": len(boxes),
        "plate_height_px": {"p10": round(p10, 1), "median": round(p50, 1), "p90": round(p90, 1),
                            "expected": None if expected is None else list(expected),
                            "share_in_expected": None if height_share is None else round(height_share, 3)},
        "roi": {"configured": None if roi is None else list(roi),
                "share_of_plates_inside": None if roi_share is None else round(roi_share, 3)},
        "suggested": {"plate_height_px": suggested_height, "roi": suggested_roi},
        "ok": not problems, "problems": problems,
        "boxes": [b.__dict__ for b in boxes],
        "summary": {"ok": not problems, "plates": len(boxes), "median_plate_px": round(p50, 1)},
    }
