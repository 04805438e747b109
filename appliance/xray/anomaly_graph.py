"""The X-ray anomaly model as an ONNX graph: fixed patch features + a per-goods-class normal model.

Why this shape (docs/XRAY.md has the measurements): there is no pretrained backbone on the box
(nothing downloads) and no public cargo X-ray set to train one; the anomalies customs look for are
physical (dense, high-Z, out of pattern), and the calibrated attenuation already measures physics.
So the features are computed by fixed convolutions on the attenuation image, and only the
"normal" model is learnt from normal scans of each goods class, PatchCore- or PaDiM-style:

Inputs
    ``high``  float32 [1, 1, H, W]  attenuation -ln(I') at the high energy (0 = air)
    ``low``   float32 [1, 1, H, W]  attenuation at the low energy (single-energy scanners: ``high`` again)
    ``goods`` int64 [1]             the goods class index (``labels`` in the manifest)

Features (on a grid of one cell per ``STRIDE`` px, each from a ``DOWN`` x ``DOWN`` average first)
    local mean, local standard deviation, local maximum, contrast against a wider context, mean
    gradient magnitude, mean |Laplacian| (texture), the dual-energy ratio (low / high: rises with
    atomic number), and the ratio's contrast against its context. ``FEATURES`` names them.

Heads (``build_model``)
    ``knn``      distance to the nearest of the class's memory-bank vectors (PatchCore style,
                 coreset of the class's normal features),
    ``gaussian`` Mahalanobis distance to the class's mean under its covariance (PaDiM style,
                 one Gaussian per class, not per position: loads are not aligned between scans).

Outputs
    ``heatmap`` float32 [1, 1, H/STRIDE, W/STRIDE]  anomaly per cell (standardised distance, smoothed)
    ``features`` float32 [1, F, H/STRIDE, W/STRIDE] (the feature-only graph, used for fitting)

Every graph here is built with onnx.helper (no torch), byte-identical for the same parameters.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
DOWN = 4  # first an average over DOWN x DOWN px (noise, and cost)
STRIDE = 8  # one feature cell per STRIDE px of the scan (a 1,500 x 4,000 scan: 187 x 500 cells)
LOCAL = 5  # local window, in DOWN-px units (20 px)
CONTEXT = 17  # context window, in DOWN-px units (68 px)
EPS = 0.05
FEATURES = ("mean", "std", "max", "contrast", "gradient", "texture", "ratio", "ratio_contrast")
Head = Literal["knn", "gaussian"]


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], base: str | None = None, **attrs: Any) -> str:
        out = self.name(base or kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def box(self, x: str, k: int) -> str:
        """Mean over a k x k window, same size (edge pixels average over what lies inside)."""
        return self.op("AveragePool", [x], "box", kernel_shape=[k, k], strides=[1, 1], pads=[k // 2] * 4,
                       count_include_pad=0)

    def conv(self, x: str, kernel: np.ndarray) -> str:
        """Same-size convolution; the border is extended (edge padding), so an image's edge is no edge."""
        k = kernel.shape[0]
        p = k // 2
        padded = self.op("Pad", [x, self.const("pads", np.array([0, 0, p, p, 0, 0, p, p], np.int64))], "pad",
                         mode="edge")
        return self.op("Conv", [padded, self.const("k", kernel.reshape(1, 1, k, k).astype(np.float32))], "conv")


def _features(g: _Graph, high: str, low: str) -> str:
    """[1, F, H/STRIDE, W/STRIDE] feature map from the two attenuation inputs."""
    a = g.op("AveragePool", [high], "down", kernel_shape=[DOWN, DOWN], strides=[DOWN, DOWN])
    lo = g.op("AveragePool", [low], "down", kernel_shape=[DOWN, DOWN], strides=[DOWN, DOWN])
    eps = g.const("eps", np.array(EPS, np.float32))
    mean = g.box(a, LOCAL)
    sq = g.box(g.op("Mul", [a, a]), LOCAL)
    var = g.op("Relu", [g.op("Sub", [sq, g.op("Mul", [mean, mean])])])
    std = g.op("Sqrt", [g.op("Add", [var, g.const("tiny", np.array(1e-6, np.float32))])])
    peak = g.op("MaxPool", [a], "max", kernel_shape=[LOCAL, LOCAL], strides=[1, 1], pads=[LOCAL // 2] * 4)
    context = g.box(a, CONTEXT)
    contrast = g.op("Sub", [mean, context])
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32) / 8
    gx, gy = g.conv(a, sobel), g.conv(a, sobel.T.copy())
    gradient = g.box(g.op("Add", [g.op("Abs", [gx]), g.op("Abs", [gy])]), LOCAL)
    lap = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32) / 4
    texture = g.box(g.op("Abs", [g.conv(a, lap)]), LOCAL)
    low_mean = g.box(lo, LOCAL)
    ratio = g.op("Div", [g.op("Add", [low_mean, eps]), g.op("Add", [mean, eps])])
    low_context = g.box(lo, CONTEXT)
    ratio_context = g.op("Div", [g.op("Add", [low_context, eps]), g.op("Add", [context, eps])])
    ratio_contrast = g.op("Sub", [ratio, ratio_context])
    stack = g.op("Concat", [mean, std, peak, contrast, gradient, texture, ratio, ratio_contrast], "stack", axis=1)
    step = STRIDE // DOWN
    return g.op("MaxPool", [stack], "cells", kernel_shape=[step, step], strides=[step, step])


def _io(with_goods: bool) -> list[onnx.ValueInfoProto]:
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 1, "H", "W"]) for n in ("high", "low")]
    if with_goods:
        inputs.append(helper.make_tensor_value_info("goods", TensorProto.INT64, [1]))
    return inputs


def _model(g: _Graph, inputs: list[onnx.ValueInfoProto], output: str, out_name: str, channels: int | str,
           doc: str) -> onnx.ModelProto:
    g.nodes.append(helper.make_node("Identity", [output], [out_name], name=out_name))
    out = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [1, channels, "h", "w"])
    graph = helper.make_graph(g.nodes, "xray_anomaly", inputs, [out], g.inits, doc_string=doc)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8,
                              producer_name="gate-appliance xray anomaly", producer_version="1")
    onnx.checker.check_model(model, full_check=True)
    return model


def build_feature_model() -> onnx.ModelProto:
    """high, low -> features [1, F, h, w] (for fitting the normal model)."""
    g = _Graph()
    feats = _features(g, "high", "low")
    return _model(g, _io(False), feats, "features", len(FEATURES), "X-ray patch features (fitting only)")


def build_model(head: Head, mu: np.ndarray, sigma: np.ndarray, banks: np.ndarray, scale: np.ndarray) -> onnx.ModelProto:
    """The serving model. ``mu``/``sigma`` (F,): feature standardisation per goods class, shape (C, F);
    ``banks``: knn: (C, M, F) memory banks of standardised features; gaussian: (C, F+1, F): the mean
    (row 0) and the whitening matrix (rows 1..F) per class; ``scale`` (C,): divides the class's
    distances so that 1.0 is the class's normal 99th percentile (a common scale across classes)."""
    c, f = mu.shape
    if sigma.shape != (c, f) or scale.shape != (c,) or f != len(FEATURES):
        raise ValueError("build_model: mu/sigma must be (C, F), scale (C,), F = len(FEATURES)")
    g = _Graph()
    feats = _features(g, "high", "low")  # [1, F, h, w]
    shape = g.op("Shape", [feats])
    hw = g.op("Slice", [shape, g.const("s2", np.array([2], np.int64)), g.const("s4", np.array([4], np.int64))])
    flat = g.op("Reshape", [feats, g.const("flat", np.array([f, -1], np.int64))])
    cells = g.op("Transpose", [flat], "cells", perm=[1, 0])  # [N, F]
    goods = "goods"
    mu_c = g.op("Gather", [g.const("mu", mu.astype(np.float32)), goods], axis=0)  # [1, F]
    sd_c = g.op("Gather", [g.const("sigma", sigma.astype(np.float32)), goods], axis=0)
    z = g.op("Div", [g.op("Sub", [cells, mu_c]), sd_c])  # standardised [N, F]
    if head == "knn":
        if banks.ndim != 3 or banks.shape[0] != c or banks.shape[2] != f:
            raise ValueError("build_model: knn banks must be (C, M, F)")
        bank = g.op("Squeeze", [g.op("Gather", [g.const("banks", banks.astype(np.float32)), goods], axis=0),
                                g.const("ax0", np.array([0], np.int64))])  # [M, F]
        bank_sq = g.op("ReduceSum", [g.op("Mul", [bank, bank]), g.const("ax1", np.array([1], np.int64))],
                       keepdims=0)  # [M]
        z_sq = g.op("ReduceSum", [g.op("Mul", [z, z]), g.const("ax1b", np.array([1], np.int64))], keepdims=1)
        cross = g.op("MatMul", [z, g.op("Transpose", [bank], perm=[1, 0])])  # [N, M]
        two = g.const("two", np.array(2.0, np.float32))
        d2 = g.op("Add", [g.op("Sub", [z_sq, g.op("Mul", [two, cross])]), bank_sq])
        dist2 = g.op("ReduceMin", [d2], axes=[1], keepdims=0)  # [N] (axes an attribute until opset 18)
    else:
        if banks.ndim != 3 or banks.shape != (c, f + 1, f):
            raise ValueError("build_model: gaussian banks must be (C, F+1, F)")
        params = g.op("Squeeze", [g.op("Gather", [g.const("gauss", banks.astype(np.float32)), goods], axis=0),
                                  g.const("ax0g", np.array([0], np.int64))])  # [F+1, F]
        mean = g.op("Slice", [params, g.const("g0", np.array([0], np.int64)), g.const("g1", np.array([1], np.int64))])
        white = g.op("Slice", [params, g.const("g1b", np.array([1], np.int64)),
                               g.const("gF", np.array([f + 1], np.int64))])
        w = g.op("MatMul", [g.op("Sub", [z, mean]), white])
        dist2 = g.op("ReduceSum", [g.op("Mul", [w, w]), g.const("ax1d", np.array([1], np.int64))], keepdims=0)
    dist = g.op("Sqrt", [g.op("Relu", [dist2])])
    scale_c = g.op("Gather", [g.const("scale", scale.astype(np.float32)), goods], axis=0)  # [1]
    scaled = g.op("Div", [dist, scale_c])
    grid = g.op("Reshape", [scaled, g.op("Concat", [g.const("one1", np.array([1, 1], np.int64)), hw], axis=0)])
    heat = g.op("AveragePool", [grid], "smooth", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
                count_include_pad=0)
    doc = (f"X-ray anomaly ({head} head): high/low attenuation + goods index -> heat map per {STRIDE} px cell, "
           "1.0 = the class's normal 99th percentile")
    return _model(g, _io(True), heat, "heatmap", 1, doc)
