"""Process-wide environment that must be set before ONNX Runtime or Ultralytics load.

ONNX Runtime 1.32 looks up a telemetry host a few seconds after import unless
ORT_DISABLE_TELEMETRY is set; Ultralytics tries to download fonts and install
packages unless told it is offline. A gate box is air-gapped: nothing may leave it.
"""

from __future__ import annotations

import os

_DEFAULTS = {
    "ORT_DISABLE_TELEMETRY": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "False",
    "HF_HUB_OFFLINE": "1",
    # FFmpeg/OpenCV otherwise print decoder chatter straight to stderr, around our logging;
    # the ingest layer reports damaged frames itself, with file and frame index.
    "OPENCV_LOG_LEVEL": "ERROR",
    "OPENCV_FFMPEG_LOGLEVEL": "-8",
}


def apply() -> None:
    """Set the offline/telemetry variables unless the operator set them already."""
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
