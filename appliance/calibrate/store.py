"""``calibration/camera/<ID>/``: one JSON per tool, written atomically, and ``history.jsonl`` (one line a run)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError

DEFAULT_ROOT = Path("calibration/camera")
HISTORY_FILE = "history.jsonl"
_CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CameraCalibrationError(ApplianceError):
    """A calibration that cannot be made or written; the message names the file or what is missing."""


def camera_folder(root: Path, camera_id: str) -> Path:
    if not _CAMERA_ID.match(camera_id or ""):
        raise CameraCalibrationError(f"camera id {camera_id!r}: use 1-64 letters, digits, '.', '_' or '-' "
                                     "(the source id of the lane config)")
    return Path(root) / camera_id


def save_result(root: Path, camera_id: str, name: str, result: Mapping[str, Any]) -> Path:
    """Write ``<root>/<ID>/<name>`` and append a history line (what it replaced, by sha256)."""
    folder = camera_folder(root, camera_id)
    target = folder / name
    data = (json.dumps(result, indent=2, ensure_ascii=False) + "\n").encode()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        replaces = hashlib.sha256(target.read_bytes()).hexdigest() if target.is_file() else None
        tmp = folder / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        line = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "file": name,
                "sha256": hashlib.sha256(data).hexdigest(), "replaces": replaces,
                "summary": result.get("summary", {})}
        with open(folder / HISTORY_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise CameraCalibrationError(f"{target}: cannot write the calibration: {exc}") from exc
    return target
