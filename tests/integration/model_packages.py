"""Model stores for the registry tests: real packages (the shipped PP-OCR models) copied into a temporary
store, with extra versions made from them, and a config that points at it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from appliance.config import AppConfig, load_config
from appliance.inference.store import DEFAULT_ROOT, ModelStore

SHIPPED = ("text-detection/ppocrv4-det-int8/1", "text-detection/ppocrv4-det/1", "text-recognition/ppocrv4-rec/1")
INT8 = "text-detection/ppocrv4-det-int8@1"
REC = "text-recognition/ppocrv4-rec@1"


def build_store(root: Path) -> ModelStore:
    """The shipped packages in a store of their own (packaged files copied from their wheel when needed)."""
    for rel in SHIPPED:
        shutil.copytree(DEFAULT_ROOT / rel, root / rel)
    store = ModelStore(root)
    for ref in store.list():
        store.prepare(ref)
    return store


def install_version(root: Path, task: str, name: str, from_version: str, version: str, *,
                    corrupt: bool = False, as_name: str | None = None, **manifest: Any) -> Path:
    """A new version of ``task/name`` (or of ``task/as_name``) made from ``from_version``'s files (manifest
    fields overridden); ``corrupt``: flip a byte of the model file so it no longer matches its sha256."""
    new_name = as_name or name
    src, dest = root / task / name / from_version, root / task / new_name / version
    shutil.copytree(src, dest)
    # The copy is a new, unsigned package (the test configs allow unsigned ones): the release signature
    # it was copied with covers the old manifest.
    (dest / "signature.json").unlink(missing_ok=True)
    data = yaml.safe_load((dest / "manifest.yaml").read_text(encoding="utf-8"))
    data.pop("source", None)  # the file is in the package itself
    data.update(name=new_name, version=version, **manifest)
    (dest / "manifest.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    if corrupt:
        model = dest / data.get("file", "model.onnx")
        raw = bytearray(model.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        model.write_bytes(bytes(raw))
    return dest


def write_config(tmp: Path, models_root: Path, extra: str = "", lanes: str | None = None,
                 shadow_every: int = 1) -> Path:
    lanes = lanes or ("lanes:\n  - id: lane-1\n    sources:\n"
                      "      - {id: rear, role: rear, type: usb, device: 0}\n")
    path = tmp / "site.yaml"
    path.write_text(
        "site: {gate: VNHNG, box_id: box-1}\n" + lanes
        + f"storage: {{path: {tmp / 'gate.db'}, evidence_dir: {tmp / 'ev'}}}\n"
        # The int8 detector serves first, so that activating a ppocrv4-det version is a visible change.
        + "analyzers: {ocr_detector: ppocrv4-det-int8}\n"
        + f"models: {{root: {models_root}, allow_unsigned: true, watch_interval_s: 0.1, shadow_every: {shadow_every}, "
        + "shadow_queue: 64}\n" + extra,
        encoding="utf-8",
    )
    return path


def config_of(path: Path) -> AppConfig:
    return load_config(path)
