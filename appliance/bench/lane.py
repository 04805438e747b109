"""``appliance bench lane``: per-stage cost of one lane on a 1920x1080 simulated rear camera.

Everything runs in one thread with ONNX Runtime pinned to one thread, so the figures are per
core. The frame path is the lane's own (one OCR pass shared by the plate, container and seal
readers; the seal reader decodes the seal's barcode/QR). Printed: per-stage latency (decode,
motion gate, text detection, text recognition, each reader, assembly, and the kiosk QR decode
on the declaration images, which arrive once per vehicle, not per frame), analysed frames per second on one core with
a vehicle in view, the cost of an idle lane as a share of one core, and peak memory. The
baseline, measured in the same run, is the same lane without the motion gate: every frame goes
through the full analysis.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2

from appliance.config import AssemblyConfig
from appliance.lanes.analysis import Readers
from appliance.lanes.assembly import LaneAssembler
from appliance.reads import Observation, Read


def _ms(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    ordered = sorted(values)
    return statistics.fmean(values) * 1000, ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000


def bench_lane(seconds: float = 20.0, width: int = 1920, height: int = 1080, fps: float = 5.0) -> str:
    from appliance.ingest.motion import MotionGate
    from appliance.ingest.sources import VideoFileSource
    from appliance.sim import simulate

    vehicles = max(2, int(seconds / 4.0))
    with tempfile.TemporaryDirectory(prefix="bench-lane-") as tmp:
        sim = Path(tmp)
        simulate(sim, vehicles, seed=7, fps=fps, width=width, height=height, gap_s=2.0)
        video = next((sim / "cameras").glob("rear.*"))
        readers = _bench_readers()
        engine = readers.ocr
        times: dict[str, list[float]] = defaultdict(list)
        gate = MotionGate()
        assembler = LaneAssembler("bench", AssemblyConfig(), ["rear"])
        source = VideoFileSource("rear", video, start_time=0.0)
        source.open()
        idle_frames = busy_frames = 0
        busy_total: list[float] = []
        while True:
            t0 = time.perf_counter()
            frame = source.read()
            t1 = time.perf_counter()
            if frame is None:
                break
            times["decode"].append(t1 - t0)
            moving = gate.update(frame.image).moving
            t2 = time.perf_counter()
            times["motion gate"].append(t2 - t1)
            if not moving:
                idle_frames += 1
                assembler.on_motion("rear", frame.ts, False)
                continue
            busy_frames += 1
            lines = engine.read(frame.image, timings=times)
            reads: list[Read] = []
            for stage, reader in (("plate reader", readers.plates), ("container reader", readers.containers),
                                  ("seal reader (OCR + codes)", readers.seals)):
                t3 = time.perf_counter()
                if reader is not None:
                    reads += reader.read(frame.image, lines=lines)
                times[stage].append(time.perf_counter() - t3)
            t5 = time.perf_counter()
            assembler.on_motion("rear", frame.ts, True)
            for read in reads:
                assembler.add("rear", Observation("rear", frame.ts, read))
            t6 = time.perf_counter()
            times["assembly"].append(t6 - t5)
            busy_total.append(t6 - t0)
        source.close()
        assembler.flush()
        if readers.codes is not None:
            for path in sorted((sim / "kiosk").glob("*.png")):
                image = cv2.imread(str(path))
                if image is None:
                    continue
                t0 = time.perf_counter()
                readers.codes.read(image)
                times["kiosk declaration QR"].append(time.perf_counter() - t0)
    return _report(times, busy_total, idle_frames, busy_frames, fps, width, height)


def _bench_readers() -> Readers:
    from appliance.config import AppConfig

    cfg = AppConfig.model_validate(
        {"site": {"gate": "VNHNG", "box_id": "bench"},
         "lanes": [{"id": "bench", "sources": [{"id": "rear", "type": "usb", "role": "rear", "device": 0}]}]}
    )
    return Readers.from_config(cfg)


def _report(times: dict[str, list[float]], busy_total: list[float], idle: int, busy: int, fps: float,
            width: int, height: int) -> str:
    rows = [f"lane benchmark: {width}x{height} simulated rear camera at {fps:g} fps, one thread, ORT 1 thread",
            f"frames: {idle + busy} ({busy} with a vehicle in view, {idle} idle)", "",
            f"{'stage':32s} {'mean ms':>9s} {'p95 ms':>9s} {'calls':>6s}"]
    for stage in ("decode", "motion gate", "text detection", "text recognition", "plate reader",
                  "container reader", "seal reader (OCR + codes)", "assembly", "kiosk declaration QR"):
        mean, p95 = _ms(times.get(stage, []))
        rows.append(f"{stage:32s} {mean:9.1f} {p95:9.1f} {len(times.get(stage, [])):6d}")
    busy_ms, busy_p95 = _ms(busy_total)
    idle_ms = _ms(times["decode"])[0] + _ms(times["motion gate"])[0]
    analysed_fps = 1000.0 / busy_ms if busy_ms else 0.0
    idle_share = idle_ms * fps / 1000.0
    baseline_idle_share = busy_ms * fps / 1000.0  # no motion gate: every frame fully analysed
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows += [
        "",
        f"{'vehicle in view, whole frame path':32s} {busy_ms:9.1f} {busy_p95:9.1f} {len(busy_total):6d}",
        f"analysed fps on one core (vehicle in view): {analysed_fps:.2f}  (target >= 5)",
        f"idle lane: {idle_ms:.1f} ms per frame = {100 * idle_share:.1f} % of one core at {fps:g} fps "
        f"(target < 5 %)",
        f"baseline without motion gate, idle lane: {100 * baseline_idle_share:.1f} % of one core "
        f"(ratio {baseline_idle_share / idle_share if idle_share else float('inf'):.0f}x)",
        f"peak memory (max RSS): {peak_mb:.0f} MiB",
    ]
    return "\n".join(rows)
