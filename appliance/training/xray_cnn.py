"""``appliance train xray-anomaly --head cnn``: a small convolutional anomaly detector, trained on normal
scans with generic synthetic anomalies (DRAEM-style), exported to ONNX.

Why (docs/XRAY.md has the table): fixed patch statistics with a per-class memory bank (``knn``) or
Gaussian cannot tell a steel block in a pallet of fruit from the container's own corner castings, or a
pistol from carton edges; a learnt local detector can. It never sees the simulator's threat projection:
it is shown normal patches of every goods class, two thirds of them spoilt by ``xray_synth`` (random
objects added by Beer-Lambert, regions of another class's load transplanted, plates across the patch),
and learns to mark the spoilt cells. The goods class enters as a learnt per-class scale and shift of the
features (FiLM), so a region of another class's goods is abnormal for this class only.

The exported graph keeps the model-store contract of the ``xray-anomaly`` task (``anomaly_graph``):
inputs ``high``, ``low`` [1, 1, H, W] attenuation and ``goods`` [1]; output ``heatmap`` [1, 1, H/8,
W/8], one cell per ``STRIDE`` px, standardised per class on held-out normal scans so that 1.0 is the
class's normal 99th percentile. Torch is needed to train (the ``train`` extra), not to serve.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.training.xray_synth import add_object, partition, transplant
from appliance.xray.anomaly_graph import STRIDE

log = logging.getLogger(__name__)

PATCH = 128  # training patch side, px at the model's scale
OBJECT_SHARE, TRANSPLANT_SHARE, PARTITION_SHARE = 0.35, 0.2, 0.12  # of the training patches (the rest stay normal)
CELL_LABEL_SHARE = 0.15  # a cell is anomalous when this share of its pixels was perturbed
POS_WEIGHT = 3.0
OPSET = 17


@dataclass
class NormalScan:
    goods: str
    high: np.ndarray  # float16 attenuation at the model's scale
    low: np.ndarray
    boxes: list[tuple[int, int, int, int]]  # cargo interiors found by the appliance's container finder


@dataclass
class CnnSettings:
    steps: int = 12000
    batch: int = 32
    lr: float = 3e-3
    threads: int = 2
    seed: int = 1


def render_normal_scans(scans_per_class: int, seed: int, scale: float) -> list[NormalScan]:
    """Normal simulated scans of every goods class, calibrated as a real scan is, with their cargo interiors."""
    from appliance.sim.xray import GOODS_CLASSES, random_spec
    from appliance.training.xray_anomaly import SimScanner
    from appliance.xray.regions import cargo_interior, find_containers

    sim = SimScanner(scale)
    rng = np.random.default_rng([seed, 31])
    out: list[NormalScan] = []
    k = 0
    for _ in range(scans_per_class):
        for goods in GOODS_CLASSES:
            k += 1
            s = sim.scan(random_spec(rng, goods=goods), seed * 100_000 + k)
            boxes = [cargo_interior(b) for b in find_containers(s.high)]
            if boxes:
                out.append(NormalScan(goods, s.high.astype(np.float16), s.low.astype(np.float16), boxes))
    return out


class PatchSampler:
    """Training batches: patches over the cargo interiors (edges included), some perturbed, with cell labels."""

    def __init__(self, scans: list[NormalScan], labels: tuple[str, ...], rng: np.random.Generator):
        self.labels = labels
        self.by_class = {g: [s for s in scans if s.goods == g] for g in labels}
        missing = [g for g, v in self.by_class.items() if not v]
        if missing:
            raise ValueError(f"no normal scans with a container found for: {', '.join(missing)}")
        self.rng = rng

    def _crop(self, scan: NormalScan) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        x, y, w, h = scan.boxes[int(rng.integers(len(scan.boxes)))]
        rows, cols = scan.high.shape
        x0 = int(np.clip(rng.integers(x - PATCH // 2, x + w - PATCH // 2 + 1), 0, max(0, cols - PATCH)))
        y0 = int(np.clip(rng.integers(y - PATCH // 2, y + h - PATCH // 2 + 1), 0, max(0, rows - PATCH)))
        window = (slice(y0, y0 + PATCH), slice(x0, x0 + PATCH))
        return scan.high[window].astype(np.float32), scan.low[window].astype(np.float32)

    def _scan(self, goods: str) -> NormalScan:
        options = self.by_class[goods]
        return options[int(self.rng.integers(len(options)))]

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x [B, 2, P, P], goods [B], cell labels [B, 1, P/STRIDE, P/STRIDE])."""
        rng, n = self.rng, PATCH // STRIDE
        x = np.zeros((size, 2, PATCH, PATCH), np.float32)
        y = np.zeros((size, 1, n, n), np.float32)
        goods = np.zeros(size, np.int64)
        for i in range(size):
            g = int(rng.integers(len(self.labels)))
            high, low = self._crop(self._scan(self.labels[g]))
            mask = np.zeros((PATCH, PATCH), np.float32)
            roll = rng.random()
            if roll < OBJECT_SHARE:
                high, low, mask = add_object(high, low, rng)
            elif roll < OBJECT_SHARE + TRANSPLANT_SHARE:
                other = (g + 1 + int(rng.integers(len(self.labels) - 1))) % len(self.labels)
                src_high, src_low = self._crop(self._scan(self.labels[other]))
                high, low, mask = transplant(high, low, src_high, src_low, rng)
            elif roll < OBJECT_SHARE + TRANSPLANT_SHARE + PARTITION_SHARE:
                src_high, src_low = self._crop(self._scan(self.labels[int(rng.integers(len(self.labels)))]))
                high, low, mask = partition(high, low, src_high, src_low, rng)
            x[i, 0], x[i, 1], goods[i] = high, low, g
            y[i, 0] = mask.reshape(n, STRIDE, n, STRIDE).mean(axis=(1, 3)) > CELL_LABEL_SHARE
        return x, goods, y


def build_net(classes: int) -> Any:
    """The detector: a strided stem to 1/8, a per-class FiLM, dilated context, one logit per cell."""
    import torch
    from torch import nn

    def cbr(i: int, o: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(i, o, 3, stride, dilation, dilation=dilation, bias=False), nn.BatchNorm2d(o),
                             nn.ReLU(inplace=True))

    class AnomalyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(cbr(3, 16, 2), cbr(16, 32, 2), cbr(32, 48), cbr(48, 64, 2))
            self.film = nn.Embedding(classes, 128)
            nn.init.zeros_(self.film.weight)
            self.context = nn.Sequential(cbr(64, 64, dilation=2), cbr(64, 64, dilation=4), cbr(64, 64, dilation=8),
                                         cbr(64, 64))
            self.head = nn.Conv2d(64, 1, 1)

        def forward(self, high: torch.Tensor, low: torch.Tensor, goods: torch.Tensor) -> torch.Tensor:
            # attenuation, the dual-energy difference (rises with Z) and a compressed attenuation
            x = torch.cat([high / 4, (low - high) * 2, torch.sqrt(torch.clamp(high, 0, 8)) / 2], 1)
            x = self.stem(x)
            film = self.film(goods)[:, :, None, None]
            x = x * (1 + film[:, :64]) + film[:, 64:]
            return self.head(self.context(x))

    return AnomalyNet()


def train_net(scans: list[NormalScan], labels: tuple[str, ...], settings: CnnSettings) -> Any:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    sampler = PatchSampler(scans, labels, np.random.default_rng([settings.seed, 7]))
    net = build_net(len(labels))
    opt = torch.optim.AdamW(net.parameters(), settings.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.steps, pct_start=0.1)
    pos_weight = torch.tensor(POS_WEIGHT)
    started, running = time.perf_counter(), 0.0
    net.train()
    for step in range(settings.steps):
        x, goods, y = (torch.from_numpy(a) for a in sampler.batch(settings.batch))
        loss = F.binary_cross_entropy_with_logits(net(x[:, :1], x[:, 1:], goods), y, pos_weight=pos_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if step == 0 else 0.98 * running + 0.02 * loss.item()
        if step % 250 == 0 or step == settings.steps - 1:
            log.info("xray cnn step %d/%d loss %.4f (%.0f s)", step + 1, settings.steps, running,
                     time.perf_counter() - started)
    net.eval()
    return net


def cell_logits(net: Any, scan: NormalScan, goods_index: int) -> np.ndarray:
    """The logits of the cells inside the scan's cargo interiors."""
    import torch

    with torch.no_grad():
        high = torch.from_numpy(scan.high.astype(np.float32))[None, None]
        low = torch.from_numpy(scan.low.astype(np.float32))[None, None]
        logit = net(high, low, torch.tensor([goods_index]))[0, 0].numpy()
    inside = np.zeros(logit.shape, bool)
    for x, y, w, h in scan.boxes:
        inside[y // STRIDE:(y + h) // STRIDE, x // STRIDE:(x + w) // STRIDE] = True
    return np.asarray(logit[inside])


def standardisation(net: Any, scans: list[NormalScan], labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per class: the 99th percentile of held-out normal cell logits (heat 1.0) and their spread (q99 - q50)."""
    shift, spread = np.zeros(len(labels), np.float32), np.ones(len(labels), np.float32)
    for i, g in enumerate(labels):
        values = np.concatenate([cell_logits(net, s, i) for s in scans if s.goods == g] or [np.zeros(1)])
        q50, q99 = np.percentile(values, [50, 99])
        shift[i], spread[i] = q99, max(float(q99 - q50), 0.5)
    return shift, spread


def export_onnx(net: Any, shift: np.ndarray, spread: np.ndarray) -> bytes:
    """The serving graph: high, low, goods -> heatmap = (logit - shift[goods]) / spread[goods] + 1."""
    import torch
    from torch import nn

    class Serving(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("shift", torch.from_numpy(shift.astype(np.float32)))
            self.register_buffer("spread", torch.from_numpy(spread.astype(np.float32)))

        def forward(self, high: torch.Tensor, low: torch.Tensor, goods: torch.Tensor) -> torch.Tensor:
            logit = self.net(high, low, goods)
            return (logit - self.shift[goods][:, None, None, None]) / self.spread[goods][:, None, None, None] + 1

    serving = Serving().eval()
    example = (torch.zeros(1, 1, 96, 160), torch.zeros(1, 1, 96, 160), torch.zeros(1, dtype=torch.int64))
    buffer = io.BytesIO()
    axes = {"high": {2: "H", 3: "W"}, "low": {2: "H", 3: "W"}, "heatmap": {2: "h", 3: "w"}}
    torch.onnx.export(serving, example, buffer, input_names=["high", "low", "goods"], output_names=["heatmap"],
                      dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def onnx_scorer(blob: bytes, labels: tuple[str, ...], scale: float, threshold: float) -> Any:
    """An AnomalyScorer on in-memory ONNX bytes (no package yet), one thread like a lane."""
    import onnxruntime as ort

    from appliance.xray.anomaly import AnomalyScorer

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    return AnomalyScorer(lambda feeds: list(session.run(None, feeds)), labels, scale, threshold)


def fit_cnn_from_simulation(scans_per_class: int, seed: int, settings: CnnSettings, scale: float,
                            alarms_per_100: float = 2.0) -> tuple[bytes, tuple[str, ...], float, dict[str, Any]]:
    """(ONNX bytes, labels, alarm threshold, report): train on ``scans_per_class`` normal scans per class,
    standardise the heat on a third as many held-out ones, set the threshold on as many again."""
    from appliance.sim.xray import GOODS_CLASSES, random_spec
    from appliance.training.xray_anomaly import SimScanner

    started = time.perf_counter()
    labels = tuple(GOODS_CLASSES)
    scans = render_normal_scans(scans_per_class, seed, scale)
    log.info("xray cnn: %d normal scans rendered (%.0f s)", len(scans), time.perf_counter() - started)
    net = train_net(scans, labels, settings)
    held_n = max(2, scans_per_class // 3)
    held = render_normal_scans(held_n, seed + 1, scale)
    shift, spread = standardisation(net, held, labels)
    blob = export_onnx(net, shift, spread)
    # The alarm threshold: clean validation scans scored exactly as the appliance scores them.
    scorer = onnx_scorer(blob, labels, 1.0, float("inf"))
    sim = SimScanner(scale)
    rng = np.random.default_rng([seed, 405])
    clean = []
    k = 0
    for goods in labels:
        for _ in range(held_n):
            k += 1
            s = sim.scan(random_spec(rng, goods=goods), (seed + 2) * 100_000 + k)
            clean.append(scorer.score(s.high, s.low, goods).score)
    threshold = float(np.percentile(clean, 100 - alarms_per_100)) if clean else 1.5
    report = {"fit_scans": len(scans), "standardise_scans": len(held), "threshold_scans": len(clean),
              "steps": settings.steps, "batch": settings.batch, "patch": PATCH,
              "seconds": round(time.perf_counter() - started, 1)}
    return blob, labels, max(threshold, 1.0), report
