"""The passenger lane: document -> live face -> OPEN / DENY / MANUAL.

A passage starts when the kiosk's scanner decodes a document QR (a CCCD citizen ID). For the next
``faces.capture_s`` seconds the face camera's frames belong to it; then the lane decides:

1. the document: decoded and valid (``explain_cccd``), and not on central's person watchlist;
2. the reference: the template enrolled for this document, else the chip photo a document
   reader hands over (``documents.py``), embedded like the live face;
3. the live face: exactly one face per frame (several: tailgating), the best frame by quality,
   the liveness checks across frames (``liveness.py``);
4. the 1:1 distance between the live face and the reference, and the nearest face-watchlist
   template (1:N);
5. ``decide_passage`` turns these facts into the verdict.

Nothing biometric leaves this module in the clear: the verdict and its facts hold outcomes and
scores only; the best face crop is stored encrypted (``TemplateStore.put_crop``) for the officer
who reviews the passage. Names and document numbers are never logged.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np

from appliance.analyzers.codes import CodeReader
from appliance.analyzers.payloads import CccdParse, explain_cccd
from appliance.config import FacesConfig, LaneConfig
from appliance.faces.documents import DocumentReader, decode_photo
from appliance.faces.embed import FaceEmbedder, distance
from appliance.faces.templates import FaceDataError
from appliance.ingest.frames import Frame
from appliance.verdicts.passage import PassageFacts, PassageReason, PassageVerdict, ReferenceState, decide_passage
from appliance.verdicts.watchlist import WatchlistIndex

log = logging.getLogger(__name__)

MAX_FRAMES = 8  # face frames judged per passage (evenly spread over the capture)
TIMINGS_KEPT = 1000


class FaceLike(Protocol):
    landmarks: np.ndarray


class FacePipeline(Protocol):
    """What the lane needs of the face modules (detect.py, quality.py, liveness.py)."""

    def find(self, image: np.ndarray) -> Sequence[Any]: ...

    def chip(self, image: np.ndarray, face: Any) -> np.ndarray: ...

    def quality(self, image: np.ndarray, face: Any) -> tuple[bool, tuple[str, ...], float]:
        """(usable, reason codes, a sharpness-like score to rank frames)."""
        ...

    def liveness(self, frames: list[tuple[np.ndarray, Any]]) -> tuple[bool | None, tuple[str, ...], dict[str, float]]:
        ...


class Templates(Protocol):
    def reference(self, person_ref: str) -> np.ndarray | None: ...

    def put_crop(self, jpeg: bytes, crossing_id: str, ttl_s: float) -> str: ...


class FaceWatchlist(Protocol):
    def nearest(self, descriptor: np.ndarray) -> float | None:
        """Distance to the nearest watchlist template (None: empty watchlist)."""
        ...


@dataclass
class Passage:
    id: str
    lane_id: str
    started_at: float
    document: CccdParse | None
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    ended_at: float = 0.0


@dataclass(frozen=True)
class PassageResult:
    passage_id: str
    lane_id: str
    started_at: float
    ended_at: float
    person_ref: str | None  # keyed hash of the document number (FaceKey.person_ref; never the number)
    facts: PassageFacts
    verdict: PassageVerdict
    crop_sha256: str | None  # the encrypted best face crop, for the reviewing officer
    models: tuple[str, ...] = ()


class PassengerLane:
    """Frames in time order -> passages -> results (``on_passage`` gets each one)."""

    def __init__(
        self,
        lane: LaneConfig,
        config: FacesConfig,
        faces: FacePipeline,
        embedder: FaceEmbedder,
        templates: Templates,
        persons: WatchlistIndex,
        person_ref: Callable[[str], str],
        face_watchlist: FaceWatchlist | None = None,
        documents: DocumentReader | None = None,
        codes: CodeReader | None = None,
        on_passage: Callable[[PassageResult], None] | None = None,
    ):
        self.lane = lane
        self.config = config
        self.faces = faces
        self.embedder = embedder
        self.templates = templates
        self.persons = persons
        self.person_ref = person_ref
        self.face_watchlist = face_watchlist
        self.documents = documents
        self.codes = codes or CodeReader()
        self.on_passage = on_passage
        self.roles = {s.id: s.role for s in lane.sources}
        self._open: Passage | None = None
        #: Milliseconds per step of the most recent passages (for `appliance bench passenger` and /metrics).
        self.timings: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=TIMINGS_KEPT))

    @contextmanager
    def _timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step].append(1000 * (time.perf_counter() - started))

    # -- frames ------------------------------------------------------------------------------

    def feed(self, frame: Frame) -> list[PassageResult]:
        role = self.roles.get(frame.source_id)
        if role is None:
            raise KeyError(f"lane {self.lane.id}: unknown source {frame.source_id!r}")
        done = self._close_if_due(frame.ts)
        if role == "kiosk":
            # Every scan the kiosk drops is a document presented, readable or not.
            done += self._close()
            with self._timed("document"):
                document = self._document(frame.image)
            self._open = Passage(f"{self.lane.id}-{uuid.uuid4().hex[:12]}", self.lane.id, frame.ts, document)
        elif role == "face" and self._open is not None:
            self._open.frames.append((frame.ts, frame.image))
        return done

    def finish(self) -> list[PassageResult]:
        return self._close()

    def _document(self, image: np.ndarray) -> CccdParse | None:
        """The document QR on a kiosk scan, parsed (valid or with the reason it is not); None: no QR decoded."""
        codes = self.codes.read(image)
        if not codes:
            return None
        cccd_like = [c for c in codes if c.text.count("|") >= 4]  # a CCCD record has 7 '|'-separated fields
        return explain_cccd((cccd_like or codes)[0].text)

    def _close_if_due(self, now: float) -> list[PassageResult]:
        if self._open is not None and now - self._open.started_at > self.config.capture_s:
            return self._close(end=self._open.started_at + self.config.capture_s)
        return []

    def _close(self, end: float | None = None) -> list[PassageResult]:
        passage, self._open = self._open, None
        if passage is None:
            return []
        passage.ended_at = end if end is not None else (passage.frames[-1][0] if passage.frames else passage.started_at)
        try:
            result = self.decide(passage)
        except Exception as exc:  # fail safe: a passage the lane could not judge goes to an officer, never OPEN
            log.exception("lane %s: passage %s could not be judged", self.lane.id, passage.id)
            result = self._undecided(passage, exc)
        if self.on_passage is not None:
            self.on_passage(result)
        return [result]

    def _undecided(self, passage: Passage, exc: Exception) -> PassageResult:
        facts = PassageFacts(document_read=passage.document is not None)
        reason = PassageReason("processing_error", f"the lane failed: {type(exc).__name__}")
        verdict = PassageVerdict("MANUAL", (reason,))
        m = self.embedder.model.manifest
        return PassageResult(passage.id, self.lane.id, passage.started_at, passage.ended_at, None, facts, verdict, None,
                             (f"{m.task}/{m.name}@{m.version}",))

    # -- the decision --------------------------------------------------------------------------

    def decide(self, passage: Passage) -> PassageResult:
        started = time.perf_counter()
        document = passage.document
        record = document.record if document is not None else None
        person_ref = self.person_ref(record.id_number) if record is not None else None
        listed = record is not None and self.persons.lookup("person", record.id_number, passage.started_at) is not None
        reference, reference_state, reference_detail = self._reference(person_ref, record.id_number if record else None)

        judged = _spread(passage.frames, MAX_FRAMES)
        one_face: list[tuple[np.ndarray, Any]] = []
        most_faces = 0
        with self._timed("find"):
            for _, image in judged:
                found = list(self.faces.find(image))
                most_faces = max(most_faces, len(found))
                if len(found) == 1:
                    one_face.append((image, found[0]))
        quality_reasons: tuple[str, ...] = ()
        live: bool | None = None
        liveness_reasons: tuple[str, ...] = ()
        scores: dict[str, float] = {}
        match = watch = None
        crop_sha = None
        if one_face and most_faces <= self.config.max_faces:
            with self._timed("quality"):
                ranked = sorted(((self.faces.quality(img, face), img, face) for img, face in one_face),
                                key=lambda q: (q[0][0], q[0][2]), reverse=True)
            (usable, reasons, sharpness), best_image, best_face = ranked[0]
            quality_reasons = () if usable else reasons
            scores["sharpness"] = round(float(sharpness), 2)
            with self._timed("liveness"):
                live, liveness_reasons, live_scores = self.faces.liveness(one_face)
            scores.update({f"liveness_{k}": round(float(v), 4) for k, v in live_scores.items()})
            with self._timed("embed"):
                chip = self.faces.chip(best_image, best_face)
                descriptor = self.embedder.embed([chip])[0]
            if reference is not None:
                match = distance(descriptor, reference)
            if self.face_watchlist is not None:
                with self._timed("watchlist"):
                    watch = self.face_watchlist.nearest(descriptor)
            with self._timed("crop"):
                crop_sha = self._keep_crop(chip, passage.id)
        facts = PassageFacts(
            document_read=document is not None,
            document_problem=None if document is None or document.ok else document.reason,
            document_listed=listed,
            reference=reference_state,
            reference_detail=reference_detail,
            frames_with_face=len(one_face),
            most_faces=most_faces,
            quality_reasons=quality_reasons,
            live=live,
            liveness_reasons=liveness_reasons,
            match_distance=None if match is None else round(match, 4),
            watchlist_distance=None if watch is None else round(watch, 4),
            scores=scores | {"decide_ms": round(1000 * (time.perf_counter() - started), 1)},
        )
        self.timings["decide"].append(1000 * (time.perf_counter() - started))
        verdict = decide_passage(facts, self.config.match_threshold, self.config.watchlist_threshold,
                                 self.config.max_faces)
        log.info("lane %s: passage %s: %s (%s)", self.lane.id, passage.id, verdict.decision,
                 ",".join(r.code for r in verdict.reasons))
        m = self.embedder.model.manifest
        return PassageResult(passage.id, self.lane.id, passage.started_at, passage.ended_at, person_ref, facts,
                             verdict, crop_sha, (f"{m.task}/{m.name}@{m.version}",))

    def _reference(self, person_ref: str | None, document_number: str | None) -> tuple[
        np.ndarray | None, ReferenceState, str
    ]:
        if person_ref is None or document_number is None:
            return None, "missing", "no valid document to look the reference up by"
        try:
            enrolled = self.templates.reference(person_ref)
        except FaceDataError as exc:
            log.error("lane %s: the enrolled reference template cannot be used: %s", self.lane.id, exc)
            return None, "unusable", "the enrolled reference template does not open (altered or another key)"
        if enrolled is not None:
            return enrolled, "ok", "enrolled template"
        if self.documents is None:
            return None, "missing", "not enrolled and no document reader"
        try:
            data = self.documents.reference_photo(document_number)
        except (OSError, ValueError) as exc:
            log.warning("lane %s: the document reader failed: %s", self.lane.id, type(exc).__name__)
            return None, "missing", "the document reader failed"
        if data is None:
            return None, "missing", "not enrolled and the document reader gave no photo"
        photo = decode_photo(data)
        if photo is None:
            return None, "unusable", "the document's photo could not be decoded"
        found = list(self.faces.find(photo))
        if len(found) != 1:
            return None, "unusable", f"the document's photo shows {len(found)} faces"
        return self.embedder.embed([self.faces.chip(photo, found[0])])[0], "ok", "document reader photo"

    def _keep_crop(self, chip_rgb: np.ndarray, passage_id: str) -> str | None:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(chip_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            return None
        return self.templates.put_crop(jpeg.tobytes(), passage_id, ttl_s=self.config.crop_retention_days * 86400)


def _spread(frames: list[tuple[float, np.ndarray]], n: int) -> list[tuple[float, np.ndarray]]:
    """At most ``n`` frames, evenly spread (the first and the last kept)."""
    if len(frames) <= n:
        return frames
    picks = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return [frames[i] for i in sorted(set(picks.tolist()))]
