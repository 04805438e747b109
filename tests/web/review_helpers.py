"""Crossings for the review tests: real JPEG crops (as the lane cuts them) and hostile reads."""

from __future__ import annotations

import cv2
import numpy as np

from appliance.lanes.analysis import crop_jpeg
from appliance.lanes.crossing import Crossing, FieldResult, SealState
from appliance.reads import BBox, ContainerRead, Observation, PlateRead, SealRead
from appliance.store.db import Store
from appliance.verdicts.rules import Reason, Verdict

BASE_TS = 1_795_000_000.0
FRAME_W, FRAME_H = 1280, 720
SCRIPT = "<script>window.__pwned=1</script>"
IMG = "<img src=x onerror=\"window.__pwned=2\">"
SQL = "'; DROP TABLE crossings; --"
CONTROL = "A\x00B\x1b[31mC\u202eD\x07"
PLATE_BOX = BBox(500, 600, 160, 40)
CONTAINER_BOX = BBox(1150, 80, 130, 36)  # at the frame's right edge: its crop is clipped there


def frame(text: str, box: BBox) -> np.ndarray:
    image = np.full((FRAME_H, FRAME_W, 3), 90, np.uint8)
    cv2.rectangle(image, (box.x, box.y), (box.x + box.w, box.y + box.h), (235, 235, 235), -1)
    cv2.putText(image, text[:12], (box.x + 4, box.y + box.h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (20, 20, 20), 2)
    return image


def crop(store: Store, text: str, box: BBox) -> str:
    data = crop_jpeg(frame(text, box), box)
    assert data is not None
    return store.put_evidence(data)


def add_crossing(
    store: Store, crossing_id: str, decision: str = "REVIEW", *, plate: str = "29C-123.45",
    container: str = "MSKU1234565", seal: str = "VNH1234567", declaration: str = "301234567899",
    reasons: tuple[Reason, ...] = (), ended_at: float | None = None, lane_id: str = "cargo-1", frames: int = 2,
    plate_values: tuple[str, ...] = (),
) -> Crossing:
    """A crossing with a plate, a container and a seal, each read on ``frames`` frames with real crops."""
    ended = BASE_TS + 1000 if ended_at is None else ended_at
    plate_sha = crop(store, plate, PLATE_BOX)
    container_sha = crop(store, container, CONTAINER_BOX)
    observations = []
    for i in range(frames):
        value = plate_values[i] if i < len(plate_values) else plate
        observations.append(Observation("front", ended - 3 + i * 0.2,
                                        PlateRead(value, "VN", "one_line", "yellow", 0.81, PLATE_BOX, raw_text=value),
                                        plate_sha))
        observations.append(Observation("side", ended - 2 + i * 0.2,
                                        ContainerRead(container, 0.74, CONTAINER_BOX, "22G1",
                                                      candidates=(container, "MSKU1234570"), verified=False),
                                        container_sha))
    observations.append(Observation("rear", ended - 1, SealRead(seal, True, 0.66, None, "ocr")))
    crossing = Crossing(
        id=crossing_id, lane_id=lane_id, started_at=ended - 4, ended_at=ended,
        tractor_plate=FieldResult(plate, 0.81, frames, plate_sha),
        containers=(FieldResult(container, 0.74, frames, container_sha, "consensus"),),
        container_candidates=("MSKU1234570",),
        size_types=("22G1",), seal=SealState(True, FieldResult(seal, 0.66, 1, None)),
        declarations=(declaration,), observations=tuple(observations),
    )
    store.save_crossing(crossing, Verdict(decision, reasons, declaration))  # type: ignore[arg-type]
    return crossing


def add_hostile_crossing(store: Store, crossing_id: str = "cargo-1-evil") -> Crossing:
    """Reads and reasons carrying HTML, script, SQL and control characters."""
    reasons = (Reason("tractor_plate_mismatch", "HOLD", "tractor_plate", SCRIPT, IMG),
               Reason("seal_mismatch", "HOLD", "seal", SQL, CONTROL))
    return add_crossing(store, crossing_id, "HOLD", plate=SCRIPT, container="MSKU1234565", seal=SQL,
                        declaration="301234567898", reasons=reasons, ended_at=BASE_TS + 2000,
                        plate_values=(SCRIPT, IMG))
