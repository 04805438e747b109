"""``appliance eval xray`` on a held-out simulated set: image AUROC / AP per anomaly type.

The set is rendered from a seed the model was not fitted on (``HELD_OUT_SEED``): for every goods
class, clean scans and scans with each anomaly type, calibrated with the virtual scanner's own
dark/air frames like a real scan. Scores: the model's (``AnomalyScorer``: the highest heat inside
the containers found) and, in the same run, an intensity baseline (the 99.9th percentile of
attenuation inside the same containers: "something very dense is there"). Reported: AUROC and
average precision of each anomaly type against the clean scans, over all types, and the alarm
rate per 100 clean scans at the model's threshold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from appliance.eval.report import GroupResult
from appliance.eval.verification import roc_auc
from appliance.xray.regions import cargo_interior

HELD_OUT_SEED = 9090


def average_precision(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the precision-recall curve (step-wise, as scikit-learn's average_precision_score)."""
    scores = np.concatenate([positive, negative])
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    order = np.argsort(-scores, kind="mergesort")
    labels = labels[order]
    tp = np.cumsum(labels)
    precision = tp / np.arange(1, len(labels) + 1)
    return float((precision * labels).sum() / max(labels.sum(), 1))


def intensity_score(high: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> float:
    values = [high[y:y + h, x:x + w].ravel() for x, y, w, h in boxes]
    inside = np.concatenate(values) if values else high.ravel()
    return float(np.percentile(inside, 99.9)) if inside.size else 0.0


@dataclass
class SimXrayResult:
    auroc: dict[str, float]
    ap: dict[str, float]
    baseline_auroc: dict[str, float]
    baseline_ap: dict[str, float]
    alarms_per_100_clean: float
    threshold: float
    n: dict[str, int]
    ms_per_scan: float
    groups: list[GroupResult] = field(default_factory=list)


def evaluate_sim_xray(scorer: object, per_class: int = 4, seed: int = HELD_OUT_SEED,
                      scale: float | None = None) -> SimXrayResult:
    """Render ``per_class`` clean scans and ``per_class`` scans of each anomaly type per goods class."""
    from appliance.sim.xray import ANOMALY_KINDS, GOODS_CLASSES, random_spec
    from appliance.training.xray_anomaly import TRAIN_SCALE, SimScanner
    from appliance.xray.anomaly import AnomalyScorer

    assert isinstance(scorer, AnomalyScorer)
    sim = SimScanner(scale or TRAIN_SCALE)
    rng = np.random.default_rng([seed, 77])
    ours: dict[str, list[float]] = {"clean": [], **{k: [] for k in ANOMALY_KINDS}}
    base: dict[str, list[float]] = {k: [] for k in ours}
    ms = 0.0
    k = 0
    for goods in GOODS_CLASSES:
        for kind in ("clean", *ANOMALY_KINDS):
            for _ in range(per_class):
                k += 1
                spec = random_spec(rng, goods=goods, anomaly=None if kind == "clean" else kind)
                s = sim.scan(spec, seed * 10_000 + k)
                started = time.perf_counter()
                result = scorer.score(s.high, s.low, goods)
                ms += 1000 * (time.perf_counter() - started)
                ours[kind].append(result.score)
                base[kind].append(intensity_score(s.high, [cargo_interior(b) for b in result.containers]))
    clean, clean_base = np.array(ours["clean"]), np.array(base["clean"])
    auroc, ap, b_auroc, b_ap = {}, {}, {}, {}
    groups = []
    for kind in ANOMALY_KINDS:
        pos, bpos = np.array(ours[kind]), np.array(base[kind])
        auroc[kind], ap[kind] = roc_auc(pos, clean), average_precision(pos, clean)
        b_auroc[kind], b_ap[kind] = roc_auc(bpos, clean_base), average_precision(bpos, clean_base)
        found = int((pos >= scorer.threshold).sum())
        groups.append(GroupResult(kind, len(pos), found, 0, 0.0,
                                  baselines={"intensity AUROC x n": round(b_auroc[kind] * len(pos))}))
    every = np.concatenate([np.array(ours[kind]) for kind in ANOMALY_KINDS])
    every_base = np.concatenate([np.array(base[kind]) for kind in ANOMALY_KINDS])
    auroc["all"], ap["all"] = roc_auc(every, clean), average_precision(every, clean)
    b_auroc["all"], b_ap["all"] = roc_auc(every_base, clean_base), average_precision(every_base, clean_base)
    alarms = float(100 * (clean >= scorer.threshold).mean())
    return SimXrayResult(auroc, ap, b_auroc, b_ap, alarms, scorer.threshold, {k: len(v) for k, v in ours.items()},
                         ms / max(k, 1), groups)
