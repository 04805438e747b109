"""Small shared steps of the training commands that write a model package into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def next_version(root: Path, task: str, name: str) -> tuple[Path, str]:
    """The folder and number of the next version of ``task/name`` in the store at ``root``."""
    base = root / task / name
    versions = [int(p.name) for p in base.glob("*") if p.name.isdigit()] if base.is_dir() else []
    version = str(max(versions, default=0) + 1)
    return base / version, version


def write_manifest(folder: Path, manifest: dict[str, Any], header: str) -> None:
    """manifest.yaml with a comment header; an ``eval_set`` of None is left out."""
    if manifest.get("eval_set") is None:
        manifest.pop("eval_set", None)
    (folder / "manifest.yaml").write_text(header + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True),
                                          encoding="utf-8")


def sign_if_key(folder: Path, key: Path | None) -> None:
    if key is not None:
        from appliance.inference.signing import sign_package

        sign_package(folder, key)
