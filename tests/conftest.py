"""Shared fixtures. The suite never needs ../shared: it renders its own images."""

from __future__ import annotations

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
