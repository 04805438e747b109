"""Simulator runs into both datasets: sampled frames with their boxes, and text-line crops.

Frames are decoded from the run's videos (what the appliance sees, codec artefacts included);
every ``every``-th frame of each vehicle's passage becomes a detector image (its label file is
empty when no object is in view). Each text line of those frames that lies wholly inside the
frame and is at least ``MIN_TEXT_PX`` tall (motion blur not counted) becomes a recogniser crop with its true text
(canonical text: ``29C-123.45``, ``桂A12345``, ``MWCU6059784``; a 2-line plate gives its two
lines). Frames with the empty lane are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.training import ExportError
from appliance.training.dataset import DatasetWriter, DetBox, crop_with_margin, valid_text
from appliance.training.sim_annotations import SimFrame, SimRun

#: Text lines shorter than this (frame pixels) are too small to teach a recogniser anything.
MIN_TEXT_PX = 8.0
#: A line whose box is cut by the frame edge would be labelled with text it does not show.
MIN_LINE_VISIBLE = 0.999
PROGRESS_EVERY = 250  # frames decoded between two progress lines

Progress = Callable[[str], None]


@dataclass
class SimStats:
    frames_decoded: int = 0
    lines_too_small: int = 0
    lines_cut_by_frame_edge: int = 0


def frame_stem(tag: str, rec: SimFrame) -> str:
    """``<tag>-<vehicle>_<camera>-<frame>``: the unit id, then the frame (no '_' in either)."""
    return f"{tag}-{rec.vehicle}_{rec.camera}-{rec.frame:06d}"


def export_run(
    run: SimRun, tag: str, writer: DatasetWriter, every: int, stats: SimStats, progress: Progress | None = None
) -> None:
    """Write the sampled frames of both cameras of ``run``."""
    for camera, records in sorted(run.annotated.items()):
        wanted = {rec.frame: rec for rec in run.sampled(camera, every)}
        if not wanted:
            continue
        last = max(wanted)
        video = run.path / "cameras" / f"{camera}.mp4"
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise ExportError(f"cannot open the video {video}")
        try:
            for f in range(last + 1):
                if f not in wanted:
                    ok = cap.grab()
                    image = None
                else:
                    ok, image = cap.read()
                if not ok:
                    raise ExportError(f"{video} ends at frame {f}, its annotations go on to {last}")
                stats.frames_decoded += 1
                if progress is not None and (f + 1) % PROGRESS_EVERY == 0:
                    progress(f"{tag} {camera}: frame {f + 1}/{last + 1}")
                if image is None:
                    continue
                if image.shape[:2] != (run.height, run.width):
                    raise ExportError(
                        f"{video}: frames are {image.shape[1]}x{image.shape[0]}, truth.json says "
                        f"{run.width}x{run.height}"
                    )
                _write_frame(run, tag, wanted[f], image, writer, stats)
        finally:
            cap.release()
        if progress is not None:
            progress(f"{tag} {camera}: {len(wanted)} frames sampled of {len(records)} with a vehicle")


def _write_frame(
    run: SimRun, tag: str, rec: SimFrame, image: np.ndarray, writer: DatasetWriter, stats: SimStats
) -> None:
    unit = run.unit(rec.vehicle)
    boxes = [DetBox(o["class"], *(float(v) for v in o["box"])) for o in rec.objects]
    writer.add_frame(unit, frame_stem(tag, rec), image, boxes)
    for obj in rec.objects:
        for line in obj.get("lines", []):
            x, y, w, h = (float(v) for v in line["box"])
            if float(line.get("visible", 0.0)) < MIN_LINE_VISIBLE:
                stats.lines_cut_by_frame_edge += 1
                continue
            if h - rec.blur_px < MIN_TEXT_PX or not valid_text(line.get("text")):
                stats.lines_too_small += 1
                continue
            crop = crop_with_margin(image, x, y, w, h)
            if crop is None:
                stats.lines_too_small += 1
                continue
            writer.add_crop(
                unit,
                crop,
                str(line["text"]),
                obj["class"],
                "sim",
                sim=tag,
                camera=rec.camera,
                frame=rec.frame,
                object_text=obj["text"],
            )
