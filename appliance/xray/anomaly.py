"""Scoring a calibrated scan with the X-ray anomaly model (task ``xray-anomaly`` in the model store).

The model (``anomaly_graph.build_model``) maps attenuation at both energies plus the declared goods
class to a heat map, one cell per ``STRIDE`` px, where 1.0 is the class's normal 99th percentile.
Here: the attenuation is resized by the manifest's ``preprocess.scale`` (the pixel pitch the model
was fitted at), the containers are found (``regions.find_containers``; the cab and chassis are not
cargo), and the scan's score is the highest heat inside them. Findings are the connected cells
above the alarm threshold, as boxes in scan pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from appliance.errors import ModelError
from appliance.inference.session import OnnxModel
from appliance.xray.anomaly_graph import STRIDE
from appliance.xray.regions import Box, cargo_interior, find_containers

TOP_K = 3


@dataclass(frozen=True)
class Finding:
    box: Box  # scan pixels
    score: float  # the highest heat in it


@dataclass
class AnomalyResult:
    score: float  # highest heat inside the containers (1.0 = the class's normal 99th percentile)
    threshold: float  # the model's alarm threshold
    alarm: bool
    goods: str
    containers: list[Box]
    findings: list[Finding]
    heatmap: np.ndarray  # float32 cells (rows / STRIDE, cols / STRIDE) at the model's scale
    cell_px: float  # scan pixels per heat-map cell
    timings_ms: dict[str, float] = field(default_factory=dict)


class AnomalyScorer:
    """``run(feeds) -> [heatmap]`` (an ONNX session), the goods labels, the model's pixel scale and threshold."""

    def __init__(self, run: Callable[[dict[str, np.ndarray]], list[np.ndarray]], labels: tuple[str, ...],
                 scale: float = 1.0, threshold: float = 1.5):
        self.run = run
        self.labels = labels
        self.scale = scale
        self.threshold = threshold

    @classmethod
    def from_model(cls, model: OnnxModel) -> AnomalyScorer:
        manifest = model.manifest
        if manifest.task != "xray-anomaly":
            raise ModelError(f"{manifest.name}: a {manifest.task} model cannot score X-ray anomalies")
        return cls(model.run, tuple(manifest.labels), float(manifest.preprocess.get("scale", 1.0)),
                   float(manifest.thresholds.get("alarm", 1.5)))

    def goods_index(self, goods: str | None) -> int:
        if goods is not None and goods in self.labels:
            return self.labels.index(goods)
        # Undeclared or unknown goods: the mixed class, where the model has one.
        return self.labels.index("parcels") if "parcels" in self.labels else 0

    def score(self, high: np.ndarray, low: np.ndarray | None, goods: str | None,
              containers: list[Box] | None = None, interior: bool = True) -> AnomalyResult:
        """Score attenuation images (scan pixels); ``containers`` found here when not given.
        ``interior=False``: score the given boxes whole (e.g. an image patch that is all cargo)."""
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        boxes = find_containers(high) if containers is None else containers
        interiors = [cargo_interior(b) for b in boxes] if interior else list(boxes)
        times["containers"] = 1000 * (time.perf_counter() - t0)
        t0 = time.perf_counter()
        h, lo = _resize(high, self.scale), _resize(high if low is None else low, self.scale)
        index = self.goods_index(goods)
        heat = self.run({"high": h[None, None], "low": lo[None, None],
                               "goods": np.array([index], np.int64)})[0][0, 0]
        times["model"] = 1000 * (time.perf_counter() - t0)
        cell_px = STRIDE / self.scale
        inside = np.zeros(heat.shape, bool)
        for x, y, w, hh in interiors:
            r0, r1 = int(y / cell_px), int(np.ceil((y + hh) / cell_px))
            c0, c1 = int(x / cell_px), int(np.ceil((x + w) / cell_px))
            inside[r0:r1, c0:c1] = True
        # The TOP_K-th highest cell: one odd cell is noise, an anomaly covers several.
        values = np.sort(heat[inside])[::-1] if inside.any() else np.zeros(1, np.float32)
        score = float(values[min(TOP_K, len(values)) - 1])
        findings = _findings(heat, inside, self.threshold, cell_px)
        return AnomalyResult(score, self.threshold, score >= self.threshold, self.labels[index], boxes, findings,
                             np.asarray(heat, np.float32), cell_px, times)


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    image = np.ascontiguousarray(image, np.float32)
    if scale == 1.0:
        return image
    rows, cols = image.shape
    size = (max(STRIDE, round(cols * scale)), max(STRIDE, round(rows * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.float32)


def _findings(heat: np.ndarray, inside: np.ndarray, threshold: float, cell_px: float) -> list[Finding]:
    hot = ((heat >= threshold) & inside).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(hot, connectivity=8)
    out = []
    for i in range(1, n):
        x, y, w, h = (int(v) for v in stats[i, :4])
        peak = float(heat[labels == i].max())
        out.append(Finding((round(x * cell_px), round(y * cell_px), round(w * cell_px), round(h * cell_px)), peak))
    return sorted(out, key=lambda f: -f.score)


def render_overlay(high: np.ndarray, result: AnomalyResult, max_side: int = 2000) -> np.ndarray:
    """The scan in grey (dark = dense) with the heat map over it and the findings boxed, BGR uint8."""
    grey = np.clip(255 * np.exp(-np.asarray(high, np.float32) / 3.0), 0, 255).astype(np.uint8)
    rows, cols = grey.shape
    k = min(1.0, max_side / max(rows, cols))
    size = (max(1, round(cols * k)), max(1, round(rows * k)))
    base = cv2.cvtColor(cv2.resize(grey, size, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    heat = cv2.resize(result.heatmap, size, interpolation=cv2.INTER_LINEAR)
    level = np.clip((heat - 1.0) / max(result.threshold - 1.0, 1e-3), 0, 1.5) / 1.5
    colour = cv2.applyColorMap((255 * level).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = (0.6 * level)[..., None]
    out = (base * (1 - alpha) + colour * alpha).astype(np.uint8)
    for x, y, w, h in result.containers:
        cv2.rectangle(out, (round(x * k), round(y * k)), (round((x + w) * k), round((y + h) * k)), (200, 200, 200), 1)
    for f in result.findings:
        x, y, w, h = f.box
        cv2.rectangle(out, (round(x * k), round(y * k)), (round((x + w) * k), round((y + h) * k)), (0, 0, 255), 2)
    return out
