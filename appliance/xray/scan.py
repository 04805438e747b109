"""One X-ray scan as the appliance holds it, whatever file format it arrived in.

Conventions (every X-ray module relies on them):

* Images are 2-D arrays ``(rows, columns)``: **rows are detector channels** (the vertical line of
  detectors the truck drives past), **columns are scan lines** (time, i.e. position along the
  vehicle). A 40' container at scanner resolution is about 1,500 rows x 4,000 columns.
* ``high`` / ``low``: raw **transmission counts** as the scanner exported them (uint16 for 16-bit
  files; float32 when a vendor exports normalised transmission 0..1, ``meta.normalised=True``);
  ``low`` only for dual-energy scanners, always the same shape as ``high``.
* Bright = more photons through = less material. Calibration (``calibration.py``) turns counts into
  attenuation ``-ln(I')`` (0 = air, larger = more material).
* ``scan_id`` is the sha256 of the raw image bytes as received (hash-addressed, never changed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from appliance.errors import ApplianceError

Energy = Literal["high", "low"]


class ScanError(ApplianceError):
    """A scan that cannot be used; the message says which file and what is wrong."""


@dataclass(frozen=True)
class ScanMeta:
    scanner_id: str
    scanned_at: float  # epoch seconds
    lane_id: str | None = None
    plate: str | None = None  # as the scanner's own plate reader or operator entered it
    containers: tuple[str, ...] = ()
    declared_goods: str | None = None  # goods class as declared (e.g. "fruit", "electronics")
    declared_quantity: float | None = None  # declared count (pallets, packages) when the sidecar has it
    normalised: bool = False  # True: the images are already transmission 0..1 (no dark/air calibration)
    energies_kv: tuple[float, ...] = ()  # (high,) or (high, low), as the scanner reports them
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class XrayScan:
    scan_id: str
    high: np.ndarray
    meta: ScanMeta
    low: np.ndarray | None = None
    source: str = ""  # where it came from (file path, "http"), for messages

    def __post_init__(self) -> None:
        if self.high.ndim != 2:
            raise ScanError(f"{self.source or self.scan_id}: an X-ray image must be 2-D, got shape {self.high.shape}")
        if self.low is not None and self.low.shape != self.high.shape:
            raise ScanError(
                f"{self.source or self.scan_id}: dual-energy images differ in size: high {self.high.shape}, "
                f"low {self.low.shape}"
            )

    @property
    def dual_energy(self) -> bool:
        return self.low is not None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.high.shape[0]), int(self.high.shape[1]))
