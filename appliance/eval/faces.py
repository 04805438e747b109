"""``appliance eval faces``: 1:1 face verification on a pairs folder (../shared/eval/faces format).

The folder holds ``pairs.csv`` (``img_a, img_b, same_person[, source]``, paths relative to the
folder) and the images. Every image is read once by two pipelines:

* **ours**: the lane's own steps: ``FaceFinder`` (dlib HOG + the 5-point landmarks, largest face),
  the aligned chip, and the embedding model from the model store run through ONNX Runtime;
* **dlib**: dlib's own pipeline as its documentation gives it: the frontal detector upsampled once,
  the same 5-point model and ``face_recognition_model_v1.compute_face_descriptor`` on the image.

A pair's score is minus the descriptor distance (higher = more alike). A pair with an image in
which a pipeline found no face gets that pipeline's worst score: a failure to enrol is a reject.
The report gives ROC AUC (the ``score``), TAR at FAR 1 % and 0.1 % (with the smallest FAR the
impostor count can resolve), the EER and the rates at the configured ``faces.match_threshold``;
and, on every image where both found the face, the largest difference between the ONNX
descriptor and dlib's own for the same chip (the converter's tolerance is 1e-4).
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.eval.labels import LabelError
from appliance.eval.report import EvalReport, GroupResult
from appliance.eval.verification import OperatingPoint, eer, rates_at, roc_auc, tar_at_far

log = logging.getLogger(__name__)

WORST = -10.0  # score of a pair whose face was not found (descriptor distances are <= 2 after the model)
FARS = (0.01, 0.001)


@dataclass(frozen=True)
class FacePair:
    a: str
    b: str
    same: bool
    source: str


def read_face_pairs(folder: Path) -> tuple[FacePair, ...]:
    """``pairs.csv`` of a faces folder; every problem names the file and row."""
    path = folder / "pairs.csv"
    if not path.is_file():
        raise LabelError(f"{path}: not found (a faces folder needs pairs.csv: img_a,img_b,same_person)")
    pairs = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"img_a", "img_b", "same_person"} - set(reader.fieldnames or ())
        if missing:
            raise LabelError(f"{path}: missing columns {sorted(missing)}")
        for row_no, row in enumerate(reader, start=2):
            same = (row.get("same_person") or "").strip()
            if same not in ("0", "1"):
                raise LabelError(f"{path}:{row_no}: same_person must be 0 or 1, got {same!r}")
            a, b = (row.get("img_a") or "").strip(), (row.get("img_b") or "").strip()
            if not a or not b:
                raise LabelError(f"{path}:{row_no}: img_a and img_b are required")
            for name in (a, b):
                if not (folder / name).is_file():
                    raise LabelError(f"{path}:{row_no}: image {name} not found in {folder}")
            pairs.append(FacePair(a, b, same == "1", (row.get("source") or "").strip() or "all"))
    if not pairs:
        raise LabelError(f"{path}: no pairs")
    return tuple(pairs)


Describer = Callable[[np.ndarray], "tuple[np.ndarray | None, np.ndarray | None]"]


class OursPipeline:
    """The lane's steps: (descriptor, chip) of the largest face, or (None, None)."""

    def __init__(self) -> None:
        from appliance.faces.detect import FaceFinder, face_chip
        from appliance.faces.embed import FaceEmbedder
        from appliance.inference.session import SessionOptions
        from appliance.inference.store import ModelStore

        self.finder = FaceFinder()
        self._chip = face_chip
        self.embedder = FaceEmbedder(
            ModelStore().open("face-embedding", "dlib-resnet-v1", options=SessionOptions(intra_op_threads=1))
        )

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        faces = self.finder.find(image)
        if not faces:
            return None, None
        chip = self._chip(image, faces[0], self.embedder.chip_size, self.embedder.padding)
        return self.embedder.embed([chip])[0], chip


class DlibPipeline:
    """dlib's own: frontal detector (upsample 1), 5-point shape, compute_face_descriptor on the image."""

    def __init__(self) -> None:
        import dlib

        from appliance.faces.detect import descriptor_dat_path, predictor_path

        self.dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(predictor_path()))
        self.model = dlib.face_recognition_model_v1(str(descriptor_dat_path()))

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        rects = self.detector(rgb, 1)
        if not rects:
            return None, None
        rect = max(rects, key=lambda r: r.width() * r.height())
        shape = self.predictor(rgb, rect)
        return np.asarray(self.model.compute_face_descriptor(rgb, shape), np.float32), None

    def describe_chip(self, chip_rgb: np.ndarray) -> np.ndarray:
        """dlib's descriptor of an already aligned 150x150 chip."""
        return np.asarray(self.model.compute_face_descriptor(np.ascontiguousarray(chip_rgb)), np.float32)


@dataclass
class _Run:
    descriptors: dict[str, np.ndarray | None]
    ms: float
    misses: list[str]


def _describe_all(folder: Path, names: list[str], describe: Describer) -> tuple[_Run, dict[str, np.ndarray]]:
    descriptors: dict[str, np.ndarray | None] = {}
    chips: dict[str, np.ndarray] = {}
    misses: list[str] = []
    total = 0.0
    for name in names:
        image = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if image is None:
            raise LabelError(f"{folder / name}: not a readable image")
        started = time.perf_counter()
        descriptor, chip = describe(image)
        total += time.perf_counter() - started
        descriptors[name] = descriptor
        if chip is not None:
            chips[name] = chip
        if descriptor is None:
            misses.append(name)
    return _Run(descriptors, 1000 * total / max(len(names), 1), misses), chips


def pair_scores(pairs: tuple[FacePair, ...], descriptors: dict[str, np.ndarray | None]) -> np.ndarray:
    scores = np.empty(len(pairs), float)
    for i, pair in enumerate(pairs):
        a, b = descriptors[pair.a], descriptors[pair.b]
        scores[i] = WORST if a is None or b is None else -float(np.linalg.norm(a - b))
    return scores


@dataclass(frozen=True)
class VerificationSummary:
    auc: float
    tar_at_far: dict[float, OperatingPoint]
    resolvable_far: float
    eer: OperatingPoint
    at_threshold: OperatingPoint  # at the configured match threshold


def summarise(scores: np.ndarray, same: np.ndarray, match_threshold: float) -> VerificationSummary:
    genuine, impostor = scores[same], scores[~same]
    points = {}
    resolvable = 1.0
    for far in FARS:
        points[far], resolvable = tar_at_far(genuine, impostor, far)
    return VerificationSummary(roc_auc(genuine, impostor), points, resolvable, eer(genuine, impostor),
                               rates_at(genuine, impostor, -match_threshold))


def _describe_point(name: str, s: VerificationSummary) -> list[str]:
    lines = [f"{name}: ROC AUC {s.auc:.4f}; EER {1 - s.eer.tar:.3f}/{s.eer.far:.3f} (FRR/FAR) at distance "
             f"{-s.eer.threshold:.3f}"]
    for far, point in s.tar_at_far.items():
        flag = "" if far >= s.resolvable_far else f" (not resolvable: {1 / s.resolvable_far:.0f} impostor pairs)"
        lines.append(f"{name}: TAR {point.tar:.3f} at FAR <= {far:g}{flag}, distance < {-point.threshold:.3f}, "
                     f"FAR reached {point.far:.3f}")
    lines.append(f"{name}: at match_threshold {-s.at_threshold.threshold:.2f}: TAR {s.at_threshold.tar:.3f}, "
                 f"FAR {s.at_threshold.far:.3f}")
    return lines


def evaluate_faces(folder: Path, match_threshold: float | None = None,
                   ours: Describer | None = None, baseline: DlibPipeline | None = None) -> EvalReport:
    from appliance.config import FacesConfig

    threshold = FacesConfig().match_threshold if match_threshold is None else match_threshold
    pairs = read_face_pairs(folder)
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    dlib_pipeline = baseline or DlibPipeline()
    our_run, chips = _describe_all(folder, names, ours or OursPipeline())
    dlib_run, _ = _describe_all(folder, names, dlib_pipeline)
    same = np.array([p.same for p in pairs])
    our_scores, dlib_scores = pair_scores(pairs, our_run.descriptors), pair_scores(pairs, dlib_run.descriptors)
    our_summary = summarise(our_scores, same, threshold)
    dlib_summary = summarise(dlib_scores, same, threshold)

    differences = [float(np.abs(d - dlib_pipeline.describe_chip(chips[n])).max())
                   for n, d in our_run.descriptors.items() if d is not None and n in chips]
    misreads = int(np.sum((our_scores >= -threshold) & ~same))  # impostor pairs accepted at the threshold
    dlib_misreads = int(np.sum((dlib_scores >= -threshold) & ~same))
    group = GroupResult(
        name="pairs", n=len(pairs), passed=int(np.sum((our_scores >= -threshold) == same)), misreads=misreads,
        ms_per_item=our_run.ms, baselines={"dlib": int(np.sum((dlib_scores >= -threshold) == same))},
        baseline_misreads={"dlib": dlib_misreads}, baseline_ms={"dlib": dlib_run.ms},
    )
    notes = [
        f"{len(pairs)} pairs ({int(same.sum())} genuine, {int((~same).sum())} impostor) over {len(names)} images; "
        "group cells count pairs decided right at the match threshold, misreads = impostor pairs accepted; "
        "ms = per image (detect + align + describe)",
        *_describe_point("ours", our_summary),
        *_describe_point("dlib", dlib_summary),
        f"no face found: ours {len(our_run.misses)} image(s), dlib {len(dlib_run.misses)} image(s) "
        "(their pairs count as rejects)",
    ]
    if differences:
        notes.append(f"ONNX vs dlib descriptor on the same {len(differences)} real chips: max |difference| "
                     f"{max(differences):.2e} (tolerance 1e-4)")
    return EvalReport(
        task="faces", metric="ROC AUC of 1:1 verification (minus descriptor distance as the score)",
        score=our_summary.auc, n=len(pairs), misreads=misreads, ms_per_item=our_run.ms,
        baselines={"dlib": dlib_summary.auc}, groups=[group], notes=notes,
    )
