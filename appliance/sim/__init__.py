"""The simulated cargo lane: renders what the gate's cameras and kiosk would see, plus truth.

Public API::

    simulate(out_dir, vehicles, seed, *, fps=5.0, width=1920, height=1080, gap_s=2.0,
             rate_per_day=None, night_share=0.3, mismatch_share=0.2, progress=None,
             overwrite=False, start_time=1795000000.0, gate="VNHNG") -> SimulationResult
    plan_lane(vehicles, seed, ...) -> LanePlan            # the plan only (truth, manifest)
    render_vehicle_frames(vehicle, camera, *, width, height, frames, seed) -> list[ndarray]
    render_kiosk(vehicle, when, *, width=1280, height=960) -> ndarray

``progress(done, total)`` counts rendered frames over both cameras. The output layout and
the truth/manifest formats are in docs/SIMULATOR.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import SimulationError
from appliance.sim.kiosk import render_kiosk
from appliance.sim.model import Camera, Vehicle
from appliance.sim.scene import render_vehicle_frames
from appliance.sim.traffic import DEFAULT_START_TIME, LanePlan, plan_lane
from appliance.sim.writer import output_paths, write_lane

log = logging.getLogger(__name__)

__all__ = [
    "LanePlan",
    "SimulationResult",
    "Vehicle",
    "plan_lane",
    "render_kiosk",
    "render_vehicle_frames",
    "simulate",
]


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` wrote, and how long it took."""

    out_dir: Path
    truth_path: Path
    manifest_path: Path
    lane_yaml_path: Path
    videos: dict[Camera, Path]
    kiosk_images: list[Path]
    frames: int
    vehicles: int
    duration_s: float  # simulated time covered by the videos
    elapsed_s: float  # wall-clock time the rendering took
    mismatches: dict[str, int] = field(default_factory=dict)


def _prepare_out_dir(out_dir: Path, plan: LanePlan, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise SimulationError(f"--out {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise SimulationError(
                f"--out {out_dir} is not empty; choose an empty directory or pass overwrite=True (--overwrite)"
            )
        # Remove only what a simulation writes (stale kiosk images would pollute the drop folder).
        for path in [*output_paths(out_dir, plan), *(out_dir / "kiosk").glob("*_V*.png")]:
            if path.is_file():
                path.unlink()


def simulate(
    out_dir: Path,
    vehicles: int,
    seed: int,
    *,
    fps: float = 5.0,
    width: int = 1920,
    height: int = 1080,
    gap_s: float | None = 3.0,
    rate_per_day: float | None = None,
    night_share: float = 0.3,
    mismatch_share: float = 0.2,
    progress: Callable[[int, int], None] | None = None,
    overwrite: bool = False,
    start_time: float = DEFAULT_START_TIME,
    gate: str = "VNHNG",
) -> SimulationResult:
    """Render a lane of ``vehicles`` passages into ``out_dir`` (layout: docs/SIMULATOR.md).

    ``rate_per_day`` (Poisson arrivals) takes precedence over ``gap_s`` (fixed empty time
    between vehicles). Deterministic for a given ``seed`` and arguments.
    """
    if width % 2 or height % 2:
        raise SimulationError(f"width and height must be even for the video encoder, got {width}x{height}")
    plan = plan_lane(
        vehicles, seed, fps=fps, width=width, height=height, gap_s=gap_s, rate_per_day=rate_per_day,
        night_share=night_share, mismatch_share=mismatch_share, start_time=start_time, gate=gate,
    )  # fmt: skip
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir, plan, overwrite)
    started = time.perf_counter()
    written = write_lane(plan, out_dir, progress=progress)
    elapsed = time.perf_counter() - started
    counts: dict[str, int] = {}
    for v in plan.vehicles:
        for kind in v.mismatches:
            counts[kind] = counts.get(kind, 0) + 1
    log.info("simulated %d vehicles, %d frames per camera in %.1f s -> %s", vehicles, plan.frames, elapsed, out_dir)
    return SimulationResult(
        out_dir=out_dir,
        truth_path=out_dir / "truth.json",
        manifest_path=out_dir / "manifest.json",
        lane_yaml_path=out_dir / "lane.yaml",
        videos=written["videos"],
        kiosk_images=written["kiosk"],
        frames=plan.frames,
        vehicles=vehicles,
        duration_s=plan.frames / fps,
        elapsed_s=elapsed,
        mismatches=counts,
    )
