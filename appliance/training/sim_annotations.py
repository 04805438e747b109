"""Reads a simulated lane (``appliance simulate --out DIR``) with its per-frame ground truth.

``DIR/annotations/<camera>.jsonl`` holds one line per frame with a vehicle in view (see
appliance/sim/annotate.py and docs/SIMULATOR.md). Runs rendered before those files existed have
none: they are refused with the way out (re-render them; the same seed and options give the
same vehicles).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.sim.annotate import CLASSES
from appliance.sim.model import CAMERAS
from appliance.sim.writer import annotations_path, video_path
from appliance.training import ExportError

RERENDER = "re-render it with this version of `appliance simulate` (same --seed and options: same vehicles)"


@dataclass
class SimFrame:
    """The ground truth of one frame: the vehicle in view and its objects (frame pixels)."""

    camera: str
    frame: int
    vehicle: str
    objects: list[dict[str, Any]]
    blur_px: int = 0  # the boxes are widened by blur_px / 2 above and below


@dataclass
class SimRun:
    """One simulator output folder, its truth and its annotated frames per camera."""

    path: Path
    seed: int
    fps: float
    width: int
    height: int
    frames: int
    vehicles: list[dict[str, Any]]
    annotated: dict[str, list[SimFrame]] = field(default_factory=dict)

    def unit(self, vehicle_id: str) -> str:
        """The split unit of a vehicle: the same simulator seed makes the same vehicles."""
        return f"sim{self.seed}-{vehicle_id}"

    def sampled(self, camera: str, every: int) -> list[SimFrame]:
        """Every ``every``-th frame of each vehicle's passage, from its first frame on."""
        out: list[SimFrame] = []
        seen: dict[str, int] = {}
        for rec in self.annotated.get(camera, []):
            k = seen.get(rec.vehicle, 0)
            seen[rec.vehicle] = k + 1
            if k % every == 0:
                out.append(rec)
        return out


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ExportError(f"{path.parent} is not a simulator output folder: no {path.name} ({what})") from exc
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: cannot read {what}: {exc}") from exc


def _frame(line: str, camera: str, path: Path, lineno: int, vehicles: set[str], frames: int) -> SimFrame:
    try:
        doc = json.loads(line)
        rec = SimFrame(camera, int(doc["frame"]), str(doc["vehicle"]), list(doc["objects"]), int(doc["blur_px"]))
        for obj in rec.objects:
            if obj["class"] not in CLASSES or len(obj["box"]) != 4:
                raise ValueError(f"unknown class or bad box {obj!r}")
            [float(v) for v in obj["box"]]
            for line_doc in obj.get("lines", []):
                if len(line_doc["box"]) != 4:
                    raise ValueError(f"bad line box {line_doc!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{path}:{lineno}: not a frame annotation ({exc}); {RERENDER}") from exc
    if rec.vehicle not in vehicles or not 0 <= rec.frame < frames:
        raise ExportError(
            f"{path}:{lineno}: frame {rec.frame} / vehicle {rec.vehicle} is not in truth.json; {RERENDER}"
        )
    return rec


def load_sim_run(path: Path) -> SimRun:
    """The run in ``path``, checked: truth, both videos and both cameras' annotations."""
    path = Path(path)
    if not path.is_dir():
        raise ExportError(f"--sim {path} is not a folder")
    truth = _read_json(path / "truth.json", "the ground truth")
    try:
        run = SimRun(
            path,
            int(truth["seed"]),
            float(truth["fps"]),
            int(truth["width"]),
            int(truth["height"]),
            int(truth["frames"]),
            list(truth["vehicles"]),
        )
        ids = {str(v["id"]) for v in run.vehicles}
        expected = {str(v["id"]): round((float(v["t_exit"]) - float(v["t_enter"])) * run.fps) + 1 for v in run.vehicles}
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{path / 'truth.json'}: not a simulator truth file ({exc})") from exc
    for camera in CAMERAS:
        video = video_path(path, camera)
        if not video.is_file():
            raise ExportError(f"{path}: no {video.relative_to(path)} (the {camera} camera's video)")
        ann = annotations_path(path, camera)
        if not ann.is_file():
            raise ExportError(
                f"{path} has no per-frame annotations ({ann.relative_to(path)}): it was rendered by an older "
                f"`appliance simulate`; {RERENDER}"
            )
        records = []
        with ann.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    records.append(_frame(line, camera, ann, lineno, ids, run.frames))
        counted: dict[str, int] = {}
        for rec in records:
            counted[rec.vehicle] = counted.get(rec.vehicle, 0) + 1
        if counted != expected:
            raise ExportError(
                f"{ann}: annotations cover {sum(counted.values())} vehicle frames, truth.json {sum(expected.values())} "
                f"(an interrupted or older run?); {RERENDER}"
            )
        run.annotated[camera] = sorted(records, key=lambda r: r.frame)
    return run
