"""The project's one ONNX Runtime layer: every model runs through ``OnnxModel``.

It checks the file against its manifest (hash, input and output names), refuses a file that is
not ONNX with a message naming it, pins thread counts (so per-core figures are honest) and says
which execution provider really runs the model: a silent fall-back to CPU is a known trap.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from appliance.errors import ModelError
from appliance.inference.manifest import ModelManifest

log = logging.getLogger(__name__)

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


@dataclass(frozen=True)
class SessionOptions:
    """How to run a model: providers in order of preference and CPU threads."""

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 1
    allow_cpu_fallback: bool = True


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class OnnxModel:
    """A loaded, verified ONNX Runtime session for one model version."""

    def __init__(self, path: Path, manifest: ModelManifest, options: SessionOptions | None = None):
        self.path = path
        self.manifest = manifest
        options = options or SessionOptions()
        if not path.is_file():
            raise ModelError(
                f"{path}: model file not found for {manifest.task}/{manifest.name} "
                f"v{manifest.version}; run `appliance models prepare`"
            )
        actual = sha256_file(path)
        if actual != manifest.sha256:
            raise ModelError(
                f"{path}: sha256 {actual[:12]}... does not match the manifest's "
                f"{manifest.sha256[:12]}...; the file is corrupt or not the model the manifest describes"
            )
        self.session = _open_session(path, options)
        self.providers = tuple(self.session.get_providers())
        wanted = options.providers[0]
        if wanted not in self.providers:
            if not options.allow_cpu_fallback:
                raise ModelError(
                    f"{path}: execution provider {wanted} was requested but ONNX Runtime runs "
                    f"{self.providers}; install the matching onnxruntime build or allow CPU fallback"
                )
            log.warning("model %s: %s unavailable, running on %s", manifest.name, wanted, self.providers)
        self._check_signature()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        log.info(
            "loaded model %s/%s v%s on %s", manifest.task, manifest.name, manifest.version, self.providers[0]
        )

    def _check_signature(self) -> None:
        pairs = [
            ("input", self.manifest.inputs, self.session.get_inputs()),
            ("output", self.manifest.outputs, self.session.get_outputs()),
        ]
        for kind, specs, actual in pairs:
            names = [a.name for a in actual]
            if [s.name for s in specs] != names:
                raise ModelError(
                    f"{self.path}: {kind} names {names} differ from the manifest's {[s.name for s in specs]}"
                )
            for spec, arg in zip(specs, actual, strict=True):
                dtype = _ORT_DTYPES.get(arg.type, arg.type)
                if dtype != spec.dtype:
                    raise ModelError(
                        f"{self.path}: {kind} {spec.name!r} is {dtype}, manifest says {spec.dtype}"
                    )
                if len(arg.shape) != len(spec.shape):
                    raise ModelError(
                        f"{self.path}: {kind} {spec.name!r} has rank {len(arg.shape)}, "
                        f"manifest says {len(spec.shape)}"
                    )

    def metadata(self) -> dict[str, str]:
        """Custom metadata stored in the model file (plain strings; never evaluated)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        outputs = self.session.run(self.output_names, inputs)
        return [np.asarray(o) for o in outputs]


def _open_session(path: Path, options: SessionOptions) -> ort.InferenceSession:
    sess_options = ort.SessionOptions()
    sess_options.intra_op_num_threads = options.intra_op_threads
    sess_options.inter_op_num_threads = 1
    sess_options.log_severity_level = 3
    available = set(ort.get_available_providers())
    providers = [p for p in options.providers if p in available] or ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), sess_options=sess_options, providers=providers)
    except Exception as exc:  # ORT raises several private exception types for bad files
        raise ModelError(f"{path}: ONNX Runtime cannot load this file as an ONNX model: {exc}") from exc
