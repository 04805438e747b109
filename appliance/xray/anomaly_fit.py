"""Fitting the X-ray anomaly model's normal model from normal scans (no gradient training).

Features come from the same ONNX feature graph the serving model contains
(``anomaly_graph.build_feature_model``), so fitting and serving cannot drift apart. Per goods
class: the features' median and spread (standardisation), then either a memory bank (``knn``:
a greedy k-centre coreset of the class's normal cells, PatchCore's selection) or one Gaussian
(``gaussian``: mean and a whitening matrix from a shrunk covariance, PaDiM without positions).
Finally each class's distances are scaled so that 1.0 is its 99th percentile on held-out normal
cells, giving every class the same heat-map scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from appliance.xray.anomaly_graph import FEATURES, STRIDE, Head, build_feature_model, build_model

BANK_SIZE = 512  # memory-bank vectors per class (p95 latency grows with it: docs/XRAY.md)
MAX_CELLS = 40_000  # cells per class kept for fitting (random subsample)


@dataclass
class NormalModel:
    head: Head
    labels: tuple[str, ...]
    mu: np.ndarray  # (C, F)
    sigma: np.ndarray  # (C, F)
    banks: np.ndarray  # knn (C, M, F); gaussian (C, F+1, F)
    scale: np.ndarray  # (C,)

    def onnx_bytes(self) -> bytes:
        return build_model(self.head, self.mu, self.sigma, self.banks, self.scale).SerializeToString()


class FeatureExtractor:
    """Attenuation images -> feature cells, through ONNX Runtime (one thread)."""

    def __init__(self) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(build_feature_model().SerializeToString(), options,
                                            providers=["CPUExecutionProvider"])

    def __call__(self, high: np.ndarray, low: np.ndarray | None) -> np.ndarray:
        """(F, h, w) features of one scan."""
        h = np.ascontiguousarray(high, np.float32)[None, None]
        lo = h if low is None else np.ascontiguousarray(low, np.float32)[None, None]
        return np.asarray(self.session.run(None, {"high": h, "low": lo})[0][0])


def region_cells(features: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The (N, F) cells whose centres lie inside ``box`` (x, y, w, h in scan pixels)."""
    x, y, w, h = box
    _, rows, cols = features.shape
    r0, r1 = max(0, y // STRIDE), min(rows, (y + h) // STRIDE)
    c0, c1 = max(0, x // STRIDE), min(cols, (x + w) // STRIDE)
    block = features[:, r0:r1, c0:c1]
    return block.reshape(features.shape[0], -1).T.copy()


def _coreset(z: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-centre: each new centre is the point farthest from those chosen (PatchCore)."""
    if len(z) <= m:
        return z.copy()
    chosen = [int(rng.integers(len(z)))]
    nearest = np.sum((z - z[chosen[0]]) ** 2, axis=1)
    for _ in range(m - 1):
        i = int(np.argmax(nearest))
        chosen.append(i)
        nearest = np.minimum(nearest, np.sum((z - z[i]) ** 2, axis=1))
    return z[chosen].copy()


def _whitening(z: np.ndarray, shrink: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    mean = z.mean(axis=0)
    cov = np.cov(z, rowvar=False)
    f = cov.shape[0]
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / f * np.eye(f)
    # (x - mean) @ W has identity covariance: W = L^-T where inv(cov) = L L^T.
    white = np.linalg.cholesky(np.linalg.inv(cov))
    return mean, white


def fit_normal_model(head: Head, labels: tuple[str, ...], fit_cells: dict[str, list[np.ndarray]],
                     holdout_cells: dict[str, list[np.ndarray]], bank_size: int = BANK_SIZE, seed: int = 0
                     ) -> NormalModel:
    """``fit_cells`` / ``holdout_cells``: per label, lists of (N, F) normal cells (different scans)."""
    rng = np.random.default_rng(seed)
    f = len(FEATURES)
    c = len(labels)
    mu = np.zeros((c, f), np.float32)
    sigma = np.ones((c, f), np.float32)
    banks = np.zeros((c, bank_size, f) if head == "knn" else (c, f + 1, f), np.float32)
    scale = np.ones(c, np.float32)
    for i, label in enumerate(labels):
        if not fit_cells.get(label):
            raise ValueError(f"no normal scans of goods class {label!r} to fit")
        cells = np.concatenate(fit_cells[label]).astype(np.float64)
        if len(cells) > MAX_CELLS:
            cells = cells[rng.choice(len(cells), MAX_CELLS, replace=False)]
        mu[i] = np.median(cells, axis=0)
        q75, q25 = np.percentile(cells, [75, 25], axis=0)
        sigma[i] = np.maximum((q75 - q25) / 1.349, 1e-3)
        z = (cells - mu[i]) / sigma[i]
        if head == "knn":
            bank = _coreset(z, bank_size, rng)
            if len(bank) < bank_size:  # pad by repeating: the min distance is unchanged
                bank = np.concatenate([bank, bank[rng.integers(len(bank), size=bank_size - len(bank))]])
            banks[i] = bank
        else:
            mean, white = _whitening(z)
            banks[i, 0] = mean
            banks[i, 1:] = white
        held = np.concatenate(holdout_cells.get(label) or fit_cells[label]).astype(np.float64)
        dist = _distances(head, (held - mu[i]) / sigma[i], banks[i])
        scale[i] = max(float(np.percentile(dist, 99)), 1e-3)
    return NormalModel(head, labels, mu, sigma, banks, scale)


def _distances(head: Head, z: np.ndarray, params: np.ndarray) -> np.ndarray:
    if head == "knn":
        bank = params.astype(np.float64)
        d2 = (z**2).sum(1)[:, None] - 2 * z @ bank.T + (bank**2).sum(1)[None, :]
        return np.asarray(np.sqrt(np.maximum(d2.min(axis=1), 0.0)))
    w = (z - params[0]) @ params[1:]
    return np.asarray(np.sqrt((w**2).sum(1)))
