"""Model manifests: what a model in the store claims to be, validated on load.

A model package is a folder ``models/<task>/<name>/<version>/`` holding ``manifest.yaml`` and,
once prepared, ``model.onnx``. Models shipped inside a PyPI wheel name that file in ``source``;
``appliance models prepare`` copies it into the store. Metadata read from a model is data,
never code: nothing here evaluates it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.errors import ModelError

_DTYPES = {"float32", "float16", "int64", "int32", "uint8", "bool"}


class TensorSpec(BaseModel):
    """One model input or output: its name, element type and shape (names are symbolic dims)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Tensor name as in the ONNX graph.")
    dtype: str = Field(description="Element type, e.g. float32.")
    shape: list[int | str] = Field(description="Dimensions; strings are symbolic (batch, width).")


class PackageSource(BaseModel):
    """Where a model that ships inside an installed Python package lives."""

    model_config = ConfigDict(extra="forbid")
    package: str = Field(description="Importable package name, e.g. rapidocr_onnxruntime.")
    path: str = Field(description="Path of the model file inside that package (.onnx, or what `converter` reads).")
    converter: str | None = Field(
        default=None,
        description="Name of the project's converter that turns the packaged file into ONNX at `appliance models "
        "prepare` (e.g. dlib-resnet); absent: the packaged file is ONNX and is copied.",
    )


class GoldenSpec(BaseModel):
    """Golden outputs shipped in the package's ``golden/`` folder and how closely the model must match them.

    An output passes when ``|actual - expected| <= atol + rtol * |expected|`` element-wise.
    """

    model_config = ConfigDict(extra="forbid")
    atol: float = Field(default=1e-3, ge=0, description="Absolute tolerance.")
    rtol: float = Field(default=1e-3, ge=0, description="Tolerance relative to |expected|.")


class ModelManifest(BaseModel):
    """The manifest.yaml of one model version."""

    model_config = ConfigDict(extra="forbid")
    name: str
    task: str
    version: str
    file: str = Field(default="model.onnx", description="Model file name inside the version folder.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the model file.")
    licence: str
    source: PackageSource | None = None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocess: dict[str, Any] = Field(default_factory=dict)
    thresholds: dict[str, float] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=list)
    charset_metadata_key: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    eval_set: str | None = Field(
        default=None,
        description="Named evaluation set that `metrics` were measured on (metrics are compared only "
        "between models measured on the same eval_set).",
    )
    golden: GoldenSpec | None = Field(
        default=None,
        description="Golden input/output cases in golden/case-NNN.npz that the model must reproduce on load.",
    )
    training: dict[str, Any] = Field(default_factory=dict)

    def check_dtypes(self, where: Path) -> None:
        for spec in [*self.inputs, *self.outputs]:
            if spec.dtype not in _DTYPES:
                raise ModelError(f"{where}: tensor {spec.name!r} has unknown dtype {spec.dtype!r}")

    def check_thresholds(self, where: Path) -> None:
        """Every threshold is a finite number; a per-label key ``<name>.<label>`` (e.g.
        ``quantity_tolerance.parcels``) names one of ``labels``. Ranges are the task's to check."""
        for key, value in self.thresholds.items():
            if not math.isfinite(value):
                raise ModelError(f"{where}: thresholds.{key} must be a finite number, got {value!r}")
            _, dot, label = key.partition(".")
            if dot and label not in self.labels:
                known = ", ".join(self.labels) if self.labels else "the manifest lists no labels"
                raise ModelError(f"{where}: thresholds.{key} is a per-label threshold for {label!r}, which is not "
                                 f"one of labels ({known})")


def load_manifest(path: Path) -> ModelManifest:
    """Read and validate one manifest.yaml; every problem names the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{path}: model manifest not found") from exc
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: manifest is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelError(f"{path}: manifest must be a YAML mapping, got {type(raw).__name__}")
    try:
        manifest = ModelManifest.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ModelError(f"{path}: invalid manifest: {problems}") from exc
    manifest.check_dtypes(path)
    manifest.check_thresholds(path)
    return manifest
