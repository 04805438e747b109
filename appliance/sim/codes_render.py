"""QR codes (segno) and Code 128 barcodes (zxing-cpp writer) as grayscale images.

Both come with their quiet zones (4 modules for QR, 10 for Code 128) and an integer
number of pixels per module so a decoder sees clean edges.
"""

from __future__ import annotations

import logging

import numpy as np
import segno
import zxingcpp

from appliance.errors import SimulationError
from appliance.sim.draw import U8

log = logging.getLogger(__name__)

QR_QUIET_MODULES = 4
CODE128_QUIET_MODULES = 10


def qr_modules(text: str, error: str = "m") -> U8:
    """The QR symbol of ``text`` as a 0/1 module matrix (1 = dark), without quiet zone."""
    if not text:
        raise SimulationError("cannot encode an empty QR payload")
    try:
        symbol = segno.make(text, error=error, micro=False)
    except (ValueError, segno.DataOverflowError) as exc:
        raise SimulationError(f"cannot encode {len(text)} characters as a QR code: {exc}") from exc
    return np.array([list(row) for row in symbol.matrix], dtype=np.uint8)


def qr_image(text: str, module_px: int = 4, *, error: str = "m", quiet: int = QR_QUIET_MODULES) -> U8:
    """A QR code of ``text``: black modules on white, ``module_px`` pixels each, with quiet zone."""
    if module_px < 1:
        raise SimulationError(f"module_px must be >= 1, got {module_px}")
    modules = np.pad(qr_modules(text, error), quiet, constant_values=0)
    img = np.where(modules == 1, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.kron(img, np.ones((module_px, module_px), np.uint8)))


def code128_modules(text: str) -> U8:
    """The bar pattern of a Code 128 symbol of ``text`` (1 = bar), without quiet zones."""
    if not text:
        raise SimulationError("cannot encode an empty Code 128 payload")
    try:
        barcode = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
        image = zxingcpp.write_barcode_to_image(barcode, scale=1, add_hrt=False, add_quiet_zones=False)
    except (ValueError, RuntimeError) as exc:
        raise SimulationError(f"cannot encode {text!r} as Code 128: {exc}") from exc
    row = np.asarray(image, dtype=np.uint8)[0]
    return (row < 128).astype(np.uint8)


def code128_image(text: str, module_px: int = 2, height_px: int = 60, *, quiet: int = CODE128_QUIET_MODULES) -> U8:
    """A Code 128 barcode of ``text``: ``module_px`` pixels per module, ``height_px`` tall."""
    if module_px < 1 or height_px < 1:
        raise SimulationError(f"module_px and height_px must be >= 1, got {module_px}, {height_px}")
    bars = np.pad(code128_modules(text), quiet, constant_values=0)
    row = np.repeat(np.where(bars == 1, 0, 255).astype(np.uint8), module_px)
    return np.ascontiguousarray(np.broadcast_to(row, (height_px, row.size)))


def code_size_modules(text: str, symbology: str) -> tuple[int, int]:
    """(width, height) in modules, quiet zones included; Code 128 height is nominal (0)."""
    if symbology == "QRCode":
        n = qr_modules(text).shape[0] + 2 * QR_QUIET_MODULES
        return n, n
    if symbology == "Code128":
        return code128_modules(text).size + 2 * CODE128_QUIET_MODULES, 0
    raise SimulationError(f"unknown symbology {symbology!r} (expected QRCode or Code128)")
