"""The model store: ``models/<task>/<name>/<version>/{manifest.yaml, model.onnx}``.

Models that ship inside an installed wheel (the PP-OCR detector and recogniser from
rapidocr_onnxruntime) are copied into the store by ``prepare``; models that ship in another
format (dlib's face descriptor in face_recognition_models) are converted to ONNX by the
project's own converter there, and must give the manifest's sha256. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ModelError
from appliance.inference.manifest import ModelManifest, load_manifest
from appliance.inference.session import OnnxModel, SessionOptions, sha256_file

log = logging.getLogger(__name__)

# The project's models/ folder; an installed (non-editable) appliance sets GATE_MODELS_DIR.
DEFAULT_ROOT = Path(os.environ.get("GATE_MODELS_DIR", Path(__file__).resolve().parents[2] / "models"))


@dataclass(frozen=True)
class ModelRef:
    """A model version in the store."""

    task: str
    name: str
    version: str
    folder: Path
    manifest: ModelManifest

    @property
    def file(self) -> Path:
        return self.folder / self.manifest.file


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


class ModelStore:
    """Finds, prepares and opens the models under one root folder."""

    def __init__(self, root: Path = DEFAULT_ROOT):
        self.root = root

    def list(self) -> list[ModelRef]:
        refs = []
        for manifest_path in sorted(self.root.glob("*/*/*/manifest.yaml")):
            folder = manifest_path.parent
            manifest = load_manifest(manifest_path)
            refs.append(ModelRef(folder.parts[-3], folder.parts[-2], folder.parts[-1], folder, manifest))
        return refs

    def get(self, task: str, name: str, version: str | None = None) -> ModelRef:
        """The named model; the highest version unless ``version`` is given."""
        base = self.root / task / name
        if not base.is_dir():
            raise ModelError(f"{base}: no model {task}/{name} in the store")
        versions = sorted((p.name for p in base.iterdir() if (p / "manifest.yaml").is_file()), key=_version_key)
        if not versions:
            raise ModelError(f"{base}: model {task}/{name} has no version with a manifest.yaml")
        chosen = version or versions[-1]
        folder = base / chosen
        if not (folder / "manifest.yaml").is_file():
            raise ModelError(f"{folder}: version {chosen} of {task}/{name} not found; have {versions}")
        return ModelRef(task, name, chosen, folder, load_manifest(folder / "manifest.yaml"))

    def prepare(self, ref: ModelRef) -> Path:
        """Make sure ``ref.file`` exists and matches its hash, copying it from its package."""
        target = ref.file
        if target.is_file() and sha256_file(target) == ref.manifest.sha256:
            return target
        source = package_file(ref)
        if source is None:
            raise ModelError(
                f"{target}: model file missing and the manifest names no package source; "
                "train or copy the model into the store"
            )
        tmp = target.with_suffix(".tmp")
        converter = ref.manifest.source.converter if ref.manifest.source else None
        if converter is not None:
            from appliance.inference.converters import convert

            convert(converter, source, tmp)
            if sha256_file(tmp) != ref.manifest.sha256:
                tmp.unlink(missing_ok=True)
                raise ModelError(
                    f"{source}: converting it with {converter!r} did not give the model the manifest names (sha256 "
                    "differs): the package or the converter is not the one the manifest was made with"
                )
        else:
            if sha256_file(source) != ref.manifest.sha256:
                raise ModelError(f"{source}: packaged model does not match the manifest's sha256")
            shutil.copyfile(source, tmp)
        tmp.replace(target)
        log.info("prepared model %s/%s v%s", ref.task, ref.name, ref.version)
        return target

    def open(
        self, task: str, name: str, version: str | None = None, options: SessionOptions | None = None
    ) -> OnnxModel:
        """Open a verified session; falls back to the packaged file when not yet prepared."""
        ref = self.get(task, name, version)
        path = ref.file
        if not path.is_file():
            converted = ref.manifest.source is not None and ref.manifest.source.converter is not None
            packaged = package_file(ref)
            if packaged is not None and not converted:
                path = packaged
        return OnnxModel(path, ref.manifest, options)


    def open_if_present(self, task: str, name: str, options: SessionOptions | None = None) -> OnnxModel | None:
        """The highest version of ``task/name`` opened, or None when the store has no such model (for
        measurement commands that fit a stand-in when nothing is installed); a broken package still raises."""
        if not (self.root / task / name).is_dir():
            return None
        return self.open(task, name, options=options)


def package_file(ref: ModelRef) -> Path | None:
    """The model file inside its installed package, if the manifest names one."""
    src = ref.manifest.source
    if src is None:
        return None
    spec = importlib.util.find_spec(src.package)
    if spec is None or spec.origin is None:
        raise ModelError(
            f"{ref.folder}: the model ships in package {src.package!r}, which is not installed"
        )
    return Path(spec.origin).parent / src.path
