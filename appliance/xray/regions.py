"""Where the containers are in a scan, from the attenuation image alone.

A container is a tall box with a flat roof: along the scan, the first row that holds material
(the "top" of each column) sits at the roof's height over the container's whole length, and lower
over the cab, the gaps between containers and the chassis. ``find_containers`` finds the runs of
columns whose top is at roof height, then the bottom as the lowest row that most of those columns
fill (the container's floor or the chassis beam under it). The anomaly model looks only inside these boxes (the
cab's engine block is dense metal, not an anomaly).

``attenuation_from_image`` turns an 8/16-bit export without dark/air frames (e.g. a JPEG from a
viewer) into approximate attenuation, taking the image's brightest background as the open beam.
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in scan pixels

MATERIAL = 0.15  # attenuation above which a pixel holds material (air and thin sheet stay under it)
BLANK = 5.0  # attenuation of a pixel with no signal at all (an 8-bit 0): a blank panel, not a container


def attenuation_from_image(image: np.ndarray) -> np.ndarray:
    """Approximate attenuation of a grey or BGR 8/16-bit transmission image (bright = air)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    values = grey.astype(np.float32)
    air = float(np.percentile(values, 99.5))  # the open beam: the brightest background
    floor = 1.0 if grey.dtype == np.uint8 else 16.0
    return np.asarray(-np.log(np.clip((values + floor) / (air + floor), 1e-4, 1.0)), np.float32)


def find_containers(att: np.ndarray, min_length: float = 0.12, material: float = MATERIAL) -> list[Box]:
    """Boxes of the containers in an attenuation image, left to right."""
    rows, cols = att.shape
    k = max(1, cols // 1000)  # work on about 1,000 columns: thin roofs survive, cost stays low
    small = cv2.resize(att, (max(1, cols // k), max(1, rows // k)), interpolation=cv2.INTER_AREA)
    solid = cv2.morphologyEx((small > material).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    r, c = solid.shape
    # No signal at all over (almost) the whole height: a blank panel beside the image. A container of dense
    # goods starves the detector over its load, never above its roof.
    blank_cols = (small >= BLANK).mean(axis=0) > 0.9
    has = solid.any(axis=0) & ~blank_cols
    top = np.where(has, solid.argmax(axis=0), r)
    tops = top[has]
    if tops.size == 0:
        return []
    roof = float(np.percentile(tops, 5))
    tolerance = max(3.0, 0.08 * r)
    at_roof = cv2.morphologyEx((top <= roof + tolerance).astype(np.uint8)[None, :], cv2.MORPH_CLOSE,
                               np.ones((1, 3), np.uint8))[0].astype(bool)
    boxes: list[Box] = []
    start = None
    for x in range(c + 1):
        inside = x < c and at_roof[x]
        if inside and start is None:
            start = x
        elif not inside and start is not None:
            blank = float(blank_cols[start:x].mean())
            if x - start >= min_length * c and blank < 0.5:
                boxes.append(_box(small, start, x, int(roof), r))
            start = None
    scale_x, scale_y = cols / c, rows / r
    return [(round(x * scale_x), round(y * scale_y), round(w * scale_x), round(h * scale_y)) for x, y, w, h in boxes]


def _box(att: np.ndarray, x0: int, x1: int, roof: int, rows: int) -> Box:
    """The run's box: from the roof down to the lowest row that most of the run's columns fill (the
    container's floor, or the chassis beam under it; the wheels below fill only a few columns)."""
    fill = (att[:, x0:x1] > MATERIAL).mean(axis=1)
    filled = np.flatnonzero(fill[roof:] >= 0.6)
    bottom = roof + int(filled[-1]) if filled.size else roof
    return (x0, roof, x1 - x0, bottom - roof + 1)


def largest_dark_box(att: np.ndarray, material: float = MATERIAL) -> list[Box]:
    """Baseline (intensity statistics only): the bounding box of the largest connected region of material."""
    mask = (att > material).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return []
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    return [(x, y, w, h)]


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


def match_boxes(found: list[Box], truth: list[Box], threshold: float = 0.5) -> tuple[int, int, list[float]]:
    """(true positives, false positives, IoU of each truth box's best match) by greedy IoU matching."""
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f: set[int] = set()
    best = [0.0] * len(truth)
    used_t: set[int] = set()
    for value, i, j in pairs:
        if i in used_f or j in used_t:
            continue
        used_f.add(i)
        used_t.add(j)
        best[j] = value
    tp = sum(1 for v in best if v >= threshold)
    return tp, len(found) - tp, best


def cargo_interior(box: Box, end_margin: float = 0.04, roof_margin: float = 0.06, floor_margin: float = 0.22) -> Box:
    """The part of a found container box where the load is: without the end walls and corner posts,
    the roof rail, and the floor, deck and chassis that the found box reaches down to."""
    x, y, w, h = box
    dx, top, bottom = round(w * end_margin), round(h * roof_margin), round(h * floor_margin)
    return (x + dx, y + top, max(1, w - 2 * dx), max(1, h - top - bottom))
