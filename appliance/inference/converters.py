"""The project's model converters, by the name a manifest's ``source.converter`` gives.

A converter reads a model file shipped in a PyPI package and writes the same network as ONNX,
byte-for-byte the same on every machine (the manifest's sha256 checks the result).
"""

from __future__ import annotations

from pathlib import Path

from appliance.errors import ModelError


def convert(name: str, source: Path, target: Path) -> None:
    """Convert ``source`` with the converter called ``name`` into ``target`` (ONNX)."""
    if name == "dlib-resnet":
        from appliance.faces.dlib_onnx import write

        write(source, target)
        return
    raise ModelError(f"{source}: unknown model converter {name!r}; known: dlib-resnet")
