"""dlib's ResNet face descriptor (``dlib_face_recognition_resnet_model_v1.dat``) converted to ONNX.

The ``.dat`` file is dlib's own binary serialization of ``anet_type`` from dlib's
``examples/dnn_face_recognition_ex.cpp``::

    loss_metric<fc_no_bias<128, avg_pool_everything<
        alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

    ares<N>      = relu<add_prev1<block<N,1,tag1<SUBNET>>>>
    ares_down<N> = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<SUBNET>>>>>>>
    block<N,s>   = affine<con<N,3,3,1,1,relu<affine<con<N,3,3,s,s,SUBNET>>>>>
    alevel0 = ares_down<256>                  alevel1 = ares<256,ares<256,ares_down<256>>>
    alevel2 = ares<128,ares<128,ares_down<128>>>
    alevel3 = ares<64,ares<64,ares<64,ares_down<64>>>>   alevel4 = ares<32,ares<32,ares<32>>>

The format, as dlib writes it (sources in github.com/davisking/dlib):

* ``dlib/serialize.h``: an integer is one control byte (low 4 bits = number of following bytes, 1..8;
  0x80 = negative; the 0x70 bits are always 0) then that many little-endian magnitude bytes. A string
  is a packed length then the bytes. A bool is the character ``'1'`` or ``'0'``. A float or double
  is a packed int64 mantissa then a packed int16 exponent (``dlib/float_details.h``: value =
  mantissa * 2**exponent; exponents 32000/32001/32002 mean +inf/-inf/nan).
* ``dlib/cuda/tensor.h`` (``dlib/dnn/tensor.h`` in older trees): ``resizable_tensor`` = packed
  version (2), num_samples, k, nr, nc, then num_samples*k*nr*nc little-endian float32.
  ``alias_tensor`` = packed version (1), num_samples, k, nr, nc (a view: no data, no offset).
* ``dlib/dnn/core.h``: every layer writes its version, then its whole subnetwork (recursively), then
  its own details. So the file opens with the loss layer's version and details, then the versions of
  all the layers from the top down, then the input layer, then every layer's details from the bottom
  up. ``add_loss_layer`` v1 = loss details then subnetwork. ``add_layer`` v2 = subnetwork, details,
  3 bools (setup called, gradient stale, output disabled), x_grad, cached_output, params_grad (v1
  lacks params_grad). The ``add_layer`` directly on the input layer (v3) = input layer, details,
  3 bools, x_grad, cached_output, grad_final, sample_expansion_factor (v2 lacks the last).
  ``add_tag_layer`` and ``add_skip_layer`` = version 1 then subnetwork: the tag ids are not in the
  file; they come from the network type above.
* ``dlib/dnn/input.h``: ``"input_rgb_image_sized"``, avg_red, avg_green, avg_blue (floats), NR, NC.
  Pixels enter the network as ``(pixel - avg) / 256`` per channel, in R, G, B plane order.
* ``dlib/dnn/layers.h``:
  ``"con_4"`` params, num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x, filters alias
  (num_filters, k, nr, nc), biases alias (1, num_filters), 4 learning-rate/decay doubles
  (``"con_5"`` adds use_bias; params = filters then biases). dlib convolves without flipping
  (cross-correlation, as ONNX Conv) and sizes outputs as 1 + (in + 2*pad - window) // stride.
  ``"affine_"`` params, gamma alias, beta alias, int mode (0 = per channel): y = x*gamma + beta.
  ``"relu_"``; ``"add_prev_"``; ``"max_pool_2"`` / ``"avg_pool_2"`` nr, nc, stride_y, stride_x,
  padding_y, padding_x (nr = nc = 0: pool the whole plane, i.e. avg_pool_everything).
  ``"fc_2"`` num_outputs, num_inputs, params, weights alias (num_inputs, num_outputs), biases alias,
  int bias mode (1 = no bias), 4 doubles: y = x @ weights.
  ``add_prev_`` adds tensors of different shapes by padding the smaller one with zeros at the end of
  each dimension (``tt::add`` in ``dlib/cuda/cpu_dlib.cpp``). This network relies on it: in a down
  block the pooled shortcut has half the channels of the block output, and at 8x8 -> 3x3 (conv) vs
  4x4 (pool) and 4x4 -> 1x1 vs 2x2 the spatial sizes differ too.
* ``dlib/dnn/loss.h``: ``"loss_metric_2"`` margin, distance threshold (floats). The descriptor is
  the fc output as is (no normalisation).

The ONNX graph (opset 17) takes ``chip``: float32 RGB pixel values 0..255, NCHW ``[N, 3, 150, 150]``
(a ``dlib.get_face_chip(img, shape, size=150, padding=0.25)`` chip, transposed); the input
normalisation is inside the graph. It returns ``descriptor``: float32 ``[N, 128]``. The output
bytes depend only on the ``.dat`` bytes (fixed names, no timestamps), so a manifest's sha256 can
check a file converted on another machine.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from appliance.errors import ModelError

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17
CHIP_SIZE = 150
INPUT_NAME = "chip"
OUTPUT_NAME = "descriptor"
PRODUCER = "gate-appliance dlib_onnx"
PRODUCER_VERSION = "1"

# ---------------------------------------------------------------------------------------------------------------------
# the network type (anet_type), bottom (input) first


@dataclass(frozen=True)
class Layer:
    kind: str  # input, con, affine, relu, max_pool, avg_pool, tag, skip, add_prev, fc
    arg: tuple[int, ...] = ()  # con: filters, size, stride; pools: size, stride; tag/skip/add_prev: id; fc: outputs

    @property
    def is_add_layer(self) -> bool:
        """tag and skip are dlib's add_tag_layer/add_skip_layer; everything else is an add_layer."""
        return self.kind not in ("input", "tag", "skip")


def _block(n: int, stride: int) -> list[Layer]:
    return [
        Layer("con", (n, 3, stride)),
        Layer("affine"),
        Layer("relu"),
        Layer("con", (n, 3, 1)),
        Layer("affine"),
    ]


def _ares(n: int) -> list[Layer]:
    return [Layer("tag", (1,)), *_block(n, 1), Layer("add_prev", (1,)), Layer("relu")]


def _ares_down(n: int) -> list[Layer]:
    return [
        Layer("tag", (1,)),
        *_block(n, 2),
        Layer("tag", (2,)),
        Layer("skip", (1,)),
        Layer("avg_pool", (2, 2)),
        Layer("add_prev", (2,)),
        Layer("relu"),
    ]


def anet_layers() -> list[Layer]:
    """dlib's anet_type, bottom first (input layer first, fc last; the loss layer is not a layer here)."""
    layers = [Layer("input"), Layer("con", (32, 7, 2)), Layer("affine"), Layer("relu"), Layer("max_pool", (3, 2))]
    layers += _ares(32) * 3  # alevel4
    layers += _ares_down(64) + _ares(64) * 3  # alevel3
    layers += _ares_down(128) + _ares(128) * 2  # alevel2
    layers += _ares_down(256) + _ares(256) * 2  # alevel1
    layers += _ares_down(256)  # alevel0
    layers += [Layer("avg_pool", (0, 1)), Layer("fc", (128,))]
    return layers


# ---------------------------------------------------------------------------------------------------------------------
# dlib's serialization primitives

_FLOAT_INF, _FLOAT_NINF, _FLOAT_NAN = 32000, 32001, 32002


class DlibReader:
    """Reads dlib's serialization primitives from bytes; every error names the file and the byte offset."""

    def __init__(self, data: bytes, path: Path):
        self.data = data
        self.path = path
        self.pos = 0

    def error(self, what: str, message: str, offset: int | None = None) -> ModelError:
        at = self.pos if offset is None else offset
        return ModelError(f"{self.path}: {what}: {message} at byte offset {at}")

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.error(what, f"file ends after {len(self.data)} bytes, {n} more needed (truncated?)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int_(self, what: str) -> int:
        start = self.pos
        control = self.take(1, what)[0]
        size = control & 0x0F
        if control & 0x70 or not 1 <= size <= 8:
            raise self.error(what, f"bad integer control byte 0x{control:02x} (not a dlib serialization file?)", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    def expect_int(self, what: str, allowed: tuple[int, ...]) -> int:
        start = self.pos
        value = self.int_(what)
        if value not in allowed:
            wanted = " or ".join(str(a) for a in allowed)
            raise self.error(what, f"expected {wanted}, found {value}", start)
        return value

    def string(self, what: str) -> str:
        start = self.pos
        n = self.int_(what)
        if not 0 <= n <= len(self.data) - self.pos:
            raise self.error(what, f"string length {n} does not fit in the file (truncated?)", start)
        raw = self.take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.error(what, f"expected a layer name, found bytes {raw[:32]!r}", start) from None

    def expect_string(self, what: str, expected: str) -> None:
        start = self.pos
        found = self.string(what)
        if found != expected:
            raise self.error(what, f"expected {expected!r}, found {found[:40]!r}", start)

    def bool_(self, what: str) -> bool:
        start = self.pos
        ch = self.take(1, what)
        if ch not in (b"0", b"1"):
            raise self.error(what, f"expected '0' or '1', found {ch!r}", start)
        return ch == b"1"

    def float_(self, what: str) -> float:
        start = self.pos
        mantissa = self.int_(what)
        exponent = self.int_(what)
        if exponent == _FLOAT_INF:
            return math.inf
        if exponent == _FLOAT_NINF:
            return -math.inf
        if exponent >= _FLOAT_NAN:
            return math.nan
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.error(what, f"floating point value {mantissa}*2**{exponent} out of range", start) from None

    def dims(self, what: str, version: int) -> tuple[int, int, int, int]:
        self.expect_int(f"{what} version", (version,))
        start = self.pos
        n, k, nr, nc = (self.int_(what) for _ in range(4))
        if min(n, k, nr, nc) < 0:
            raise self.error(what, f"negative dimension in {(n, k, nr, nc)}", start)
        return n, k, nr, nc

    def tensor(self, what: str) -> np.ndarray:
        """A resizable_tensor (version 2) as a float32 array of shape (num_samples, k, nr, nc)."""
        shape = self.dims(what, 2)
        count = math.prod(shape)
        if count * 4 > len(self.data) - self.pos:
            raise self.error(
                what, f"tensor {shape} needs {count * 4} bytes, only {len(self.data) - self.pos} left (truncated?)"
            )
        return np.frombuffer(self.take(count * 4, what), dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self, what: str, expected: tuple[int, int, int, int]) -> None:
        start = self.pos
        found = self.dims(what, 1)
        if found != expected:
            raise self.error(what, f"expected shape {expected}, found {found}", start)


# ---------------------------------------------------------------------------------------------------------------------
# the graph


@dataclass
class Graph:
    """ONNX nodes and initializers in the order they are made, with the current tensor's name and (C, H, W)."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    current: str = INPUT_NAME
    shape: tuple[int, int, int] = (3, CHIP_SIZE, CHIP_SIZE)
    tags: dict[int, tuple[str, tuple[int, int, int]]] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    def name(self, kind: str) -> str:
        return f"{len(self.nodes):03d}_{kind}"

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def add(self, op: str, inputs: list[str], kind: str, **attrs: Any) -> str:
        name = self.name(kind)
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        self.current = name
        return name


def _pool_size(size: int, window: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - window) // stride


def _input(r: DlibReader, g: Graph) -> None:
    r.expect_string("input layer", "input_rgb_image_sized")
    mean = [r.float_(f"input layer avg_{c}") for c in ("red", "green", "blue")]
    for what in ("input layer NR", "input layer NC"):
        r.expect_int(what, (CHIP_SIZE,))
    avg = np.asarray(mean, np.float32)
    g.metadata["mean_rgb"] = ",".join(repr(float(v)) for v in avg)
    sub = g.add("Sub", [INPUT_NAME, g.const("input_mean", avg.reshape(1, 3, 1, 1))], "input_sub")
    g.add("Mul", [sub, g.const("input_scale", np.asarray(1 / 256, np.float32))], "input_scale")


def _con(r: DlibReader, g: Graph, filters: int, size: int, stride: int) -> None:
    version_at = r.pos
    version = r.string("con layer")
    if version not in ("con_4", "con_5"):
        raise r.error("con layer", f"expected 'con_4' or 'con_5', found {version[:40]!r}", version_at)
    k, h, w = g.shape
    params = r.tensor("con params")
    r.expect_int("con num_filters", (filters,))
    for what in ("con nr", "con nc"):
        r.expect_int(what, (size,))
    for what in ("con stride_y", "con stride_x"):
        r.expect_int(what, (stride,))
    pad = 0 if stride != 1 else size // 2  # dlib's default for con_<..., stride, stride>
    for what in ("con padding_y", "con padding_x"):
        r.expect_int(what, (pad,))
    r.alias("con filters", (filters, k, size, size))
    r.alias("con biases", (1, filters, 1, 1))
    for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.float_(f"con {what} multiplier")
    use_bias = r.bool_("con use_bias") if version == "con_5" else True
    n_weights = filters * k * size * size
    expected = n_weights + (filters if use_bias else 0)
    if params.size != expected:
        raise r.error("con params", f"expected {expected} values for {filters}x{k}x{size}x{size}, found {params.size}")
    flat = params.reshape(-1)
    name = g.name("conv")
    inputs = [g.current, g.const(f"{name}_W", flat[:n_weights].reshape(filters, k, size, size))]
    if use_bias:
        inputs.append(g.const(f"{name}_B", flat[n_weights:]))
    g.add("Conv", inputs, "conv", kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4)
    g.shape = (filters, _pool_size(h, size, stride, pad), _pool_size(w, size, stride, pad))


def _affine(r: DlibReader, g: Graph) -> None:
    r.expect_string("affine layer", "affine_")
    k = g.shape[0]
    params = r.tensor("affine params")
    r.alias("affine gamma", (1, k, 1, 1))
    r.alias("affine beta", (1, k, 1, 1))
    r.expect_int("affine mode (0 = per channel)", (0,))
    if params.size != 2 * k:
        raise r.error("affine params", f"expected {2 * k} values (gamma, beta for {k} channels), found {params.size}")
    flat = params.reshape(-1)
    name = g.name("affine")
    mul = g.add("Mul", [g.current, g.const(f"{name}_gamma", flat[:k].reshape(1, k, 1, 1))], "affine_mul")
    g.add("Add", [mul, g.const(f"{name}_beta", flat[k:].reshape(1, k, 1, 1))], "affine_add")


def _relu(r: DlibReader, g: Graph) -> None:
    r.expect_string("relu layer", "relu_")
    g.add("Relu", [g.current], "relu")


def _pool(r: DlibReader, g: Graph, kind: str, size: int, stride: int) -> None:
    r.expect_string(f"{kind} layer", f"{kind}_2")
    for what in ("nr", "nc"):
        r.expect_int(f"{kind} {what}", (size,))
    for what in ("stride_y", "stride_x"):
        r.expect_int(f"{kind} {what}", (stride,))
    pad = 0 if stride != 1 else size // 2
    for what in ("padding_y", "padding_x"):
        r.expect_int(f"{kind} {what}", (pad,))
    k, h, w = g.shape
    if size == 0:  # avg_pool_everything
        g.add("GlobalAveragePool" if kind == "avg_pool" else "GlobalMaxPool", [g.current], kind)
        g.shape = (k, 1, 1)
        return
    op = "AveragePool" if kind == "avg_pool" else "MaxPool"
    # pad is 0 here (stride 2), so AveragePool's count_include_pad cannot matter
    g.add(op, [g.current], kind, kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4)
    g.shape = (k, _pool_size(h, size, stride, pad), _pool_size(w, size, stride, pad))


def _add_prev(r: DlibReader, g: Graph, tag: int) -> None:
    r.expect_string("add_prev layer", "add_prev_")
    t1, s1 = g.current, g.shape
    t2, s2 = g.tags[tag]
    out = (max(s1[0], s2[0]), max(s1[1], s2[1]), max(s1[2], s2[2]))
    padded = []
    for t, s in ((t1, s1), (t2, s2)):
        if s != out:  # dlib's tt::add: missing values are zeros, at the end of each dimension
            ends = [0, out[0] - s[0], out[1] - s[1], out[2] - s[2]]
            name = g.name("pad")
            t = g.add("Pad", [t, g.const(f"{name}_pads", np.asarray([0, 0, 0, 0, *ends], np.int64))], "pad")
        padded.append(t)
    g.add("Add", padded, "add_prev")
    g.shape = out


def _fc(r: DlibReader, g: Graph, outputs: int) -> None:
    r.expect_string("fc layer", "fc_2")
    inputs = math.prod(g.shape)
    r.expect_int("fc num_outputs", (outputs,))
    r.expect_int("fc num_inputs", (inputs,))
    params = r.tensor("fc params")
    r.alias("fc weights", (inputs, outputs, 1, 1))
    biases_at = r.pos
    biases = r.dims("fc biases", 1)
    bias_mode = r.expect_int("fc bias mode (0 = bias, 1 = no bias)", (0, 1))
    expected_biases = (1, outputs, 1, 1) if bias_mode == 0 else (0, 0, 0, 0)
    if biases != expected_biases:
        raise r.error("fc biases", f"expected shape {expected_biases}, found {biases}", biases_at)
    for what in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        r.float_(f"fc {what} multiplier")
    expected = inputs * outputs + (outputs if bias_mode == 0 else 0)
    if params.size != expected:
        raise r.error("fc params", f"expected {expected} values for {inputs}x{outputs}, found {params.size}")
    flat = params.reshape(-1)
    name = g.name("fc")
    flat_in = g.add("Flatten", [g.current], "flatten", axis=1)
    weights = g.const(f"{name}_W", flat[: inputs * outputs].reshape(inputs, outputs))
    if bias_mode == 0:
        mm = g.add("MatMul", [flat_in, weights], "fc_matmul")
        g.add("Add", [mm, g.const(f"{name}_B", flat[inputs * outputs :])], "fc_bias")
    else:
        g.add("MatMul", [flat_in, weights], "fc_matmul")
    g.shape = (outputs, 1, 1)


def _details(r: DlibReader, g: Graph, layer: Layer) -> None:
    """One layer's own serialized details, and its ONNX nodes."""
    if layer.kind == "con":
        _con(r, g, *layer.arg)
    elif layer.kind == "affine":
        _affine(r, g)
    elif layer.kind == "relu":
        _relu(r, g)
    elif layer.kind in ("max_pool", "avg_pool"):
        _pool(r, g, layer.kind, *layer.arg)
    elif layer.kind == "add_prev":
        _add_prev(r, g, layer.arg[0])
    elif layer.kind == "fc":
        _fc(r, g, layer.arg[0])
    else:  # pragma: no cover - anet_layers() has no other kinds
        raise AssertionError(layer.kind)


def _layer_state(r: DlibReader, version: int, first: bool) -> None:
    """What add_layer writes after its details: training state, read and dropped."""
    for what in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        r.bool_(what)
    r.tensor("x_grad")
    r.tensor("cached_output")
    if first:
        r.tensor("grad_final")
        if version >= 3:
            r.int_("sample_expansion_factor")
    elif version >= 2:
        r.tensor("params_grad")


def _parse(r: DlibReader) -> Graph:
    layers = anet_layers()
    g = Graph()
    # add_loss_layer: version, loss details, then the subnetwork
    r.expect_int("add_loss_layer version", (1,))
    r.expect_string("loss layer", "loss_metric_2")
    r.float_("loss_metric margin")
    r.float_("loss_metric distance threshold")
    # every layer's version, top down; the lowest add_layer sits on the input layer
    versions: dict[int, int] = {}
    for i in range(len(layers) - 1, 1, -1):
        layer = layers[i]
        allowed = (1, 2) if layer.is_add_layer else (1,)
        versions[i] = r.expect_int(f"layer {i} ({layer.kind}) version", allowed)
    first_version = r.expect_int("layer 1 (con on the input) version", (2, 3))
    # then the details, bottom up
    _input(r, g)
    _details(r, g, layers[1])
    _layer_state(r, first_version, first=True)
    for i in range(2, len(layers)):
        layer = layers[i]
        if layer.kind == "tag":
            g.tags[layer.arg[0]] = (g.current, g.shape)
        elif layer.kind == "skip":
            g.current, g.shape = g.tags[layer.arg[0]]
        else:
            _details(r, g, layer)
            _layer_state(r, versions[i], first=False)
    if r.pos != len(r.data):
        raise r.error("end of network", f"{len(r.data) - r.pos} bytes left over after the network")
    return g


def convert(dat_path: Path) -> onnx.ModelProto:
    """Read dlib's ``.dat`` and return the same network as an ONNX model (checked with onnx.checker)."""
    dat_path = Path(dat_path)
    try:
        data = dat_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{dat_path}: cannot read the dlib model: {exc}") from exc
    g = _parse(DlibReader(data, dat_path))
    g.nodes[-1].output[0] = OUTPUT_NAME  # the last node (fc MatMul) writes the graph output
    g.nodes[-1].name = OUTPUT_NAME
    chip = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, CHIP_SIZE, CHIP_SIZE])
    out = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", g.shape[0]])
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [chip],
        [out],
        g.initializers,
        doc_string="chip: RGB float32 pixel values 0..255, NCHW [N,3,150,150], aligned as dlib.get_face_chip "
        "(size=150, padding=0.25) makes them; normalised inside the graph. descriptor: [N,128] (dlib's, unnormalised).",
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
    )
    meta = {
        "source": dat_path.name,
        "source_sha256": hashlib.sha256(data).hexdigest(),
        "input": "RGB float32 0..255 NCHW [N,3,150,150]; the graph subtracts mean_rgb and divides by 256",
        **g.metadata,
    }
    helper.set_model_props(model, meta)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:  # pragma: no cover - a converter bug, not a bad file
        raise ModelError(f"{dat_path}: the converted ONNX model does not pass onnx.checker: {exc}") from exc
    return model


def write(dat_path: Path, out_path: Path) -> str:
    """Convert ``dat_path`` into ``out_path`` (same bytes on every run and machine); return its sha256."""
    blob = convert(Path(dat_path)).SerializeToString()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, out_path)
    return hashlib.sha256(blob).hexdigest()
