"""Writes the two datasets: YOLO detector images + labels, recogniser crops + rec_gt labels.

File names start with the sample's split unit (``<id>_<frame>``, ``<id>_<n>``), so what came from
one vehicle or crossing is easy to find, and the writer keeps the counts manifest.json reports.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
import yaml

from appliance.sim.annotate import CLASSES
from appliance.training import ExportError
from appliance.training.splits import SPLITS

JPEG_QUALITY = 95
#: Margin around a text line in a recogniser crop: this share of the line height plus 2 px, each side.
CROP_MARGIN = 0.15


@dataclass(frozen=True)
class DetBox:
    """One detector box in frame pixels (``x, y`` top-left)."""

    cls: str
    x: float
    y: float
    w: float
    h: float


def valid_text(text: str | None) -> bool:
    """A label rec_gt can carry: not empty, no tab, newline or other control character."""
    return bool(text) and not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in str(text))


def yolo_line(box: DetBox, width: int, height: int) -> str:
    """``class cx cy w h`` normalised to the image, clipped to it."""
    x0, y0 = min(max(box.x, 0.0), width), min(max(box.y, 0.0), height)
    x1, y1 = min(max(box.x + box.w, 0.0), width), min(max(box.y + box.h, 0.0), height)
    cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
    w, h = (x1 - x0) / width, (y1 - y0) / height
    return f"{CLASSES.index(box.cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def crop_with_margin(image: np.ndarray, x: float, y: float, w: float, h: float) -> np.ndarray | None:
    """The box plus a margin (``CROP_MARGIN`` of its height + 2 px), clipped to the image."""
    m = CROP_MARGIN * h + 2.0
    ih, iw = image.shape[:2]
    x0, y0 = max(0, int(np.floor(x - m))), max(0, int(np.floor(y - m)))
    x1, y1 = min(iw, int(np.ceil(x + w + m))), min(ih, int(np.ceil(y + h + m)))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return image[y0:y1, x0:x1]


class DatasetWriter:
    """Writes samples into OUT/detector and OUT/recognizer, each into its unit's split."""

    def __init__(self, out: Path, splits: dict[str, str], *, detector: bool) -> None:
        self.out = out
        self.splits = splits
        self.detector = detector
        self.det_counts: dict[str, dict[str, Any]] = {
            s: {"images": 0, "empty_images": 0, "boxes": dict.fromkeys(CLASSES, 0)} for s in SPLITS
        }
        self.rec_counts: dict[str, dict[str, Any]] = {
            s: {"crops": 0, "by_class": dict.fromkeys(CLASSES, 0), "by_source": {"sim": 0, "store": 0}} for s in SPLITS
        }
        self._serial: dict[str, int] = {}
        self._stems: set[str] = set()
        self._labels: dict[str, TextIO] = {}
        self._meta: dict[str, TextIO] = {}
        if detector:
            for kind in ("images", "labels"):
                for s in SPLITS:
                    (out / "detector" / kind / s).mkdir(parents=True, exist_ok=True)
        for s in SPLITS:
            folder = out / "recognizer" / s
            folder.mkdir(parents=True, exist_ok=True)
            self._labels[s] = (folder / "labels.txt").open("w", encoding="utf-8", newline="\n")
            self._meta[s] = (folder / "meta.jsonl").open("w", encoding="utf-8", newline="\n")

    def close(self) -> None:
        for fh in [*self._labels.values(), *self._meta.values()]:
            fh.close()

    def split_of(self, unit: str) -> str:
        try:
            return self.splits[unit]
        except KeyError as exc:
            raise ExportError(f"internal: no split for {unit!r}") from exc

    def add_frame(self, unit: str, stem: str, image: np.ndarray, boxes: Sequence[DetBox]) -> None:
        """One detector image and its label file (empty when ``boxes`` is)."""
        if stem in self._stems:
            raise ExportError(f"internal: two detector images named {stem}")
        self._stems.add(stem)
        split = self.split_of(unit)
        height, width = image.shape[:2]
        folder = self.out / "detector"
        if not cv2.imwrite(
            str(folder / "images" / split / f"{stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        ):
            raise ExportError(f"cannot write {folder / 'images' / split / stem}.jpg")
        lines = [yolo_line(b, width, height) for b in boxes]
        (folder / "labels" / split / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines), "utf-8")
        counts = self.det_counts[split]
        counts["images"] += 1
        counts["empty_images"] += not lines
        for b in boxes:
            counts["boxes"][b.cls] += 1

    def add_crop(self, unit: str, crop: np.ndarray, text: str, cls: str, source: str, **meta: Any) -> str:
        """One recogniser crop with its text; returns its file name."""
        split = self.split_of(unit)
        n = self._serial.get(unit, 0) + 1
        self._serial[unit] = n
        name = f"{unit}_{n}.png"
        path = self.out / "recognizer" / split / name
        if not cv2.imwrite(str(path), crop):
            raise ExportError(f"cannot write {path}")
        self._labels[split].write(f"{name}\t{text}\n")
        doc = {"file": name, "text": text, "class": cls, "source": source, "unit": unit, **meta}
        self._meta[split].write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
        counts = self.rec_counts[split]
        counts["crops"] += 1
        counts["by_class"][cls] += 1
        counts["by_source"][source] += 1
        return name

    @property
    def total(self) -> int:
        return sum(c["images"] for c in self.det_counts.values()) + sum(c["crops"] for c in self.rec_counts.values())

    def write_data_yaml(self) -> Path:
        """``detector/data.yaml`` in the ultralytics format (absolute ``path``)."""
        folder = (self.out / "detector").resolve()
        doc = {
            "path": str(folder),
            "train": "images/train",
            "val": "images/val",
            "names": dict(enumerate(CLASSES)),
        }
        path = folder / "data.yaml"
        header = "# Written by `appliance training export` (see ../manifest.json for what went in).\n"
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path
