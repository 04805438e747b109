"""Face descriptors through the project's ONNX Runtime layer.

The default model is dlib's ResNet face descriptor converted to ONNX by ``dlib_onnx.py`` (128-d;
two photos of one person are usually closer than 0.6 in Euclidean distance). Any other
face-embedding model with a manifest can replace it (an ArcFace/SFace-style model: set its
``preprocess`` mean/std and ``chip_size``); the lane compares descriptors by Euclidean distance
after L2 normalisation when the manifest asks for it (``preprocess.normalise: true``), so the
match threshold belongs to the model and is measured by ``appliance eval faces``.
"""

from __future__ import annotations

import numpy as np

from appliance.errors import FrameError
from appliance.inference.slots import InferenceModel


class FaceEmbedder:
    """Aligned face chips (RGB uint8, chip_size x chip_size) -> descriptors (N, D) float32."""

    def __init__(self, model: InferenceModel):
        self.model = model

    @property
    def chip_size(self) -> int:
        return int(self.model.manifest.preprocess.get("chip_size", 150))

    @property
    def padding(self) -> float:
        """Border around the face in the chip, as dlib.get_face_chip takes it."""
        return float(self.model.manifest.preprocess.get("padding", 0.25))

    def embed(self, chips: list[np.ndarray]) -> np.ndarray:
        size = self.chip_size
        if not chips:
            return np.zeros((0, 0), np.float32)
        for chip in chips:
            if not isinstance(chip, np.ndarray) or chip.dtype != np.uint8 or chip.shape != (size, size, 3):
                shape = getattr(chip, "shape", None)
                raise FrameError(f"face embedder: expected {size}x{size}x3 uint8 RGB chips, got {shape}")
        x = np.stack(chips).astype(np.float32).transpose(0, 3, 1, 2)
        pre = self.model.manifest.preprocess
        if "mean" in pre and "std" in pre:
            mean = np.asarray(pre["mean"], np.float32).reshape(1, 3, 1, 1)
            std = np.asarray(pre["std"], np.float32).reshape(1, 3, 1, 1)
            x = (x - mean) / std
        out = self.model.run({self.model.input_names[0]: np.ascontiguousarray(x)})[0].astype(np.float32)
        if pre.get("normalise"):
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two descriptors."""
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))
