"""``appliance bench lane``: per-stage cost of one lane on a 1920x1080 simulated rear camera.

Everything runs in one thread with ONNX Runtime pinned to one thread, so the figures are per
core. The frame path is the lane's own ``FrameAnalyzer``: text detected once, inside the region
the motion gate saw change (``MotionRegion``), and the lines shared by the plate, container and
seal readers (the seal reader also decodes the seal's barcode/QR). Printed: per-stage latency
(decode, motion gate, text detection, text recognition, each reader, assembly, and the kiosk
QR decode on the declaration images, which arrive once per vehicle, not per frame), analysed
frames per second on one core with a vehicle in view, the cost of an idle lane as a share of
one core, and peak memory.

Baselines, measured in the same run on the same frames: the vehicle-in-view path with text
detected on the whole frame (no motion region), without the lane's skipping of second looks
at fields the open crossing has already settled and without its line memory (door markings
recalled from the frame before instead of read again); and the idle lane without the motion gate
(every frame fully analysed).
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from appliance.config import AssemblyConfig
from appliance.lanes.analysis import FrameAnalyzer, Readers
from appliance.lanes.assembly import LaneAssembler
from appliance.lanes.regions import MotionRegion
from appliance.reads import Observation

ALT_DETECTOR = "ppocrv4-det-int8"  # the int8 build of the default detector, measured beside it
STAGES = ("decode", "motion gate", "text detection", "text recognition", "plate reader", "container reader",
          "seal reader", "assembly", "kiosk declaration QR")


def _ms(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    ordered = sorted(values)
    return statistics.fmean(values) * 1000, ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000


@dataclass
class _Pass:
    """What one pass over the video measured."""

    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    busy_total: list[float] = field(default_factory=list)
    region_share: list[float] = field(default_factory=list)
    idle: int = 0
    busy: int = 0
    detector_max_side: int = 0
    detector: str = ""


def bench_lane(seconds: float = 20.0, width: int = 1920, height: int = 1080, fps: float = 5.0) -> str:
    from appliance.sim import simulate

    vehicles = max(2, int(seconds / 4.0))
    with tempfile.TemporaryDirectory(prefix="bench-lane-") as tmp:
        sim = Path(tmp)
        simulate(sim, vehicles, seed=7, fps=fps, width=width, height=height, gap_s=2.0)
        video = next((sim / "cameras").glob("rear.*"))
        readers, detector_max_side = _bench_readers()
        analyzer = FrameAnalyzer(readers, store=None, detector_max_side=detector_max_side)
        lane = _run_pass(analyzer, video, use_region=True)
        whole = _run_pass(analyzer, video, use_region=False)
        alt_readers, _ = _bench_readers(detector=ALT_DETECTOR)
        alt = _run_pass(FrameAnalyzer(alt_readers, store=None, detector_max_side=detector_max_side),
                        video, use_region=True)
        codes = analyzer.readers.codes
        if codes is not None:
            for path in sorted((sim / "kiosk").glob("*.png")):
                image = cv2.imread(str(path))
                if image is None:
                    continue
                t0 = time.perf_counter()
                codes.read(image)
                lane.times["kiosk declaration QR"].append(time.perf_counter() - t0)
    return _report(lane, whole, alt, fps, width, height)


def _run_pass(analyzer: FrameAnalyzer, video: Path, use_region: bool) -> _Pass:
    from appliance.ingest.motion import MotionGate
    from appliance.ingest.sources import VideoFileSource

    m = analyzer.readers.ocr.detector.model.manifest
    out = _Pass(detector_max_side=analyzer.detector_max_side, detector=f"{m.name} v{m.version}")
    gate, region = MotionGate(), MotionRegion()
    assembler = LaneAssembler("bench", AssemblyConfig(), ["rear"])
    memory = analyzer.line_memory() if use_region else None
    source = VideoFileSource("rear", video, start_time=0.0)
    source.open()
    try:
        while True:
            t0 = time.perf_counter()
            frame = source.read()
            t1 = time.perf_counter()
            if frame is None:
                break
            out.times["decode"].append(t1 - t0)
            motion = gate.update(frame.image)
            region.update(frame.ts, motion.bbox)
            t2 = time.perf_counter()
            out.times["motion gate"].append(t2 - t1)
            if not motion.moving:
                out.idle += 1
                assembler.on_motion("rear", frame.ts, False)
                continue
            out.busy += 1
            h, w = frame.image.shape[:2]
            roi = region.region(w, h) if use_region else None
            out.region_share.append(1.0 if roi is None else roi.area / (w * h))
            settled = assembler.settled("rear") if use_region else None
            link = memory.link(frame.ts) if memory is not None else None
            stages: dict[str, list[float]] = defaultdict(list)
            reads = analyzer.reads_for("rear", frame.image, roi=roi, timings=stages, settled=settled, memory=link)
            for stage, seconds in stages.items():  # a reader may be called twice a frame: its cost per frame
                out.times[stage].append(sum(seconds))
            t3 = time.perf_counter()
            assembler.on_motion("rear", frame.ts, True)
            for read in reads:
                assembler.add("rear", Observation("rear", frame.ts, read))
            t4 = time.perf_counter()
            out.times["assembly"].append(t4 - t3)
            out.busy_total.append(t4 - t0)
    finally:
        source.close()
    assembler.flush()
    return out


def _bench_readers(detector: str | None = None) -> tuple[Readers, int]:
    """The readers and detector size of a lane with the default configuration (or another text
    detector from the store)."""
    from appliance.config import AppConfig

    data: dict[str, object] = {
        "site": {"gate": "VNHNG", "box_id": "bench"},
        "lanes": [{"id": "bench", "sources": [{"id": "rear", "type": "usb", "role": "rear", "device": 0}]}],
    }
    if detector is not None:
        data["analyzers"] = {"ocr_detector": detector}
    cfg = AppConfig.model_validate(data)
    return Readers.from_config(cfg), cfg.analyzers.plates.detector_max_side


def _report(lane: _Pass, whole: _Pass, alt: _Pass, fps: float, width: int, height: int) -> str:
    times = lane.times
    rows = [f"lane benchmark: {width}x{height} simulated rear camera at {fps:g} fps, one thread, ORT 1 thread, "
            f"text detector at {lane.detector_max_side} px ({lane.detector})",
            f"frames: {lane.idle + lane.busy} ({lane.busy} with a vehicle in view, {lane.idle} idle)",
            f"motion region: {100 * statistics.fmean(lane.region_share or [1.0]):.0f} % of the frame on average", "",
            f"{'stage':32s} {'mean ms':>9s} {'p95 ms':>9s} {'calls':>6s}"]
    for stage in STAGES:
        mean, p95 = _ms(times.get(stage, []))
        rows.append(f"{stage:32s} {mean:9.1f} {p95:9.1f} {len(times.get(stage, [])):6d}")
    busy_ms, busy_p95 = _ms(lane.busy_total)
    whole_ms, whole_p95 = _ms(whole.busy_total)
    alt_ms, alt_p95 = _ms(alt.busy_total)
    alt_det_ms = _ms(alt.times.get("text detection", []))[0]
    idle_ms = _ms(times["decode"])[0] + _ms(times["motion gate"])[0]
    analysed_fps = 1000.0 / busy_ms if busy_ms else 0.0
    whole_fps = 1000.0 / whole_ms if whole_ms else 0.0
    idle_share = idle_ms * fps / 1000.0
    baseline_idle_share = whole_ms * fps / 1000.0  # no motion gate: every frame fully analysed
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows += [
        "",
        f"{'vehicle in view, lane path':32s} {busy_ms:9.1f} {busy_p95:9.1f} {len(lane.busy_total):6d}",
        f"{'baseline: whole frame, no skips':32s} {whole_ms:9.1f} {whole_p95:9.1f} {len(whole.busy_total):6d}",
        f"{'with ' + alt.detector:32s} {alt_ms:9.1f} {alt_p95:9.1f} {len(alt.busy_total):6d}"
        f"   (its text detection {alt_det_ms:.1f} ms; lane path otherwise the same)",
        f"analysed fps on one core (vehicle in view): {analysed_fps:.2f}  (target >= 5; "
        f"whole-frame baseline {whole_fps:.2f}, ratio {analysed_fps / whole_fps if whole_fps else 0:.2f}x; "
        f"with {alt.detector}: {1000.0 / alt_ms if alt_ms else 0:.2f})",
        f"idle lane: {idle_ms:.1f} ms per frame = {100 * idle_share:.1f} % of one core at {fps:g} fps "
        f"(target < 5 %)",
        f"baseline without motion gate, idle lane: {100 * baseline_idle_share:.1f} % of one core "
        f"(ratio {baseline_idle_share / idle_share if idle_share else float('inf'):.0f}x)",
        f"peak memory (max RSS): {peak_mb:.0f} MiB",
    ]
    return "\n".join(rows)
