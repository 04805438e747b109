"""Verification metrics on genuine / impostor pair scores (higher score = more alike).

ROC AUC (the probability that a random genuine pair scores above a random impostor pair, ties
counting half), the true-accept rate at a false-accept rate, the equal error rate, and the rates
at a given threshold. With few impostor pairs a FAR such as 0.1 % cannot be resolved: the
functions then answer for the smallest FAR the data can show and say which (``achieved_far``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def roc_auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Mann-Whitney estimate of the area under the ROC curve."""
    g, i = np.asarray(genuine, float), np.asarray(impostor, float)
    if g.size == 0 or i.size == 0:
        raise ValueError("ROC AUC needs at least one genuine and one impostor pair")
    scores = np.concatenate([g, i])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), float)
    sorted_scores = scores[order]
    # Average ranks over ties.
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    rank_sum = ranks[: g.size].sum()
    return float((rank_sum - g.size * (g.size + 1) / 2) / (g.size * i.size))


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float  # accept when score >= threshold
    tar: float
    far: float


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[OperatingPoint, float]:
    """The best true-accept rate with a false-accept rate at most ``far``; also the FAR this data
    can resolve at best (1 / impostor pairs), so a caller can flag an unresolvable target."""
    g, i = np.sort(np.asarray(genuine, float)), np.sort(np.asarray(impostor, float))
    if g.size == 0 or i.size == 0:
        raise ValueError("TAR at FAR needs at least one genuine and one impostor pair")
    allowed = int(np.floor(far * i.size + 1e-9))  # impostors that may score at or above the threshold
    # Threshold just above the (allowed+1)-th highest impostor score.
    threshold = float(np.nextafter(i[-(allowed + 1)], np.inf)) if allowed < i.size else float(i[0])
    tar = float((g >= threshold).mean())
    achieved = float((i >= threshold).mean())
    return OperatingPoint(threshold, tar, achieved), 1.0 / i.size


def rates_at(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> OperatingPoint:
    g, i = np.asarray(genuine, float), np.asarray(impostor, float)
    return OperatingPoint(threshold, float((g >= threshold).mean()), float((i >= threshold).mean()))


def eer(genuine: np.ndarray, impostor: np.ndarray) -> OperatingPoint:
    """The operating point where the false-reject rate (1 - TAR) and the FAR are closest."""
    candidates = np.unique(np.concatenate([np.asarray(genuine, float), np.asarray(impostor, float)]))
    best: OperatingPoint | None = None
    for t in candidates:
        point = rates_at(genuine, impostor, float(t))
        if best is None or abs((1 - point.tar) - point.far) < abs((1 - best.tar) - best.far):
            best = point
    assert best is not None
    return best
