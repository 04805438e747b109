"""Text detection and recognition (PP-OCRv4 det + rec) on the project's own ONNX layer.

``TextDetector`` finds text boxes with the DB (differentiable binarisation) detector;
``TextRecognizer`` reads line crops with the CTC recogniser and keeps, for every output
character, the top alternatives so plate and container grammars can correct confusions with
evidence. ``OcrEngine`` chains them. Images are BGR ``uint8`` arrays.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from appliance.errors import FrameError, ModelError
from appliance.inference.slots import InferenceModel
from appliance.inference.store import ModelStore
from appliance.reads import BBox, TextLine

if TYPE_CHECKING:
    from appliance.analyzers.line_memory import MemoryLink

log = logging.getLogger(__name__)

Quad = np.ndarray  # float32 [4, 2], clockwise from top-left


def check_image(image: object, where: str) -> np.ndarray:
    """The image as a BGR uint8 array, or a FrameError saying what is wrong with it."""
    if not isinstance(image, np.ndarray):
        raise FrameError(f"{where}: expected an image array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FrameError(f"{where}: expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] < 4 or image.shape[1] < 4:
        raise FrameError(f"{where}: expected an HxWx3 image of at least 4x4, got shape {image.shape}")
    if image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


@dataclass(frozen=True)
class DetectorSettings:
    max_side: int = 960  # longer image side fed to the detector (multiple of 32)
    binarize: float = 0.3
    box_threshold: float = 0.5
    unclip_ratio: float = 1.6
    max_candidates: int = 300
    min_size: int = 3


class TextDetector:
    """PP-OCR DB text detector: image -> quadrilaterals around text lines."""

    def __init__(self, model: InferenceModel, settings: DetectorSettings | None = None):
        # An OnnxModel, or a ModelSlot whose model may be swapped between frames: what depends on the
        # model (normalisation here) is looked up per call, for the model serving that call.
        self.model = model
        self.settings = settings or DetectorSettings()
        self._norms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._normalisation()

    def _normalisation(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of the model serving now."""
        manifest = self.model.manifest
        norm = self._norms.get(manifest.sha256)
        if norm is None:
            pre = manifest.preprocess
            norm = (np.array(pre.get("mean", [0.5, 0.5, 0.5]), dtype=np.float32),
                    np.array(pre.get("std", [0.5, 0.5, 0.5]), dtype=np.float32))
            self._norms[manifest.sha256] = norm
        return norm

    def detect(self, image: np.ndarray, max_side: int | None = None, roi: BBox | None = None) -> list[Quad]:
        """Text quads in full-image pixels.

        ``roi``: look only inside this region, at the scale the whole image would get (so text
        is found at the same size, and the cost falls with the region's area).
        """
        image = check_image(image, "text detector")
        h, w = image.shape[:2]
        limit = max_side or self.settings.max_side
        ratio = min(1.0, limit / max(h, w))
        x0, y0, view = 0, 0, image
        if roi is not None:
            x0, y0 = max(0, roi.x), max(0, roi.y)
            x1, y1 = min(w, roi.x + roi.w), min(h, roi.y + roi.h)
            if x1 - x0 < 4 or y1 - y0 < 4:
                return []
            view = image[y0:y1, x0:x1]
        vh, vw = view.shape[:2]
        rh = max(32, round(vh * ratio / 32) * 32)
        rw = max(32, round(vw * ratio / 32) * 32)
        resized = cv2.resize(view, (rw, rh), interpolation=cv2.INTER_LINEAR)
        mean, std = self._normalisation()
        x = (resized.astype(np.float32) / 255.0 - mean) / std
        x = x.transpose(2, 0, 1)[None]
        prob = self.model.run({self.model.input_names[0]: x})[0][0, 0]
        quads = self._boxes(prob, vw / rw, vh / rh, (vw, vh))
        for quad in quads:
            quad[:, 0] += x0
            quad[:, 1] += y0
        return quads

    def _boxes(self, prob: np.ndarray, sx: float, sy: float, size: tuple[int, int]) -> list[Quad]:
        s = self.settings
        bitmap = cv2.dilate((prob > s.binarize).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        quads: list[Quad] = []
        for contour in contours[: s.max_candidates]:
            rect = cv2.minAreaRect(contour)
            if min(rect[1]) < s.min_size:
                continue
            if _box_score(prob, contour) < s.box_threshold:
                continue
            (cx, cy), (rw, rh), angle = rect
            area, perimeter = rw * rh, 2 * (rw + rh)
            d = area * s.unclip_ratio / max(perimeter, 1e-6)
            grown = ((cx, cy), (rw + 2 * d, rh + 2 * d), angle)
            if min(grown[1]) < s.min_size + 2:
                continue
            quad = _order_clockwise(cv2.boxPoints(grown))
            quad[:, 0] = np.clip(quad[:, 0] * sx, 0, size[0] - 1)
            quad[:, 1] = np.clip(quad[:, 1] * sy, 0, size[1] - 1)
            quads.append(quad.astype(np.float32))
        # Reading order: top to bottom, then left to right.
        quads.sort(key=lambda q: (round(float(q[:, 1].min()) / 10), float(q[:, 0].min())))
        return quads


def _box_score(prob: np.ndarray, contour: np.ndarray) -> float:
    x, y, w, h = cv2.boundingRect(contour)
    mask = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(mask, [contour.reshape(-1, 2) - [x, y]], 1)
    return float(cv2.mean(prob[y : y + h, x : x + w], mask)[0])


def _order_clockwise(pts: np.ndarray) -> np.ndarray:
    pts = pts[np.argsort(pts[:, 0])]
    left, right = pts[:2], pts[2:]
    tl, bl = left[np.argsort(left[:, 1])]
    tr, br = right[np.argsort(right[:, 1])]
    return np.array([tl, tr, br, bl], dtype=np.float32)


def crop_quad(image: np.ndarray, quad: Quad) -> np.ndarray:
    """Rectify the quadrilateral to an upright crop; tall crops are turned to read left-right."""
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    crop = cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    if height >= 1.5 * width:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)


@dataclass(frozen=True)
class Recognition:
    text: str
    confidence: float
    alternatives: tuple[tuple[tuple[str, float], ...], ...]


class TextRecognizer:
    """PP-OCR CTC recogniser: line crops -> text with per-character alternatives."""

    def __init__(self, model: InferenceModel, top_k: int = 3, max_width: int = 640, min_width: int = 64):
        # An OnnxModel, or a ModelSlot whose model may be swapped between frames: the charset and the
        # input height are looked up per call, for the model serving that call.
        self.model = model
        self.top_k = top_k
        self.max_width = max_width
        self.min_width = min_width
        self._charsets: dict[str, list[str]] = {}
        _ = self.charset  # a recogniser without a usable charset fails here, at start-up

    @property
    def charset(self) -> list[str]:
        """The classes of the model serving now: blank, its charset, space."""
        model = self.model
        manifest = model.manifest
        charset = self._charsets.get(manifest.sha256)
        if charset is None:
            key = manifest.charset_metadata_key or "character"
            chars = model.metadata().get(key)
            if not chars:
                raise ModelError(f"{model.path}: recogniser has no charset in its metadata key {key!r}")
            charset = ["blank", *chars.splitlines(), " "]
            classes = manifest.outputs[0].shape[-1]
            if isinstance(classes, int) and classes != len(charset):
                raise ModelError(f"{model.path}: charset has {len(charset)} classes, output has {classes}")
            self._charsets[manifest.sha256] = charset
        return charset

    @property
    def height(self) -> int:
        return int(self.model.manifest.preprocess.get("height", 48))

    def _prepare(self, crop: np.ndarray, width: int, height: int) -> np.ndarray:
        h, w = crop.shape[:2]
        new_w = min(width, max(8, math.ceil(height * w / max(h, 1))))
        resized = cv2.resize(crop, (new_w, height), interpolation=cv2.INTER_LINEAR)
        x = resized.astype(np.float32).transpose(2, 0, 1) / 255.0
        x = (x - 0.5) / 0.5
        out = np.zeros((3, height, width), dtype=np.float32)
        out[:, :, :new_w] = x
        return out

    def recognize(self, crops: list[np.ndarray], batch: int = 8) -> list[Recognition]:
        """Read line crops, in batches of similar aspect ratio padded to the widest of them.

        ``batch=1`` is the fastest on CPU (lane frames, 7 crops each, one thread: 97 ms at
        batch 1, 151 ms at batch 8), but the padding is not neutral: a character at the very
        right edge of a crop (a boxed check digit) is read more reliably with blank space after
        it, which a batch with wider crops provides. The frame-wide pass uses batch 1; the
        re-reads of a few hard crops keep the batches.
        """
        if not crops:
            return []
        crops = [check_image(c, "text recogniser") for c in crops]
        charset, height = self.charset, self.height
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / max(crops[i].shape[0], 1))
        results: list[Recognition | None] = [None] * len(crops)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            ratio = max(crops[i].shape[1] / max(crops[i].shape[0], 1) for i in idx)
            width = int(min(self.max_width, max(self.min_width, math.ceil(height * ratio / 8) * 8)))
            x = np.stack([self._prepare(crops[i], width, height) for i in idx])
            probs = self.model.run({self.model.input_names[0]: x})[0]
            for j, i in enumerate(idx):
                results[i] = self._decode(probs[j], charset)
        return [r for r in results if r is not None]

    def _decode(self, probs: np.ndarray, charset: list[str]) -> Recognition:
        """Greedy CTC decoding: a character wherever the best class is not blank and not a repeat
        of the step before; with it, the ``top_k`` classes of that step (blank left out)."""
        best = probs.argmax(axis=1)
        previous = np.concatenate(([-1], best[:-1]))
        steps = np.flatnonzero((best != 0) & (best != previous))
        if steps.size == 0:
            return Recognition("", 0.0, ())
        rows = probs[steps]
        top = np.argpartition(rows, -self.top_k, axis=1)[:, -self.top_k :]
        top_p = np.take_along_axis(rows, top, axis=1)
        order = np.argsort(top_p, axis=1)[:, ::-1]
        top, top_p = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_p, order, axis=1)
        classes = best[steps]
        confs = rows[np.arange(len(steps)), classes].astype(np.float64)
        alts = tuple(
            tuple((charset[k], float(p)) for k, p in zip(ks, ps, strict=True) if k != 0)
            for ks, ps in zip(top.tolist(), top_p.tolist(), strict=True)
        )
        text = "".join(charset[c] for c in classes.tolist())
        confidence = float(np.mean(confs))
        return Recognition(text, min(max(confidence, 0.0), 1.0), alts)


class OcrEngine:
    """Detector + recogniser: image -> text lines in reading order."""

    def __init__(self, detector: TextDetector, recognizer: TextRecognizer, min_confidence: float = 0.3):
        self.detector = detector
        self.recognizer = recognizer
        self.min_confidence = min_confidence

    @classmethod
    def from_store(
        cls,
        store: ModelStore | None = None,
        intra_op_threads: int = 1,
        detector: str = "ppocrv4-det",
        recognizer: str = "ppocrv4-rec",
    ) -> OcrEngine:
        from appliance.inference.session import SessionOptions

        store = store or ModelStore()
        options = SessionOptions(intra_op_threads=intra_op_threads)
        det = store.open("text-detection", detector, options=options)
        rec = store.open("text-recognition", recognizer, options=options)
        return cls(TextDetector(det), TextRecognizer(rec))

    def read(
        self,
        image: np.ndarray,
        max_side: int | None = None,
        timings: dict[str, list[float]] | None = None,
        roi: BBox | None = None,
        memory: MemoryLink | None = None,
    ) -> list[TextLine]:
        """Text lines in reading order, in full-image pixels.

        ``roi``: detect only inside this region (see ``TextDetector.detect``); ``memory``: this
        frame's link in its camera's line memory (lines the previous frame read as text nobody
        needs are recalled, not read again; see line_memory.py); ``timings`` (if given) collects
        seconds per stage.
        """
        try:
            image = check_image(image, "OCR")
            t0 = time.perf_counter()
            quads = self.detector.detect(image, max_side=max_side, roi=roi)
            t1 = time.perf_counter()
            crops = [crop_quad(image, q) for q in quads]
            recalled = memory.recall(quads, crops) if memory is not None else [None] * len(crops)
            todo = [i for i, old in enumerate(recalled) if old is None]
            fresh = iter(self.recognizer.recognize([crops[i] for i in todo], batch=1))
            recognitions = [next(fresh) if old is None else old.recognition for old in recalled]
            if memory is not None:
                memory.publish(quads, crops, recognitions, recalled)
        finally:
            if memory is not None:
                memory.abandon()  # a no-op once published; otherwise the next frame must not wait
        if timings is not None:
            timings.setdefault("text detection", []).append(t1 - t0)
            timings.setdefault("text recognition", []).append(time.perf_counter() - t1)
        lines = []
        for quad, rec in zip(quads, recognitions, strict=True):
            if not rec.text or rec.confidence < self.min_confidence:
                continue
            points = tuple((float(px), float(py)) for px, py in quad)
            lines.append(TextLine(rec.text, rec.confidence, BBox.from_points(list(points)), points, rec.alternatives))
        return lines
