"""Per-frame analysis: the readers a source's role calls for, run on one frame.

The costly part is the text detector, so a camera frame is OCR'd once and its text lines are
shared by the plate, container, seal and fleet-ID readers. Kiosk/scanner images only go to the
code reader. Each read becomes an ``Observation`` with an evidence crop stored by its hash.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import cv2
import numpy as np

from appliance.analyzers.codes import CodeReader, CodeReaderConfig
from appliance.analyzers.containers import ContainerReader, is_marking
from appliance.analyzers.iso6346 import is_valid_size_type
from appliance.analyzers.line_memory import LineMemory, MemoryLink
from appliance.analyzers.ocr import OcrEngine, TextDetector, TextRecognizer
from appliance.analyzers.payloads import parse_declaration
from appliance.analyzers.plates import PlateReader
from appliance.analyzers.seals import SealReader
from appliance.config import AppConfig
from appliance.inference.slots import ModelSlots
from appliance.ingest.frames import Frame
from appliance.lanes.assembly import Settled
from appliance.reads import BBox, ContainerRead, FleetIdRead, Observation, PlateRead, Read, SealRead, TextLine
from appliance.store.db import EvidenceWriteError, Store

if TYPE_CHECKING:
    from appliance.inference.registry import ModelRegistry

log = logging.getLogger(__name__)

T = TypeVar("T")

# In the lane, a plate the frame's OCR read cleanly at this confidence is not cropped and read
# again: other frames of the passage vote on it (see PlateReader.skip_confident).
LANE_PLATE_SKIP_CONFIDENT = 0.9

_FLEET_ID = re.compile(r"^(IGV|AGV)[-_ ]?(\d{2,4})$")


def read_fleet_ids(lines: list[TextLine]) -> tuple[FleetIdRead, ...]:
    """Painted IDs of driverless vehicles (``IGV-07``) among the text lines of a frame."""
    found = []
    for line in lines:
        match = _FLEET_ID.match(line.text.replace(" ", "").upper().replace("O", "0").replace("1GV", "IGV"))
        if match:
            found.append(FleetIdRead(f"{match[1]}-{match[2]}", line.confidence, line.bbox))
    return tuple(found)


@dataclass
class Readers:
    """The readers of one appliance, shared by its lanes."""

    ocr: OcrEngine
    plates: PlateReader | None
    containers: ContainerReader | None
    seals: SealReader | None
    codes: CodeReader | None
    # The model slots the OCR engine runs on (hot swap, shadow, versions per frame); None: bare models.
    models: ModelSlots | None = None

    @classmethod
    def from_config(cls, config: AppConfig, registry: ModelRegistry | None = None) -> Readers:
        """The readers of ``config``; with a ``registry``, its active models serve (see inference/registry.py)."""
        from appliance.inference.watcher import open_model_slots

        a = config.analyzers
        slots = open_model_slots(config, registry)
        ocr = OcrEngine(TextDetector(slots["text-detection"]), TextRecognizer(slots["text-recognition"]))
        codes = CodeReader(CodeReaderConfig(max_payload_bytes=a.codes.max_payload_bytes)) if a.codes.enabled else None
        return cls(
            ocr=ocr,
            plates=PlateReader(ocr, skip_confident=LANE_PLATE_SKIP_CONFIDENT, max_rereads=3)
            if a.plates.enabled
            else None,
            containers=ContainerReader(ocr) if a.containers.enabled else None,
            seals=SealReader(ocr, codes or CodeReader(), serial_pattern=a.seals.serial_pattern)
            if a.seals.enabled
            else None,
            codes=codes,
            models=slots,
        )


def _unreadable_serial(lines: list[TextLine], explained: list[BBox]) -> BBox | None:
    """A line that looks like a seal serial read badly (7-12 latin letters and digits, at least 2
    letters and 4 digits) and is nothing else in the frame: a seal is there, unreadable. Such a
    frame never counts as "no seal"."""
    for line in lines:
        c = _compact(line.text)
        if (7 <= len(c) <= 12 and c.isascii() and sum(ch.isdigit() for ch in c) >= 4
                and sum(ch.isalpha() for ch in c) >= 2 and not _overlaps_any(line.bbox, explained)):
            return line.bbox
    return None


def _compact(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


def _overlaps_any(box: BBox | None, others: list[BBox], share: float = 0.5) -> bool:
    """True when ``box`` lies mostly (``share`` of the smaller box) on one of ``others``."""
    if box is None:
        return False
    for other in others:
        w = min(box.x + box.w, other.x + other.w) - max(box.x, other.x)
        h = min(box.y + box.h, other.y + other.h) - max(box.y, other.y)
        if w > 0 and h > 0 and w * h >= share * max(1, min(box.area, other.area)):
            return True
    return False


def crop_jpeg(image: np.ndarray, bbox: BBox | None, margin: float = 0.25) -> bytes | None:
    """A JPEG of the box plus a margin, for the inspector's evidence view."""
    if bbox is None or bbox.w <= 0 or bbox.h <= 0:
        return None
    h, w = image.shape[:2]
    mx, my = int(bbox.w * margin) + 4, int(bbox.h * margin) + 4
    x0, y0 = max(0, bbox.x - mx), max(0, bbox.y - my)
    x1, y1 = min(w, bbox.x + bbox.w + mx), min(h, bbox.y + bbox.h + my)
    if x1 <= x0 or y1 <= y0:
        return None
    ok, buf = cv2.imencode(".jpg", image[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else None


class FrameAnalyzer:
    """Runs the role's readers on a frame and stores one evidence crop per read."""

    def __init__(self, readers: Readers, store: Store | None, detector_max_side: int = 960):
        self.readers = readers
        self.store = store
        self.detector_max_side = detector_max_side

    @staticmethod
    def line_memory() -> LineMemory:
        """A camera's line memory: door weight markings are recalled from the frame before, not
        read again (they are long lines that none of the readers needs)."""
        return LineMemory(keep=is_marking)

    def reads_for(
        self,
        role: str,
        image: np.ndarray,
        roi: BBox | None = None,
        timings: dict[str, list[float]] | None = None,
        settled: Settled | None = None,
        memory: MemoryLink | None = None,
    ) -> list[Read]:
        """The reads of one frame. ``roi``: where to detect text (None: the whole frame);
        ``settled``: what the open crossing already agrees on (no second looks at text that
        reads as that); ``memory``: the frame's link in its camera's line memory (see
        ``line_memory``); ``timings`` (if given) collects seconds per stage, for ``appliance bench lane``."""
        settled = settled or Settled()
        r = self.readers
        reads: list[Read] = []
        if role == "kiosk":
            # Only declaration numbers are kept: other payloads (e.g. citizen-ID QR) are personal data.
            for code in r.codes.read(image) if r.codes else ():
                declaration = parse_declaration(code.text)
                if declaration is not None:
                    reads.append(declaration)
            return reads
        clock = _StageClock(timings)
        lines = r.ocr.read(image, max_side=self.detector_max_side, timings=timings, roi=roi, memory=memory)
        # Lines that plainly are something else (a seal serial, the doors' weight marking, a
        # size/type code) get no costly second look as a plate or a container number.
        other = [ln.bbox for ln in lines if self._plainly_other(ln.text)]
        # Text the frame's OCR already reads cleanly as a plate gets no costly second look as a
        # container number either (a two-line VN plate stacks like a number's two rows).
        scan = clock.run("plate reader", r.plates.scan, lines) if r.plates else None
        plate_like = scan.clean_boxes(LANE_PLATE_SKIP_CONFIDENT) if scan is not None else []
        containers: tuple[ContainerRead, ...] = ()
        seals: list[SealRead] = []
        if role != "front":
            if r.seals:
                seal_lines = [ln for ln in lines if not is_marking(ln.text)]
                seals = list(clock.run("seal reader", r.seals.read, image, region=roi, lines=seal_lines))
            if r.containers:
                containers = clock.run("container reader", r.containers.read, image, lines=lines,
                                       known=settled.containers, exclude=other + plate_like)
        container_boxes = [c.bbox for c in containers if c.bbox is not None]
        # Text already explained as a container number is not also a seal serial or a plate
        # (a seal serial is not a plate either): each piece of paint has one meaning.
        seals = [s for s in seals if s.source != "ocr" or not _overlaps_any(s.bbox, container_boxes)]
        explained = container_boxes + [s.bbox for s in seals if s.serial and s.bbox is not None]
        plates: list[PlateRead] = []
        if r.plates:
            # One plate per camera and vehicle: once the crossing has settled it, no second looks.
            plates = list(clock.run("plate reader", r.plates.read, image, lines=lines, known=settled.plates,
                                    exclude=explained + other, reread=False if settled.plates else None, scan=scan))
        plates = [p for p in plates if not _overlaps_any(p.bbox, explained + other)]
        if role == "front":
            return [*plates, *read_fleet_ids(lines)]
        # "No seal" only counts on frames where the doors were read clearly, so a seal
        # that is merely too far away or too small is never taken for a missing one.
        if not any(s.serial for s in seals):
            unreadable = _unreadable_serial(lines, [*explained, *other, *(p.bbox for p in plates if p.bbox)])
            if unreadable is not None:
                seals = [SealRead(None, True, 0.3, unreadable, "ocr")]
        # A number verified on an earlier frame of the passage counts too (its second look may
        # have been skipped because the crossing had settled it).
        doors_seen = any(c.verified or c.number in settled.containers_seen for c in containers)
        return [*plates, *containers, *(s for s in seals if s.present or doors_seen)]

    def _plainly_other(self, text: str) -> bool:
        seals = self.readers.seals
        return (is_marking(text) or is_valid_size_type(_compact(text))
                or (seals is not None and seals.serial_in(text) is not None))

    def analyze(
        self,
        role: str,
        frame: Frame,
        roi: BBox | None = None,
        settled: Settled | None = None,
        memory: MemoryLink | None = None,
    ) -> list[Observation]:
        """The observations of one frame; each records the model versions that made it (one model per task
        for the whole frame, even when a model is swapped meanwhile)."""
        slots = self.readers.models
        scope: AbstractContextManager[dict[str, str]] = slots.frame() if slots is not None else nullcontext({})
        with scope as used:
            reads = self.reads_for(role, frame.image, roi=roi, settled=settled, memory=memory)
        models = tuple(sorted(f"{task}/{label}" for task, label in used.items()))
        observations = []
        for read in reads:
            sha = None
            if self.store is not None:
                data = crop_jpeg(frame.image, getattr(read, "bbox", None))
                if data is not None:
                    try:
                        sha = self.store.put_evidence(data)
                    except EvidenceWriteError as exc:  # disk full: keep the read (and the verdict), lose the image
                        log.warning("lane evidence not stored: %s", exc)
            observations.append(Observation(frame.source_id, frame.ts, read, sha, models=models))
        return observations


class _StageClock:
    """Times calls into a ``timings`` dict (seconds per stage name); does nothing without one."""

    def __init__(self, timings: dict[str, list[float]] | None):
        self.timings = timings

    def run(self, stage: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.timings is None:
            return fn(*args, **kwargs)
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.timings.setdefault(stage, []).append(time.perf_counter() - started)
