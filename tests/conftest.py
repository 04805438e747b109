"""Shared fixtures. The suite never needs ../shared: it renders its own images."""

from __future__ import annotations

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")

from hypothesis import settings

# CI machines are shared and slow at times: no per-example deadline (timing is for `appliance bench`).
settings.register_profile("gate", deadline=None, derandomize=True)
settings.load_profile("gate")
