"""Typed results that analyzers return: small frozen dataclasses, checked on creation.

Every analyzer takes an image (BGR ``numpy.ndarray``) and returns a tuple of these.
Coordinates are pixels in the image the analyzer was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class BBox:
    """Axis-aligned box: top-left corner plus width and height, in pixels."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.w < 0 or self.h < 0:
            raise ValueError(f"BBox width/height must be >= 0, got w={self.w} h={self.h}")

    @property
    def area(self) -> int:
        return self.w * self.h

    def scaled(self, factor: float, dx: int = 0, dy: int = 0) -> BBox:
        """This box multiplied by ``factor`` then shifted by (dx, dy)."""
        return BBox(
            round(self.x * factor) + dx,
            round(self.y * factor) + dy,
            round(self.w * factor),
            round(self.h * factor),
        )

    @staticmethod
    def from_points(points: list[tuple[float, float]] | list[list[float]]) -> BBox:
        xs = [float(p[0]) for p in points]
        ys = [float(p[1]) for p in points]
        x0, y0 = int(min(xs)), int(min(ys))
        return BBox(x0, y0, int(max(xs)) - x0, int(max(ys)) - y0)


def _check_confidence(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"confidence must be within 0..1, got {value}")


@dataclass(frozen=True)
class TextLine:
    """One line of text found by the OCR engine (detector box + recognised text)."""

    text: str
    confidence: float
    bbox: BBox
    polygon: tuple[tuple[float, float], ...] = ()
    # Per output character, the recogniser's best few (character, probability) choices,
    # so grammars can correct O/0, B/8 ... with evidence instead of guessing.
    alternatives: tuple[tuple[tuple[str, float], ...], ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        _check_confidence(self.confidence)


CodeFormat = str  # zxing-cpp format names: "QRCode", "Code128", "EAN13", ...


@dataclass(frozen=True)
class CodeRead:
    """A decoded QR code or 1-D barcode."""

    text: str
    format: CodeFormat
    bbox: BBox | None
    decoder: Literal["zxing", "pyzbar", "both"]
    # Structured-append position (index, count) when the symbol is one part of a sequence.
    sequence: tuple[int, int] | None = None
    raw: bytes = b""


@dataclass(frozen=True)
class PlateRead:
    """A licence plate, normalised by the VN/CN grammar.

    ``text`` is the canonical form: VN ``29C-123.45`` / ``51R-141.39``, CN ``桂A12345``
    (no separator dot), CN trailer ``桂A1234挂``.
    """

    text: str
    country: Literal["VN", "CN"]
    layout: Literal["one_line", "two_line"]
    colour: Literal["white", "yellow", "blue", "red", "green", "unknown"]
    confidence: float
    bbox: BBox | None
    raw_text: str = ""
    is_trailer: bool = False

    def __post_init__(self) -> None:
        _check_confidence(self.confidence)
        if not self.text:
            raise ValueError("PlateRead.text must not be empty")


@dataclass(frozen=True)
class ContainerRead:
    """An ISO 6346 container number whose check digit holds.

    ``verified`` is True when the check digit held on the text as read (a read). When it is
    False the OCR text did not verify and ``number`` is only the most likely of the
    check-digit-valid ``candidates`` (best first): the lane must not treat it as a read.
    """

    number: str
    confidence: float
    bbox: BBox | None
    size_type: str | None = None
    candidates: tuple[str, ...] = ()
    verified: bool = True

    def __post_init__(self) -> None:
        _check_confidence(self.confidence)
        if len(self.number) != 11:
            raise ValueError(f"container number must have 11 characters, got {self.number!r}")


@dataclass(frozen=True)
class SealRead:
    """A seal: its serial (from OCR and/or barcode) and whether a seal is present."""

    serial: str | None
    present: bool
    confidence: float
    bbox: BBox | None
    source: Literal["ocr", "barcode", "both", "none"] = "none"

    def __post_init__(self) -> None:
        _check_confidence(self.confidence)


@dataclass(frozen=True)
class DeclarationRead:
    """A customs declaration number (VNACCS: 12 digits) found in a code payload."""

    number: str
    code: CodeRead | None = None

    def __post_init__(self) -> None:
        if len(self.number) != 12 or not self.number.isdigit():
            raise ValueError(f"VNACCS declaration number must be 12 digits, got {self.number!r}")


@dataclass(frozen=True)
class FleetIdRead:
    """The painted fleet ID of a driverless IGV/AGV (no plate), e.g. ``IGV-07``."""

    text: str
    confidence: float
    bbox: BBox | None

    def __post_init__(self) -> None:
        _check_confidence(self.confidence)


Read = PlateRead | ContainerRead | SealRead | CodeRead | DeclarationRead | FleetIdRead


@dataclass(frozen=True)
class Observation:
    """One read made on one frame of one source, at a time (seconds since the epoch)."""

    source_id: str
    ts: float
    read: Read
    evidence_sha256: str | None = None
    extras: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # The model versions that made this read, sorted ``task/name@version`` (see inference/slots.py).
    models: tuple[str, ...] = field(default=(), compare=False)
