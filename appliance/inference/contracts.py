"""The input/output contract each analyzer relies on, per model task.

A retrained or swapped model may change its weights, its opset or its symbolic dimension names, but
not the shape of what the analyzer feeds it and reads back: the text detector is given an image
batch (N,3,H,W) and reads a probability map (N,1,H,W); the recogniser is given line crops
(N,3,48,W) and reads per-step class scores (N,T,C). ``check_contract`` refuses a model that breaks
its task's contract, and a manifest whose fixed dimensions disagree with the ONNX graph, before the
model is installed or served.

New tasks (face-embedding, xray-anomaly, ...) add an entry to ``CONTRACTS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import ModelError
from appliance.inference.manifest import ModelManifest, TensorSpec

# ONNX Runtime's type strings -> the manifest's dtype names.
ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}

Dim = int | str | None


@dataclass(frozen=True)
class GraphTensor:
    """One input or output as the ONNX graph declares it; an int dim is fixed by the graph."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    @classmethod
    def from_ort(cls, arg: Any) -> GraphTensor:
        """From an ``onnxruntime.NodeArg`` (``session.get_inputs()`` / ``get_outputs()``)."""
        shape = tuple(d if isinstance(d, int | str) else None for d in (arg.shape or []))
        return cls(arg.name, ORT_DTYPES.get(arg.type, arg.type), shape)


def session_tensors(session: Any) -> tuple[list[GraphTensor], list[GraphTensor]]:
    """The inputs and outputs of an ONNX Runtime session (or of ``OnnxModel.session``)."""
    return (
        [GraphTensor.from_ort(a) for a in session.get_inputs()],
        [GraphTensor.from_ort(a) for a in session.get_outputs()],
    )


DimRule = int | Callable[[ModelManifest], int]


@dataclass(frozen=True)
class TensorContract:
    """What the analyzer needs of one tensor: element type, rank, and sizes of some dims."""

    role: str
    layout: str
    rank: int
    dtype: str = "float32"
    dims: Mapping[int, DimRule] = field(default_factory=dict)

    def required(self, manifest: ModelManifest) -> dict[int, int]:
        """Dim index -> the size the analyzer needs (some depend on the manifest's preprocess)."""
        return {index: rule if isinstance(rule, int) else rule(manifest) for index, rule in self.dims.items()}

    def describe(self) -> str:
        return f"{self.dtype} {self.layout}"


@dataclass(frozen=True)
class TaskContract:
    task: str
    used_by: str
    inputs: tuple[TensorContract, ...]
    outputs: tuple[TensorContract, ...]

    def describe(self) -> str:
        ins = ", ".join(t.describe() for t in self.inputs)
        outs = ", ".join(t.describe() for t in self.outputs)
        return f"{self.task}: in {ins} -> out {outs}"


def _rec_height(manifest: ModelManifest) -> int:
    height = manifest.preprocess.get("height", 48)
    if not isinstance(height, int) or isinstance(height, bool) or height <= 0:
        raise ModelError(f"preprocess.height must be a positive integer, got {height!r}")
    return height


def _det_channels(manifest: ModelManifest) -> int:
    """4 box coordinates (cx, cy, w, h) + one score per class of ``manifest.labels``."""
    if not manifest.labels:
        raise ModelError("an object-detection manifest must list its class names in labels")
    return 4 + len(manifest.labels)


def _chip_size(manifest: ModelManifest) -> int:
    size = manifest.preprocess.get("chip_size", 150)
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ModelError(f"preprocess.chip_size must be a positive integer, got {size!r}")
    return size


def _label_count(manifest: ModelManifest) -> int:
    """One value per class of ``manifest.labels``."""
    if not manifest.labels:
        raise ModelError(f"a {manifest.task} manifest must list its class names in labels")
    return len(manifest.labels)


CONTRACTS: dict[str, TaskContract] = {
    "text-detection": TaskContract(
        task="text-detection",
        used_by="appliance.analyzers.ocr (DB text detector)",
        inputs=(TensorContract("image batch", "(N,3,H,W)", rank=4, dims={1: 3}),),
        outputs=(TensorContract("text probability map", "(N,1,H,W)", rank=4, dims={1: 1}),),
    ),
    "text-recognition": TaskContract(
        task="text-recognition",
        used_by="appliance.analyzers.ocr (CTC line recogniser)",
        inputs=(
            TensorContract("line crops", "(N,3,preprocess.height,W)", rank=4, dims={1: 3, 2: _rec_height}),
        ),
        outputs=(TensorContract("per-step class scores", "(N,T,C)", rank=3),),
    ),
    "face-embedding": TaskContract(
        task="face-embedding",
        used_by="appliance.faces.embed (1:1 match and watchlist of the passenger lane)",
        inputs=(
            TensorContract("aligned face chips, RGB 0..255", "(N,3,chip_size,chip_size)", rank=4,
                           dims={1: 3, 2: _chip_size, 3: _chip_size}),
        ),
        outputs=(TensorContract("face descriptors", "(N,D)", rank=2),),
    ),
    "xray-anomaly": TaskContract(
        task="xray-anomaly",
        used_by="appliance.xray.anomaly (heat map and score of a calibrated scan per goods class)",
        inputs=(
            TensorContract("high-energy attenuation", "(1,1,H,W)", rank=4, dims={0: 1, 1: 1}),
            TensorContract("low-energy attenuation", "(1,1,H,W)", rank=4, dims={0: 1, 1: 1}),
            TensorContract("goods class index into labels", "(1,)", rank=1, dtype="int64", dims={0: 1}),
        ),
        outputs=(TensorContract("anomaly heat map per cell", "(1,1,h,w)", rank=4, dims={1: 1}),),
    ),
    "xray-consistency": TaskContract(
        task="xray-consistency",
        used_by="appliance.xray.consistency (declared goods and quantity vs the load descriptor of a calibrated scan)",
        inputs=(TensorContract("load descriptors", "(N,D)", rank=2),),
        outputs=(
            TensorContract("goods class probabilities", "(N,len(labels))", rank=2, dims={1: _label_count}),
            TensorContract("estimated quantity per goods class", "(N,len(labels))", rank=2, dims={1: _label_count}),
        ),
    ),
    "object-detection": TaskContract(
        task="object-detection",
        used_by="appliance train detector (YOLO, exported without NMS; candidates, no lane analyzer yet)",
        inputs=(TensorContract("image batch", "(N,3,H,W)", rank=4, dims={1: 3}),),
        outputs=(
            TensorContract("box and class scores", "(N,4+len(labels),anchors)", rank=3, dims={1: _det_channels}),
        ),
    ),
}


def contract_for(task: str, where: str = "") -> TaskContract:
    contract = CONTRACTS.get(task)
    if contract is None:
        prefix = f"{where}: " if where else ""
        raise ModelError(f"{prefix}no I/O contract for task {task!r}; known tasks: {', '.join(sorted(CONTRACTS))}")
    return contract


def _fmt(shape: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _check_manifest_dims(kind: str, specs: Sequence[TensorSpec], graph: Sequence[GraphTensor], where: str) -> None:
    by_name = {s.name: s for s in specs}
    for tensor in graph:
        spec = by_name.get(tensor.name)
        if spec is None:
            raise ModelError(
                f"{where}: {kind} {tensor.name!r} of the ONNX graph is not in the manifest's {kind}s {sorted(by_name)}"
            )
        if len(spec.shape) != len(tensor.shape):
            raise ModelError(
                f"{where}: {kind} {tensor.name!r} has rank {len(tensor.shape)} {_fmt(tensor.shape)} in the ONNX "
                f"graph but rank {len(spec.shape)} {_fmt(spec.shape)} in the manifest"
            )
        for index, (declared, actual) in enumerate(zip(spec.shape, tensor.shape, strict=True)):
            if isinstance(declared, int) and isinstance(actual, int) and declared != actual:
                raise ModelError(
                    f"{where}: wrong {kind} shape: {kind} {tensor.name!r} dim {index} is {actual} in the ONNX graph "
                    f"{_fmt(tensor.shape)} but {declared} in the manifest {_fmt(spec.shape)}"
                )


def _check_side(
    kind: str,
    contract: TaskContract,
    wanted: tuple[TensorContract, ...],
    specs: Sequence[TensorSpec],
    graph: Sequence[GraphTensor],
    manifest: ModelManifest,
    where: str,
) -> None:
    task = contract.task
    if len(graph) != len(wanted):
        roles = ", ".join(f"{t.role} {t.describe()}" for t in wanted)
        raise ModelError(
            f"{where}: the {task} contract needs exactly {len(wanted)} {kind}(s) ({roles}); "
            f"the ONNX graph has {len(graph)}: {[t.name for t in graph]}"
        )
    by_name = {s.name: s for s in specs}
    for need, tensor in zip(wanted, graph, strict=True):
        label = f"{kind} {tensor.name!r} ({need.role})"
        if tensor.dtype != need.dtype:
            raise ModelError(
                f"{where}: {label} is {tensor.dtype}; the {task} contract needs {need.describe()}"
            )
        if len(tensor.shape) != need.rank:
            raise ModelError(
                f"{where}: {label} has rank {len(tensor.shape)} {_fmt(tensor.shape)}; the {task} contract needs "
                f"rank {need.rank} {need.layout}"
            )
        try:
            required = need.required(manifest)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from exc
        spec = by_name.get(tensor.name)
        for index, size in required.items():
            actual = tensor.shape[index]
            source = "ONNX graph"
            if not isinstance(actual, int) and spec is not None and isinstance(spec.shape[index], int):
                actual, source = spec.shape[index], "manifest"
            if isinstance(actual, int) and actual != size:
                raise ModelError(
                    f"{where}: {label} dim {index} is {actual} in the {source} {_fmt(tensor.shape)}; "
                    f"the {task} contract needs {size} {need.layout}"
                )


def check_contract(
    manifest: ModelManifest,
    onnx_inputs: Sequence[GraphTensor],
    onnx_outputs: Sequence[GraphTensor],
    where: str,
) -> TaskContract:
    """Refuse a model that breaks its task's I/O contract or whose manifest's fixed dims disagree with the graph.

    ``onnx_inputs`` / ``onnx_outputs`` are the graph's tensors (``session_tensors``). A contract dim
    is checked against the graph where the graph fixes it, else against the manifest where the
    manifest fixes it; a dim both leave free is accepted (it is checked at run time). Returns the
    contract that was checked.
    """
    contract = contract_for(manifest.task, where)
    _check_manifest_dims("input", manifest.inputs, onnx_inputs, where)
    _check_manifest_dims("output", manifest.outputs, onnx_outputs, where)
    _check_side("input", contract, contract.inputs, manifest.inputs, onnx_inputs, manifest, where)
    _check_side("output", contract, contract.outputs, manifest.outputs, onnx_outputs, manifest, where)
    return contract
