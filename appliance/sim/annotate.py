"""Per-frame ground truth: where the plates, container numbers, seals and fleet IDs are painted.

The renderers record the named boxes of what they draw on a vehicle face (``Face.regions``,
face pixels); the scene warps the face into the frame through the quad of
:meth:`CameraRenderer.quad`. :func:`frame_objects` sends the boxes through that same
transform, so a box lands where its pixels are in the written frame: perspective, scale,
keystone and roll included, widened by the motion blur, clipped to the frame and dropped
when less than ``MIN_VISIBLE`` of it is inside.

One object per thing a detector should find (``CLASSES``), with its text and the boxes of
its text lines (the unit a text recogniser reads): a 2-line plate has two lines, the seal's
line is the serial printed under its code. Format of the files: docs/SIMULATOR.md.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from appliance.sim.draw import Box
from appliance.sim.model import Camera, Vehicle
from appliance.sim.plates_render import plate_line_texts
from appliance.sim.scene import PreparedFace

#: Detector classes, in class-index order (the training export's YOLO class ids).
CLASSES: tuple[str, ...] = ("plate", "container_number", "seal", "fleet_id")
#: Share of a box that must lie inside the frame for it to be kept.
MIN_VISIBLE = 0.5

_Object = tuple[str, Box, str, list[tuple[Box, str]]]  # class, face box, text, [(line box, line text)]


def _union(a: Box, b: Box) -> Box:
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


def face_objects(vehicle: Vehicle, camera: Camera, regions: dict[str, Box]) -> list[_Object]:
    """The annotated objects of ``vehicle``'s face for ``camera``, in face pixels."""
    out: list[_Object] = []
    plate = vehicle.tractor_plate if camera == "front" else vehicle.rear_plate
    if plate is not None and "plate" in regions:
        texts = plate_line_texts(plate)
        lines = [(regions[f"plate_line{i}"], t) for i, t in enumerate(texts) if f"plate_line{i}" in regions]
        out.append(("plate", regions["plate"], plate.text, lines))
    if vehicle.containers and "container_number" in regions:
        number = vehicle.containers[0].number
        out.append(("container_number", regions["container_number"], number, [(regions["container_number"], number)]))
    seal = vehicle.seals[0] if vehicle.seals else None
    if seal is not None and seal.serial and ("seal" in regions or "seal_code" in regions):
        # The seal as a whole: the bolt through the handle plus the tag hanging from it.
        parts = [regions[k] for k in ("seal", "seal_code") if k in regions]
        box = parts[0] if len(parts) == 1 else _union(parts[0], parts[1])
        lines = [(regions["seal_serial"], seal.serial)] if "seal_serial" in regions else []
        out.append(("seal", box, seal.serial, lines))
    if vehicle.fleet_id and "fleet_id" in regions:
        out.append(("fleet_id", regions["fleet_id"], vehicle.fleet_id, [(regions["fleet_id"], vehicle.fleet_id)]))
    return out


class FrameBoxes:
    """Maps face boxes into one frame: the face -> quad homography, blur, clipping."""

    def __init__(self, prepared: PreparedFace, quad: np.ndarray, width: int, height: int, blur_px: int) -> None:
        h, w = prepared.levels[0].shape[:2]
        src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
        self.m = cv2.getPerspectiveTransform(src, np.asarray(quad, np.float32)).astype(np.float64)
        self.width, self.height = width, height
        # The scene blurs the warped face with a vertical box kernel of blur_px rows (blur >= 2).
        self.spread = blur_px / 2.0 if blur_px >= 2 else 0.0

    def project(self, box: Box) -> tuple[list[float], float] | None:
        """(``[x, y, w, h]`` clipped to the frame, share inside the frame), or None when empty."""
        x, y, w, h = box
        pts = np.array([[x, y, 1.0], [x + w, y, 1.0], [x + w, y + h, 1.0], [x, y + h, 1.0]]) @ self.m.T
        if np.any(pts[:, 2] <= 1e-9):
            return None
        xs, ys = pts[:, 0] / pts[:, 2], pts[:, 1] / pts[:, 2]
        x0, x1 = float(xs.min()), float(xs.max())
        y0, y1 = float(ys.min()) - self.spread, float(ys.max()) + self.spread
        area = (x1 - x0) * (y1 - y0)
        cx0, cy0 = max(0.0, x0), max(0.0, y0)
        cx1, cy1 = min(float(self.width), x1), min(float(self.height), y1)
        if area <= 0 or cx1 <= cx0 or cy1 <= cy0 or not math.isfinite(area):
            return None
        visible = (cx1 - cx0) * (cy1 - cy0) / area
        return [round(cx0, 1), round(cy0, 1), round(cx1 - cx0, 1), round(cy1 - cy0, 1)], round(visible, 3)


def frame_objects(
    vehicle: Vehicle, camera: Camera, prepared: PreparedFace, quad: np.ndarray, width: int, height: int
) -> list[dict[str, Any]]:
    """The objects of one frame as written to ``annotations/<camera>.jsonl`` (full-frame pixels)."""
    mapper = FrameBoxes(prepared, quad, width, height, vehicle.conditions.blur_px)
    out: list[dict[str, Any]] = []
    for cls, box, text, lines in face_objects(vehicle, camera, prepared.face.regions):
        projected = mapper.project(box)
        if projected is None or projected[1] < MIN_VISIBLE or projected[0][2] < 1 or projected[0][3] < 1:
            continue
        line_docs = []
        for line_box, line_text in lines:
            p = mapper.project(line_box)
            if p is not None and p[1] >= MIN_VISIBLE:
                line_docs.append({"box": p[0], "visible": p[1], "text": line_text})
        out.append({"class": cls, "box": projected[0], "visible": projected[1], "text": text, "lines": line_docs})
    return out
