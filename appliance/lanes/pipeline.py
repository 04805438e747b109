"""One lane's processing: motion gate -> readers (in a thread pool) -> assembly -> verdict -> store.

Text is detected only in the region where the motion gate saw change (``MotionRegion``); the
readers then work on the whole frame with the lines found there.

``LanePipeline.feed`` takes frames in time order, from a live runner or from a file replay.
Analysis runs in worker threads (ONNX Runtime and OpenCV release the GIL) but results are fed
to the assembler in frame order, so a replay is deterministic whatever the thread timing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.analyzers.line_memory import LineMemory, MemoryLink
from appliance.config import LaneConfig, VerdictConfig
from appliance.ingest.frames import Frame
from appliance.lanes.analysis import FrameAnalyzer
from appliance.lanes.assembly import LaneAssembler, Settled
from appliance.lanes.crossing import Crossing
from appliance.lanes.regions import MotionBox, MotionRegion
from appliance.reads import BBox, Observation
from appliance.store.db import Store
from appliance.verdicts.manifest import ManifestIndex
from appliance.verdicts.rules import Verdict, decide
from appliance.verdicts.watchlist import WatchlistIndex

if TYPE_CHECKING:
    from appliance.actuators.join import IgvJoin
    from appliance.lifecycle.stage_latency import StageLatency

log = logging.getLogger(__name__)

CAMERA_ROLES = {"front", "rear", "side", "seal"}


@dataclass
class StageTimes:
    """Seconds spent per stage, for `appliance bench lane` and the status API."""

    analysis_s: float = 0.0
    analysed_frames: int = 0
    skipped_frames: int = 0
    crossings: int = 0


class LanePipeline:
    def __init__(
        self,
        lane: LaneConfig,
        analyzer: FrameAnalyzer,
        manifest: ManifestIndex,
        verdicts: VerdictConfig,
        store: Store | None,
        workers: int = 1,
        on_crossing: Callable[[Crossing, Verdict], None] | None = None,
        watchlist: WatchlistIndex | None = None,
        stages: StageLatency | None = None,  # per-stage latency histograms for /metrics
        join: IgvJoin | None = None,  # IGV lanes: fleet arrival telemetry joins the crossing (appliance/actuators)
    ):
        self.join = join
        self.lane = lane
        self.stages = stages
        self.watchlist = watchlist
        self.roles = {s.id: s.role for s in lane.sources}
        cameras = [s.id for s in lane.sources if s.role in CAMERA_ROLES]
        self.assembler = LaneAssembler(lane.id, lane.assembly, cameras)
        self.analyzer = analyzer
        self.manifest = manifest
        self.verdicts = verdicts
        self.store = store
        self.on_crossing = on_crossing
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"lane-{lane.id}")
        self.max_in_flight = max(1, workers * 2)
        self._in_flight: deque[tuple[Frame, bool, Future[list[Observation]] | None]] = deque()
        cameras_with_text = [s.id for s in lane.sources if s.role in CAMERA_ROLES]
        self._memories: dict[str, LineMemory] = {sid: analyzer.line_memory() for sid in cameras_with_text}
        self._last_motion: dict[str, float] = {}
        self._last_analysed: dict[str, float] = {}
        self._regions = {s.id: MotionRegion() for s in lane.sources if s.role in CAMERA_ROLES}
        self.times = StageTimes()

    def _wants_analysis(self, frame: Frame, moving: bool) -> bool:
        role = self.roles.get(frame.source_id)
        if role == "kiosk":
            return True
        if moving:
            self._last_motion[frame.source_id] = frame.ts
        last = self._last_motion.get(frame.source_id)
        if last is None or frame.ts - last > self.lane.assembly.close_after_idle_s:
            return False
        period = 1.0 / self.lane.assembly.analyze_fps
        previous = self._last_analysed.get(frame.source_id)
        if previous is not None and frame.ts - previous < period * 0.999:
            return False
        self._last_analysed[frame.source_id] = frame.ts
        return True

    def _analyze(
        self, frame: Frame, roi: BBox | None, settled: Settled, memory: MemoryLink | None
    ) -> list[Observation]:
        started = time.perf_counter()
        try:
            return self.analyzer.analyze(self.roles[frame.source_id], frame, roi=roi, settled=settled, memory=memory)
        except Exception:
            # One bad frame must not stop the lane; the frame is logged and skipped.
            log.exception("lane %s: analysis failed on %s frame %d", self.lane.id, frame.source_id, frame.index)
            return []
        finally:
            if memory is not None:
                memory.abandon()  # the camera's next frame must never wait on a failed one
            elapsed = time.perf_counter() - started
            self.times.analysis_s += elapsed
            if self.stages is not None:
                self.stages.observe(self.lane.id, "analysis", elapsed)

    def feed(self, frame: Frame, moving: bool, motion_box: MotionBox | None = None) -> list[tuple[Crossing, Verdict]]:
        """Give the lane one frame (in time order), the motion gate's answer for it and the box
        of what changed (None: nothing, or the caller has no box; the whole frame is analysed)."""
        if frame.source_id not in self.roles:
            raise KeyError(f"lane {self.lane.id}: unknown source {frame.source_id!r}")
        region = self._regions.get(frame.source_id)
        if region is not None:
            region.update(frame.ts, motion_box)
        future = None
        if self._wants_analysis(frame, moving):
            h, w = frame.image.shape[:2]
            roi = region.region(w, h) if region is not None else None
            # What the open crossing agrees on so far, taken here (in frame order) so that a
            # replay analyses each frame the same way whatever the thread timing.
            settled = self.assembler.settled(self.roles[frame.source_id])
            # Linked in frame order too: the frame recalls what the camera's previous frame read.
            memory = self._memories.get(frame.source_id)
            link = memory.link(frame.ts) if memory is not None else None
            future = self.pool.submit(self._analyze, frame, roi, settled, link)
            self.times.analysed_frames += 1
        else:
            self.times.skipped_frames += 1
        # Keep the pixels only while analysis needs them.
        self._in_flight.append((frame, moving, future))
        done: list[tuple[Crossing, Verdict]] = []
        while len(self._in_flight) > self.max_in_flight or (self._in_flight and self._in_flight[0][2] is None):
            done += self._retire()
        return done

    def _retire(self) -> list[tuple[Crossing, Verdict]]:
        frame, moving, future = self._in_flight.popleft()
        role = self.roles[frame.source_id]
        closed = self.assembler.on_motion(frame.source_id, frame.ts, moving and role in CAMERA_ROLES)
        if future is not None:
            for obs in future.result():
                self.assembler.add(role, obs)
        return [self._finish(c) for c in closed]

    @property
    def in_flight(self) -> int:
        """Frames waiting for their analysis to be retired (the lane's analysis queue depth)."""
        return len(self._in_flight)

    def _finish(self, crossing: Crossing) -> tuple[Crossing, Verdict]:
        started = time.perf_counter()
        joined = self.join.join(crossing) if self.join is not None else None
        if joined is not None:
            crossing = joined.crossing
        verdict = decide(crossing, self.manifest, self.verdicts, self.watchlist)
        if joined is not None:
            verdict = joined.adjust(verdict)
        decided = time.perf_counter()
        if self.store is not None:
            self.store.save_crossing(crossing, verdict)
        if self.stages is not None:
            self.stages.observe(self.lane.id, "verdict", decided - started)
            if self.store is not None:
                self.stages.observe(self.lane.id, "store", time.perf_counter() - decided)
        self.times.crossings += 1
        log.info("lane %s: crossing %s closed: %s", self.lane.id, crossing.id, verdict.decision)
        if self.on_crossing is not None:
            self.on_crossing(crossing, verdict)
        return crossing, verdict

    def finish(self) -> list[tuple[Crossing, Verdict]]:
        """Drain analysis in flight and close the open crossing (end of stream / shutdown)."""
        done: list[tuple[Crossing, Verdict]] = []
        while self._in_flight:
            done += self._retire()
        done += [self._finish(c) for c in self.assembler.flush()]
        self.pool.shutdown(wait=True)
        return done
