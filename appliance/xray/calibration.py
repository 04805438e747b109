"""X-ray flat-field calibration per scanner: dark and air frames, bad detector rows, attenuation.

Conventions are ``scan.py``'s: rows are detector channels, columns are scan lines. Per energy
(``high``, and ``low`` on dual-energy scanners) a calibration holds, per row:

* ``dark``: the counts with the beam off (robust mean over the dark frame's columns);
* ``air``: the counts with the beam on and nothing in it (open beam);
* their noise (robust standard deviation over the columns), and ``gain = (air - dark) / median``.

Rows whose detector is dead (``gain`` tiny), saturated in air, hot (dark offset eating the range)
or noisy (dark or air noise far above the median row's) are *bad rows*: their values are replaced
by interpolation between the nearest good rows above and below, in every energy (so that the
dual-energy ratio stays consistent).

Applying it (``XrayCalibration.attenuation``)::

    I' = (I - dark_row) / (air_row - dark_row), clipped to [eps, 1.5]
    A  = -ln(I')            (0 = air, larger = more material; float32)

``eps`` is the noise floor relative to the median ``air - dark`` range (3 dark-noise sigmas, at
least one count): pixels at or below it are *photon-starved*, get the finite value ``-ln(eps)`` and
are flagged (``Attenuation.starved``: "too dense to see through"). Optional per-column beam
correction: when the top (or bottom) rows of every scan see open beam above the vehicle, their
median attenuation per column measures the source's pulse-to-pulse output and is subtracted from
the column (``beam_reference_rows``). A normalised scan (``meta.normalised``) skips dark/air.

On disk: ``<root>/<scanner_id>/calibration.json`` + ``frames.npz`` (+ ``history.jsonl``, one line
per build). docs/XRAY_CALIBRATION.md has the maths, the files and the command.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import os
import re
import statistics
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np

from appliance.errors import ApplianceError
from appliance.xray.materials import MaterialError, MaterialThresholds
from appliance.xray.scan import XrayScan

FORMAT = "appliance.xray.calibration"
FORMAT_VERSION = 1
CALIBRATION_FILE = "calibration.json"
FRAMES_FILE = "frames.npz"
HISTORY_FILE = "history.jsonl"
ENERGIES = ("high", "low")
FRAME_KINDS = ("dark", "air", "dark_noise", "air_noise")
MAX_TRANSMISSION = 1.5  # I' above this is clipped (noise, or a row brighter than its air level)
NORMALISED_EPS = 1e-4  # noise floor for scans the vendor already normalised (A at most 9.2)
MAX_BEAM_CORRECTION = 0.25  # columns whose reference rows attenuate more than this are not corrected
_SCANNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CalibrationError(ApplianceError):
    """A calibration that cannot be built, read or used; the message names the file or scan."""


@dataclass(frozen=True)
class BadRowRules:
    """How bad detector rows are recognised (all relative to the median row)."""

    dead_gain: float = 0.2  # (air - dark) below this share of the median range: dead
    hot_dark: float = 0.5  # dark offset above the median dark by this share of the median range: hot
    dark_noise_factor: float = 5.0  # dark noise above this many times the median dark noise: noisy
    air_noise_factor: float = 4.0  # relative air noise above this many times the median: noisy
    saturation: float = 0.995  # air at or above this share of the file's full scale (integer frames): saturated
    max_bad_share: float = 0.1  # more bad rows than this share: the frames are wrong, refuse
    trim: float = 0.1  # share of columns dropped at each end per row before mean and noise

    def to_json(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BadRowRules:
        return cls(**{k: float(v) for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class BadRow:
    row: int
    energy: str
    reason: str  # dead | saturated | hot | noisy-dark | noisy-air
    detail: str = ""


@dataclass(frozen=True)
class SourceFile:
    """A frame file the calibration was built from."""

    energy: str
    kind: str  # dark | air | wedge
    path: str
    sha256: str
    shape: tuple[int, int]


@dataclass(frozen=True, eq=False)
class EnergyFrames:
    """One energy's per-row calibration vectors (float64, length = rows)."""

    energy: str
    dark: np.ndarray
    air: np.ndarray
    dark_noise: np.ndarray
    air_noise: np.ndarray
    dark_columns: int
    air_columns: int
    count_quantum: float = 1.0  # 1 count for integer frames, 0 for float frames
    full_scale: float | None = 65535.0  # the frames' integer full scale (saturation check), None for float

    @property
    def span(self) -> np.ndarray:
        out: np.ndarray = self.air - self.dark
        return out

    @cached_property
    def median_span(self) -> float:
        return float(np.median(self.span))

    @cached_property
    def gain(self) -> np.ndarray:
        return self.span / self.median_span

    @cached_property
    def eps(self) -> float:
        """Transmission at or below which a pixel is photon-starved."""
        floor = max(3.0 * float(np.median(self.dark_noise)), self.count_quantum)
        return float(min(max(floor / self.median_span, 1e-6), 0.1))

    @property
    def max_attenuation(self) -> float:
        return -math.log(self.eps)


@dataclass(frozen=True, eq=False)
class Attenuation:
    """``-ln(I')`` per pixel, float32, same shape as the scan."""

    high: np.ndarray
    low: np.ndarray | None
    starved: np.ndarray  # bool: high energy photon-starved (shown as "too dense")
    starved_low: np.ndarray | None  # bool: low energy photon-starved
    max_attenuation: float  # the value starved high-energy pixels carry
    repaired_rows: tuple[int, ...] = ()
    beam_corrected: bool = False

    @property
    def dual_energy(self) -> bool:
        return self.low is not None


def _now_iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_scanner_id(scanner_id: str) -> str:
    if not isinstance(scanner_id, str) or not _SCANNER_ID.match(scanner_id):
        raise CalibrationError(f"scanner id {scanner_id!r}: use 1-64 letters, digits, '.', '_' or '-' "
                               "(it names the calibration folder)")
    return scanner_id


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Building


def _trimmed_rows(frame: np.ndarray, trim: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-row trimmed mean and Gaussian-equivalent trimmed standard deviation over the columns."""
    n = frame.shape[1]
    k = int(n * trim) if n >= 5 else 0
    x = np.sort(frame, axis=1)[:, k:n - k] if k else frame
    mean = x.mean(axis=1, dtype=np.float64)
    if x.shape[1] < 2:
        return mean, np.zeros(frame.shape[0])
    std = x.std(axis=1, dtype=np.float64)
    if k:  # the standard deviation of a normal truncated at the trimmed share, to correct back
        p = k / n
        a = statistics.NormalDist().inv_cdf(1.0 - p)
        std = std / math.sqrt(max(1.0 - 2.0 * a * statistics.NormalDist().pdf(a) / (1.0 - 2.0 * p), 1e-6))
    return mean, std


def _as_frame(frames: np.ndarray | Sequence[np.ndarray], what: str) -> tuple[np.ndarray, float, float | None]:
    """One (rows, columns) float64 frame from one or several, its count quantum and integer full scale."""
    parts = [frames] if isinstance(frames, np.ndarray) else list(frames)
    if not parts:
        raise CalibrationError(f"{what}: no frames given")
    rows = None
    integer = True
    full_scale = 0.0
    for i, part in enumerate(parts):
        if not isinstance(part, np.ndarray) or part.ndim != 2:
            shape = getattr(part, "shape", None)
            raise CalibrationError(f"{what} frame {i}: expected a 2-D (rows, columns) array, got shape {shape}")
        if part.size == 0:
            raise CalibrationError(f"{what} frame {i}: empty")
        if not (np.issubdtype(part.dtype, np.integer) or np.issubdtype(part.dtype, np.floating)):
            raise CalibrationError(f"{what} frame {i}: not numeric ({part.dtype})")
        if rows is not None and part.shape[0] != rows:
            raise CalibrationError(f"{what} frame {i}: {part.shape[0]} rows, the first frame has {rows}")
        rows = part.shape[0]
        if np.issubdtype(part.dtype, np.integer):
            full_scale = max(full_scale, float(np.iinfo(part.dtype).max))
        else:
            integer = False
            if not np.isfinite(part).all():
                raise CalibrationError(f"{what} frame {i}: holds NaN or infinite values")
    frame = np.concatenate([p.astype(np.float32) for p in parts], axis=1)
    return frame, (1.0 if integer else 0.0), (full_scale if integer else None)


def _energy_frames(energy: str, dark_in: np.ndarray | Sequence[np.ndarray],
                   air_in: np.ndarray | Sequence[np.ndarray], rules: BadRowRules) -> EnergyFrames:
    dark_frame, dq, _ = _as_frame(dark_in, f"{energy} dark")
    air_frame, aq, full_scale = _as_frame(air_in, f"{energy} air")
    if dark_frame.shape[0] != air_frame.shape[0]:
        raise CalibrationError(f"{energy}: dark frames have {dark_frame.shape[0]} rows, air frames "
                               f"{air_frame.shape[0]}")
    dark, dark_noise = _trimmed_rows(dark_frame, rules.trim)
    air, _ = _trimmed_rows(air_frame, rules.trim)
    span = air - dark
    median_span = float(np.median(span))
    if not median_span > 0:
        raise CalibrationError(
            f"{energy}: the air frames are not brighter than the dark frames (median air - dark = "
            f"{median_span:.1f} counts): are --dark and --air swapped, or was the beam off?"
        )
    # air noise without the source's pulse-to-pulse output (common to all rows of a column)
    rel = (air_frame - dark[:, None].astype(np.float32)) / np.maximum(span, 1e-9)[:, None].astype(np.float32)
    good = span > rules.dead_gain * median_span
    beam = np.median(rel[good], axis=0) if good.any() else np.ones(rel.shape[1], np.float32)
    beam = np.where(np.abs(beam) > 1e-6, beam, 1.0).astype(np.float32)
    _, rel_noise = _trimmed_rows(rel / beam[None, :], rules.trim)
    air_noise = rel_noise * np.abs(span)
    quantum = 1.0 if (dq and aq) else 0.0
    return EnergyFrames(energy, dark, air, dark_noise, air_noise, int(dark_frame.shape[1]), int(air_frame.shape[1]),
                        count_quantum=quantum, full_scale=full_scale)


def find_bad_rows(frames: EnergyFrames, rules: BadRowRules) -> list[BadRow]:
    """Dead, saturated, hot and noisy detector rows of one energy (one entry per row, first reason wins)."""
    span, gain = frames.span, frames.gain
    med_span = frames.median_span
    dark_med = float(np.median(frames.dark))
    dn_floor = max(float(np.median(frames.dark_noise)), 0.5 * frames.count_quantum, 1e-9 * med_span)
    rel_air = frames.air_noise / np.maximum(np.abs(span), 1e-12)
    an_floor = max(float(np.median(rel_air)), 0.5 * frames.count_quantum / med_span, 1e-9)
    out: list[BadRow] = []
    for r in range(span.size):
        reason, detail = "", ""
        if gain[r] < rules.dead_gain:
            reason, detail = "dead", f"air - dark {span[r]:.1f} counts, median {med_span:.1f}"
        elif frames.full_scale is not None and frames.air[r] >= rules.saturation * frames.full_scale:
            reason, detail = "saturated", f"air {frames.air[r]:.0f} of full scale {frames.full_scale:.0f}"
        elif frames.dark[r] - dark_med > rules.hot_dark * med_span:
            reason, detail = "hot", f"dark {frames.dark[r]:.1f} counts, median {dark_med:.1f}"
        elif frames.dark_noise[r] > rules.dark_noise_factor * dn_floor:
            reason, detail = "noisy-dark", f"dark noise {frames.dark_noise[r]:.2f} counts, median {dn_floor:.2f}"
        elif rel_air[r] > rules.air_noise_factor * an_floor:
            reason, detail = "noisy-air", f"air noise {100 * rel_air[r]:.2f} %, median {100 * an_floor:.2f} %"
        if reason:
            out.append(BadRow(r, frames.energy, reason, detail))
    return out


def build_calibration(
    scanner_id: str,
    dark: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    air: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    *,
    sources: Iterable[SourceFile] = (),
    thresholds: MaterialThresholds | None = None,
    rules: BadRowRules | None = None,
    beam_reference_rows: tuple[int, int] | None = None,
    created_at: float | None = None,
) -> XrayCalibration:
    """A calibration from dark and air frames per energy (``{"high": frame(s), "low": frame(s)}``).

    Each frame is a 2-D (rows, columns) raw-count array; several frames of one kind are joined
    along the columns. ``high`` is required, ``low`` for dual-energy scanners.
    """
    check_scanner_id(scanner_id)
    rules = rules or BadRowRules()
    if set(dark) != set(air):
        raise CalibrationError(f"dark frames for {sorted(dark)} but air frames for {sorted(air)}: give both per energy")
    if "high" not in dark:
        raise CalibrationError("the high-energy dark and air frames are required")
    unknown = set(dark) - set(ENERGIES)
    if unknown:
        raise CalibrationError(f"unknown energy {sorted(unknown)}: use 'high' and 'low'")
    energies = {e: _energy_frames(e, dark[e], air[e], rules) for e in ENERGIES if e in dark}
    rows = {e: f.dark.size for e, f in energies.items()}
    if len(set(rows.values())) != 1:
        raise CalibrationError(f"the energies have different row counts: {rows}")
    n_rows = rows["high"]
    bad: list[BadRow] = []
    for frames in energies.values():
        bad.extend(find_bad_rows(frames, rules))
    bad_set = {b.row for b in bad}
    if len(bad_set) > rules.max_bad_share * n_rows:
        reasons: dict[str, int] = {}
        for b in bad:
            reasons[f"{b.energy} {b.reason}"] = reasons.get(f"{b.energy} {b.reason}", 0) + 1
        raise CalibrationError(
            f"{len(bad_set)} of {n_rows} rows look bad ({reasons}); more than {rules.max_bad_share:.0%} means the "
            "frames are wrong (beam off during 'air', something in the beam, shutter, wrong files), not the detector"
        )
    cal = XrayCalibration(
        scanner_id=scanner_id,
        rows=n_rows,
        energies=energies,
        bad_rows=tuple(sorted(bad, key=lambda b: (b.row, b.energy))),
        thresholds=thresholds or MaterialThresholds(),
        created_at=time.time() if created_at is None else created_at,
        sources=tuple(sources),
        rules=rules,
        beam_reference_rows=beam_reference_rows,
    )
    cal.check_beam_rows()
    return cal


# ---------------------------------------------------------------------------------------------
# The calibration and its application


@dataclass(frozen=True, eq=False)
class _Plan:
    """Precomputed float32 vectors for the fast path."""

    offset: np.ndarray  # (rows, 1) dark per row
    scale: np.ndarray  # (rows, 1) 1 / (air - dark) per row
    eps: float


@dataclass(frozen=True, eq=False)
class XrayCalibration:
    scanner_id: str
    rows: int
    energies: Mapping[str, EnergyFrames]
    bad_rows: tuple[BadRow, ...]
    thresholds: MaterialThresholds = field(default_factory=MaterialThresholds)
    created_at: float = 0.0
    sources: tuple[SourceFile, ...] = ()
    rules: BadRowRules = field(default_factory=BadRowRules)
    beam_reference_rows: tuple[int, int] | None = None
    folder: Path | None = None  # where it was loaded from (messages)

    @property
    def name(self) -> str:
        return str(self.folder) if self.folder else f"calibration of scanner {self.scanner_id}"

    @property
    def dual_energy(self) -> bool:
        return "low" in self.energies

    @property
    def created_at_iso(self) -> str:
        return _now_iso(self.created_at)

    @cached_property
    def repaired_rows(self) -> tuple[int, ...]:
        """Rows replaced by interpolation in every energy (bad in at least one)."""
        return tuple(sorted({b.row for b in self.bad_rows}))

    def check_beam_rows(self) -> None:
        if self.beam_reference_rows is None:
            return
        r0, r1 = self.beam_reference_rows
        if not (0 <= r0 < r1 <= self.rows) or r1 - r0 < 3:
            raise CalibrationError(f"{self.name}: beam reference rows {r0}:{r1} must be at least 3 rows inside "
                                   f"0:{self.rows}")

    @cached_property
    def _repair(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bad rows, row below, row above, weight of the row above) for interpolation."""
        bad = np.asarray(self.repaired_rows, dtype=np.intp)
        good = np.setdiff1d(np.arange(self.rows), bad)
        if bad.size and not good.size:
            raise CalibrationError(f"{self.name}: every row is bad")
        pos = np.searchsorted(good, bad)
        lo = good[np.clip(pos - 1, 0, good.size - 1)] if good.size else bad
        hi = good[np.clip(pos, 0, good.size - 1)] if good.size else bad
        lo = np.where(pos == 0, hi, lo)  # no good row above: copy the one below (and vice versa)
        hi = np.where(pos == good.size, lo, hi)
        span = (hi - lo).astype(np.float32)
        w = np.where(span > 0, (bad - lo) / np.maximum(span, 1), 0.0).astype(np.float32)
        return bad, lo, hi, w

    @cached_property
    def _plans(self) -> dict[str, _Plan]:
        out = {}
        bad = np.asarray(self.repaired_rows, dtype=np.intp)
        for e, f in self.energies.items():
            span = f.span.copy()
            offset = f.dark.copy()
            span[bad] = 1.0  # overwritten by interpolation afterwards; keeps the arithmetic finite
            offset[bad] = 0.0
            span = np.where(np.abs(span) > 1e-9, span, 1.0)
            out[e] = _Plan(offset.astype(np.float32)[:, None], (1.0 / span).astype(np.float32)[:, None], f.eps)
        return out

    def check_scan(self, scan: XrayScan) -> None:
        """Refuses a scan this calibration cannot correct, saying why."""
        what = scan.source or scan.scan_id
        rows, cols = scan.shape
        if rows != self.rows:
            hint = " (rotated? rows must be detector channels)" if cols == self.rows else ""
            raise CalibrationError(
                f"{what}: the scan has {rows} detector rows but {self.name} has {self.rows}{hint}; "
                "a different scanner, a cropped export, or a changed detector (recalibrate)"
            )
        if scan.low is not None and not self.dual_energy and not scan.meta.normalised:
            raise CalibrationError(f"{what}: a dual-energy scan, but {self.name} has no low-energy frames")

    def attenuation(self, scan: XrayScan, *, beam_correction: bool | None = None) -> Attenuation:
        """``-ln(I')`` of both energies, bad rows repaired; see the module docstring.

        ``beam_correction``: None = when the calibration has ``beam_reference_rows``.
        """
        self.check_scan(scan)
        if beam_correction is None:
            beam_correction = self.beam_reference_rows is not None
        elif beam_correction and self.beam_reference_rows is None:
            raise CalibrationError(f"{self.name}: beam correction asked for, but no beam reference rows are set")
        if scan.meta.normalised:
            high, starved, a_max = _normalised(scan.high)
            low, starved_low = (None, None) if scan.low is None else _normalised(scan.low)[:2]
        else:
            high, starved, a_max = _flat_field(scan.high, self._plans["high"])
            low, starved_low = (None, None) if scan.low is None else _flat_field(scan.low, self._plans["low"])[:2]
        bad, lo, hi, w = self._repair
        if bad.size:
            for img, mask in ((high, starved), (low, starved_low)):
                if img is None or mask is None:
                    continue
                img[bad] = img[lo] * (1.0 - w)[:, None] + img[hi] * w[:, None]
                mask[bad] = mask[lo] | mask[hi]
        if beam_correction:
            assert self.beam_reference_rows is not None
            _beam_correct(high, self.beam_reference_rows)
            if low is not None:
                _beam_correct(low, self.beam_reference_rows)
        return Attenuation(high, low, starved, starved_low, a_max, self.repaired_rows, bool(beam_correction))

    def stats(self) -> dict[str, dict[str, float]]:
        """Summary per energy: columns used, dark level and noise, range, gain spread, air noise, eps."""
        bad_rows = np.asarray(self.repaired_rows, dtype=np.intp)
        out = {}
        for e, f in self.energies.items():
            good = np.ones(self.rows, bool)
            good[bad_rows] = False
            gain = f.gain[good] if good.any() else f.gain
            out[e] = {
                "dark_columns": f.dark_columns,
                "air_columns": f.air_columns,
                "dark_median": float(np.median(f.dark)),
                "dark_noise_median": float(np.median(f.dark_noise)),
                "air_median": float(np.median(f.air)),
                "span_median": f.median_span,
                "air_noise_median_pct": float(100 * np.median(f.air_noise / np.maximum(np.abs(f.span), 1e-12))),
                "gain_spread_pct": float(100 * np.std(gain)),
                "gain_min": float(gain.min()),
                "gain_max": float(gain.max()),
                "eps": f.eps,
                "max_attenuation": f.max_attenuation,
                "bad_rows": sum(1 for b in self.bad_rows if b.energy == e),
            }
        return out

    def to_json(self, frames_sha256: str) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "scanner_id": self.scanner_id,
            "created_at": self.created_at_iso,
            "rows": self.rows,
            "energies": list(self.energies),
            "frames": {"file": FRAMES_FILE, "sha256": frames_sha256},
            "frame_info": {e: {"dark_columns": f.dark_columns, "air_columns": f.air_columns,
                               "count_quantum": f.count_quantum, "full_scale": f.full_scale}
                           for e, f in self.energies.items()},
            "bad_rows": [{"row": b.row, "energy": b.energy, "reason": b.reason, "detail": b.detail}
                         for b in self.bad_rows],
            "repaired_rows": list(self.repaired_rows),
            "thresholds": self.thresholds.to_json(),
            "bad_row_rules": self.rules.to_json(),
            "beam_reference_rows": list(self.beam_reference_rows) if self.beam_reference_rows else None,
            "sources": [{"energy": s.energy, "kind": s.kind, "path": s.path, "sha256": s.sha256,
                         "shape": list(s.shape)} for s in self.sources],
            "stats": self.stats(),
        }


def _flat_field(image: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray, float]:
    """float32 -ln((I - dark) / (air - dark)), clipped; and the starved mask."""
    out = np.empty(image.shape, dtype=np.float32)
    np.subtract(image, plan.offset, out=out, dtype=np.float32)
    np.multiply(out, plan.scale, out=out)
    return _neg_log(out, plan.eps)


def _normalised(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    if np.issubdtype(image.dtype, np.integer):  # normalised integers: full scale means transmission 1
        out = np.multiply(image, np.float32(1.0 / np.iinfo(image.dtype).max), dtype=np.float32)
    else:
        out = image.astype(np.float32, copy=True)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=MAX_TRANSMISSION, neginf=0.0)
    return _neg_log(out, NORMALISED_EPS)


def _neg_log(t: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, float]:
    """In place: t -> -ln(clip(t, eps, 1.5)); returns (t, starved mask, -ln(eps))."""
    starved = t <= eps
    np.clip(t, np.float32(eps), np.float32(MAX_TRANSMISSION), out=t)
    np.log(t, out=t)
    np.negative(t, out=t)
    return t, starved, -math.log(eps)


def _beam_correct(a: np.ndarray, rows: tuple[int, int]) -> None:
    """In place: subtract per column the median attenuation of the open-beam reference rows."""
    ref = np.median(a[rows[0]:rows[1]], axis=0)
    ref[np.abs(ref) > MAX_BEAM_CORRECTION] = 0.0  # the vehicle reaches into the reference rows: leave alone
    a -= ref[None, :].astype(np.float32)


def attenuation(scan: XrayScan, calibration: XrayCalibration | None) -> Attenuation:
    """Attenuation of a scan: with its scanner's calibration, or none for a normalised scan."""
    if calibration is not None:
        return calibration.attenuation(scan)
    if not scan.meta.normalised:
        raise CalibrationError(f"{scan.source or scan.scan_id}: raw counts from scanner {scan.meta.scanner_id!r} need "
                               "that scanner's calibration (appliance calibrate xray)")
    high, starved, a_max = _normalised(scan.high)
    low, starved_low = (None, None) if scan.low is None else _normalised(scan.low)[:2]
    return Attenuation(high, low, starved, starved_low, a_max)


# ---------------------------------------------------------------------------------------------
# Files


def calibration_folder(root: Path, scanner_id: str) -> Path:
    return Path(root) / check_scanner_id(scanner_id)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_calibration(cal: XrayCalibration, root: Path, history: Mapping[str, Any] | None = None) -> Path:
    """Writes ``<root>/<scanner_id>/{frames.npz, calibration.json}`` and appends to its ``history.jsonl``.

    ``history``: extra fields for the history line (e.g. the command that built it).
    """
    folder = calibration_folder(root, cal.scanner_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        previous = folder / CALIBRATION_FILE
        replaces = sha256_file(previous) if previous.is_file() else None
        arrays: dict[str, np.ndarray] = {}
        for e, f in cal.energies.items():
            for kind in FRAME_KINDS:
                arrays[f"{e}_{kind}"] = np.asarray(getattr(f, kind), dtype=np.float64)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        frames_bytes = buf.getvalue()
        frames_sha = sha256_bytes(frames_bytes)
        _write_atomic(folder / FRAMES_FILE, frames_bytes)
        doc = json.dumps(cal.to_json(frames_sha), indent=2, ensure_ascii=False) + "\n"
        _write_atomic(folder / CALIBRATION_FILE, doc.encode("utf-8"))
        record = {
            "created_at": cal.created_at_iso,
            "scanner_id": cal.scanner_id,
            "rows": cal.rows,
            "energies": list(cal.energies),
            "bad_rows": list(cal.repaired_rows),
            "thresholds": cal.thresholds.source,
            "calibration_sha256": sha256_bytes(doc.encode("utf-8")),
            "frames_sha256": frames_sha,
            "replaces_sha256": replaces,
            "sources": [{"energy": s.energy, "kind": s.kind, "path": s.path, "sha256": s.sha256} for s in cal.sources],
            **(history or {}),
        }
        with open(folder / HISTORY_FILE, "a", encoding="utf-8") as h:
            h.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise CalibrationError(f"{folder}: cannot write the calibration: {exc}") from exc
    return folder


def _field(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in doc:
        raise CalibrationError(f"{where}: field {key!r} is missing")
    value = doc[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise CalibrationError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def load_calibration(folder: Path) -> XrayCalibration:
    """Reads and checks a calibration folder; every problem is a CalibrationError naming the file."""
    folder = Path(folder)
    json_path, frames_path = folder / CALIBRATION_FILE, folder / FRAMES_FILE
    if not json_path.is_file():
        hint = f" (appliance calibrate xray --scanner {folder.name} ...)" if folder.name else ""
        raise CalibrationError(f"{json_path}: missing; no calibration for this scanner{hint}")
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{json_path}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{json_path}: not valid JSON (line {exc.lineno}): {exc.msg}") from exc
    if not isinstance(doc, dict):
        raise CalibrationError(f"{json_path}: expected a JSON object")
    if doc.get("format") != FORMAT:
        raise CalibrationError(f"{json_path}: not an X-ray calibration (format {doc.get('format')!r}, "
                               f"expected {FORMAT!r})")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise CalibrationError(f"{json_path}: format version {version!r}; this appliance reads version "
                               f"{FORMAT_VERSION} (recalibrate, or upgrade the appliance)")
    scanner_id = _field(doc, "scanner_id", str, json_path)
    if scanner_id != folder.name:
        raise CalibrationError(f"{json_path}: belongs to scanner {scanner_id!r} but lies in folder {folder.name!r}")
    rows = _field(doc, "rows", int, json_path)
    if rows < 1:
        raise CalibrationError(f"{json_path}: rows must be positive, got {rows}")
    energies = _field(doc, "energies", list, json_path)
    if "high" not in energies or not set(energies) <= set(ENERGIES) or len(set(energies)) != len(energies):
        raise CalibrationError(f"{json_path}: energies must be ['high'] or ['high', 'low'], got {energies}")
    frames_meta = _field(doc, "frames", dict, json_path)
    frame_info = _field(doc, "frame_info", dict, json_path)
    try:
        created = dt.datetime.fromisoformat(_field(doc, "created_at", str, json_path).replace("Z", "+00:00"))
        created_at = created.timestamp()
        thresholds = MaterialThresholds.from_json(_field(doc, "thresholds", dict, json_path))
        rules = BadRowRules.from_json(doc.get("bad_row_rules") or {})
        bad_rows = tuple(BadRow(int(b["row"]), str(b["energy"]), str(b["reason"]), str(b.get("detail", "")))
                         for b in _field(doc, "bad_rows", list, json_path))
        sources = tuple(SourceFile(str(s["energy"]), str(s["kind"]), str(s["path"]), str(s["sha256"]),
                                   (int(s["shape"][0]), int(s["shape"][1])))
                        for s in doc.get("sources", []))
        beam = doc.get("beam_reference_rows")
        beam_rows = (int(beam[0]), int(beam[1])) if beam is not None else None
    except (KeyError, TypeError, ValueError, IndexError, MaterialError) as exc:
        raise CalibrationError(f"{json_path}: invalid field: {exc}") from exc
    for b in bad_rows:
        if not 0 <= b.row < rows or b.energy not in energies:
            raise CalibrationError(f"{json_path}: bad row {b.row} ({b.energy}) outside the {rows} rows / {energies}")

    if not frames_path.is_file():
        raise CalibrationError(f"{frames_path}: missing (calibration.json is there, the frames are not)")
    try:
        data = frames_path.read_bytes()
    except OSError as exc:
        raise CalibrationError(f"{frames_path}: cannot read: {exc}") from exc
    if sha256_bytes(data) != frames_meta.get("sha256"):
        raise CalibrationError(f"{frames_path}: sha256 differs from the one in {CALIBRATION_FILE}: the frames were "
                               "changed or damaged after calibration; recalibrate")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k]) for k in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CalibrationError(f"{frames_path}: not a readable .npz: {exc}") from exc
    frames: dict[str, EnergyFrames] = {}
    for e in energies:
        vectors = {}
        for kind in FRAME_KINDS:
            key = f"{e}_{kind}"
            if key not in arrays:
                raise CalibrationError(f"{frames_path}: array {key!r} is missing")
            v = arrays[key]
            if v.shape != (rows,) or not np.issubdtype(v.dtype, np.floating):
                raise CalibrationError(f"{frames_path}: array {key!r} has shape {v.shape} ({v.dtype}), "
                                       f"expected ({rows},) floats as {CALIBRATION_FILE} says")
            if not np.isfinite(v).all():
                raise CalibrationError(f"{frames_path}: array {key!r} holds NaN or infinite values")
            vectors[kind] = v.astype(np.float64)
        info = frame_info.get(e) or {}
        try:
            full_scale = info.get("full_scale")
            frames[e] = EnergyFrames(e, vectors["dark"], vectors["air"], vectors["dark_noise"], vectors["air_noise"],
                                     int(info["dark_columns"]), int(info["air_columns"]),
                                     float(info["count_quantum"]), None if full_scale is None else float(full_scale))
        except (KeyError, TypeError, ValueError) as exc:
            raise CalibrationError(f"{json_path}: frame_info for {e!r} is invalid: {exc}") from exc
        if not frames[e].median_span > 0:
            raise CalibrationError(f"{frames_path}: {e} air is not brighter than dark")
    cal = XrayCalibration(scanner_id, rows, frames, bad_rows, thresholds, created_at, sources, rules, beam_rows,
                          folder=folder)
    try:
        cal.check_beam_rows()
    except CalibrationError as exc:
        raise CalibrationError(f"{json_path}: {exc}") from exc
    return cal


def calibration_for(scan: XrayScan, root: Path) -> XrayCalibration:
    """The calibration of the scanner that made ``scan`` (``<root>/<scanner_id>/``), checked against it."""
    try:
        folder = calibration_folder(root, scan.meta.scanner_id)
    except CalibrationError as exc:
        raise CalibrationError(f"{scan.source or scan.scan_id}: {exc}") from exc
    cal = load_calibration(folder)
    cal.check_scan(scan)
    return cal


def read_history(folder: Path) -> list[dict[str, Any]]:
    """The build records of one scanner's calibration folder, oldest first."""
    path = Path(folder) / HISTORY_FILE
    if not path.is_file():
        return []
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                out.append(cast(dict[str, Any], json.loads(line)))
            except json.JSONDecodeError as exc:
                raise CalibrationError(f"{path}: line {i} is not valid JSON: {exc.msg}") from exc
    return out
