"""``appliance eval xray`` on real images (the ../shared/eval/xray layout).

* ``baggage_patches/labels.csv`` (file, label, is_threat): GDXray baggage patches, threats (gun,
  razor blade, shuriken) and benign objects. Each patch gets an anomaly score; threat vs benign
  ROC AUC is the task's ``score``. These are baggage, not cargo, and 8-bit viewer exports with no
  dark/air frames: the model sees them through ``attenuation_from_image``, as the "parcels" class.
* ``cargo_scans/labels.csv`` (file, cls, cx, cy, w, h, YOLO-style, one row per container): where
  the containers are, found by ``regions.find_containers``; a container counts as found at IoU
  >= 0.5 (greedy one-to-one matching).

Baselines in the same run, intensity statistics only: the share of dense pixels (attenuation > 2)
for the patches, and the bounding box of the largest connected region of material for the scans.
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from appliance.eval.labels import LabelError
from appliance.eval.report import GroupResult
from appliance.eval.verification import roc_auc
from appliance.xray.regions import Box, attenuation_from_image, find_containers, largest_dark_box, match_boxes

PatchScorer = Callable[[np.ndarray], float]  # attenuation image -> anomaly score


def dense_share(att: np.ndarray) -> float:
    """Baseline: the share of pixels attenuating more than 2 (dense metal)."""
    return float((att > 2.0).mean())


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise LabelError(f"{path}: not a readable image")
    return image


def _rows(path: Path, required: set[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise LabelError(f"{path}: not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = required - set(reader.fieldnames or ())
        if missing:
            raise LabelError(f"{path}: missing columns {sorted(missing)}")
        return list(reader)


def evaluate_baggage(folder: Path, ours: PatchScorer) -> tuple[GroupResult, float, float, list[str]]:
    """(group, our AUROC, baseline AUROC, notes) on a baggage-patches folder."""
    rows = _rows(folder / "labels.csv", {"file", "label", "is_threat"})
    threat: list[tuple[float, float]] = []
    benign: list[tuple[float, float]] = []
    ms = 0.0
    for row_no, row in enumerate(rows, start=2):
        if row["is_threat"] not in ("0", "1"):
            raise LabelError(f"{folder / 'labels.csv'}:{row_no}: is_threat must be 0 or 1")
        att = attenuation_from_image(_read(folder / row["file"]))
        started = time.perf_counter()
        score = ours(att)
        ms += 1000 * (time.perf_counter() - started)
        (threat if row["is_threat"] == "1" else benign).append((score, dense_share(att)))
    if not threat or not benign:
        raise LabelError(f"{folder}: needs both threat and benign patches")
    ours_auc = roc_auc(np.array([t[0] for t in threat]), np.array([b[0] for b in benign]))
    base_auc = roc_auc(np.array([t[1] for t in threat]), np.array([b[1] for b in benign]))
    n = len(rows)
    group = GroupResult("baggage_patches (AUROC x n)", n, round(ours_auc * n), 0, ms / n,
                        baselines={"intensity": round(base_auc * n)})
    notes = [f"baggage patches: {len(threat)} threat, {len(benign)} benign; threat-vs-benign ROC AUC ours "
             f"{ours_auc:.3f}, intensity baseline (dense-pixel share) {base_auc:.3f}"]
    return group, ours_auc, base_auc, notes


def evaluate_cargo_scans(folder: Path) -> tuple[GroupResult, list[str]]:
    rows = _rows(folder / "labels.csv", {"file", "cx", "cy", "w", "h"})
    truth: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        truth[row["file"]].append(row)
    found = base_found = false = base_false = 0
    ious: list[float] = []
    ms = 0.0
    for name, boxes in truth.items():
        image = _read(folder / name)
        height, width = image.shape[:2]
        expected: list[Box] = []
        for b in boxes:
            cx, cy, w, h = (float(b[k]) for k in ("cx", "cy", "w", "h"))
            expected.append((round((cx - w / 2) * width), round((cy - h / 2) * height), round(w * width),
                             round(h * height)))
        att = attenuation_from_image(image)
        started = time.perf_counter()
        ours = find_containers(att)
        ms += 1000 * (time.perf_counter() - started)
        tp, fp, best = match_boxes(ours, expected)
        btp, bfp, _ = match_boxes(largest_dark_box(att), expected)
        found, false, base_found, base_false = found + tp, false + fp, base_found + btp, base_false + bfp
        ious += best
    n = sum(len(b) for b in truth.values())
    group = GroupResult("cargo_scans (containers found)", n, found, false, ms / max(len(truth), 1),
                        baselines={"intensity": base_found}, baseline_misreads={"intensity": base_false})
    notes = [f"cargo scans: {n} containers in {len(truth)} scans; found at IoU >= 0.5: ours {found} "
             f"({false} false boxes, mean best IoU {np.mean(ious):.2f}), largest-dark-region baseline {base_found} "
             f"({base_false} false boxes). The finder's rules were written looking at these scans: an optimistic "
             "figure, not a held-out one."]
    return group, notes


def patch_scorer(scorer: object) -> PatchScorer:
    """Score a whole baggage patch with the anomaly model, as the mixed "parcels" class."""
    from appliance.xray.anomaly import AnomalyScorer

    assert isinstance(scorer, AnomalyScorer)

    def score(att: np.ndarray) -> float:
        # Viewer exports are at no known pixel pitch: taken as they are, the whole patch scored.
        rows, cols = att.shape
        return scorer.score(att, None, "parcels", containers=[(0, 0, cols, rows)], interior=False).score

    return score
