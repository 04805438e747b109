"""``appliance calibrate xray`` (wired in by appliance/cli.py); other ``calibrate`` targets plug in beside it.

``add_parsers(sub)`` adds the ``calibrate`` command and returns its sub-command action, so that a
later target (``calibrate camera``) registers with ``add_xxx_parser(calibrate_sub)`` the same way
``add_xray_parser`` does here.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from appliance.xray.calibration import (
    CALIBRATION_FILE,
    FRAMES_FILE,
    HISTORY_FILE,
    CalibrationError,
    SourceFile,
    XrayCalibration,
    build_calibration,
    calibration_folder,
    save_calibration,
    sha256_bytes,
)
from appliance.xray.materials import MaterialError, fit_material_thresholds, parse_wedge_labels, wedge_ratios
from appliance.xray.scan import ScanMeta, XrayScan

DEFAULT_OUT = "calibration/xray"
MAX_LISTED_BAD_ROWS = 20


def read_frame(path: Path) -> tuple[np.ndarray, str]:
    """A single-channel frame (16-bit PNG/TIFF, or .npy) and the sha256 of the file's bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read: {exc}") from exc
    suffix = path.suffix.lower()
    frame: np.ndarray | None = None
    try:
        if suffix == ".npy":
            frame = np.load(io.BytesIO(data), allow_pickle=False)
        else:
            if suffix in (".tif", ".tiff"):  # tifffile reads float and odd TIFFs OpenCV cannot
                try:
                    import tifffile

                    frame = np.asarray(tifffile.imread(io.BytesIO(data)))
                except Exception:  # any tifffile failure: OpenCV may still read it
                    frame = None
            if frame is None:
                import cv2

                frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except (ValueError, OSError) as exc:
        raise CalibrationError(f"{path}: cannot decode: {exc}") from exc
    if frame is None:
        raise CalibrationError(f"{path}: cannot decode as an image (16-bit PNG/TIFF or .npy expected)")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim != 2:
        raise CalibrationError(f"{path}: shape {frame.shape}; a calibration frame is single-channel "
                               "(rows = detector channels, columns = scan lines)")
    if frame.dtype == np.uint8:
        print(f"note: {path} is 8-bit; a scanner's frames are normally 16-bit")
    return frame, sha256_bytes(data)


def _read_frames(paths: list[str], energy: str, kind: str, sources: list[SourceFile]) -> list[np.ndarray]:
    frames = []
    for p in paths:
        frame, sha = read_frame(Path(p))
        frames.append(frame)
        sources.append(SourceFile(energy, kind, p, sha, (int(frame.shape[0]), int(frame.shape[1]))))
    return frames


def _beam_rows(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        a, b = text.split(":")
        return int(a), int(b)
    except ValueError as exc:
        raise CalibrationError(f"--beam-rows {text!r}: expected START:STOP, e.g. 0:40") from exc


def _fit_wedges(cal: XrayCalibration, args: argparse.Namespace, sources: list[SourceFile]) -> XrayCalibration:
    if not cal.dual_energy:
        raise CalibrationError("--wedge needs a dual-energy calibration (--low-dark and --low-air)")
    if not args.wedge_labels or not args.wedge_low or len(args.wedge_low) != len(args.wedge):
        raise CalibrationError("--wedge needs --wedge-low (one low-energy file per --wedge file, same order) "
                               "and --wedge-labels JSON")
    labels_path = Path(args.wedge_labels)
    try:
        labels = parse_wedge_labels(json.loads(labels_path.read_text(encoding="utf-8")), str(labels_path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{labels_path}: cannot read the wedge labels: {exc}") from exc
    except MaterialError as exc:
        raise CalibrationError(str(exc)) from exc
    samples: dict[Any, list[np.ndarray]] = {}
    for high_path, low_path in zip(args.wedge, args.wedge_low, strict=True):
        name = Path(high_path).name
        if name not in labels:
            raise CalibrationError(f"{labels_path}: no regions for wedge {name!r} (keys are file names: "
                                   f"{sorted(labels)})")
        high, sha = read_frame(Path(high_path))
        low, sha_low = read_frame(Path(low_path))
        sources.append(SourceFile("high", "wedge", high_path, sha, (int(high.shape[0]), int(high.shape[1]))))
        sources.append(SourceFile("low", "wedge", low_path, sha_low, (int(low.shape[0]), int(low.shape[1]))))
        scan = XrayScan(sha, high, ScanMeta(cal.scanner_id, time.time()), low=low, source=high_path)
        att = cal.attenuation(scan)
        try:
            for material, ratios in wedge_ratios(att, labels[name], cal.thresholds.air_attenuation, high_path).items():
                samples.setdefault(material, []).append(ratios)
        except MaterialError as exc:
            raise CalibrationError(str(exc)) from exc
    try:
        fit = fit_material_thresholds({m: np.concatenate(v) for m, v in samples.items()},
                                      cal.thresholds.air_attenuation,
                                      source=f"fitted on {', '.join(Path(p).name for p in args.wedge)}")
    except MaterialError as exc:
        raise CalibrationError(f"{labels_path}: {exc}") from exc
    t = fit.thresholds
    print(f"wedge fit: median R {', '.join(f'{k} {v:.3f}' for k, v in fit.medians.items())}; boundaries "
          f"{t.organic_inorganic:.3f} / {t.inorganic_metal:.3f}; wedge pixels right: "
          f"{', '.join(f'{k} {100 * v:.1f} %' for k, v in fit.accuracy.items())}")
    return dataclasses.replace(cal, thresholds=t)


def format_summary(cal: XrayCalibration) -> str:
    energies = ", ".join(cal.energies)
    lines = [f"scanner {cal.scanner_id}: {cal.rows} rows, {'dual' if cal.dual_energy else 'single'} energy "
             f"({energies}), created {cal.created_at_iso}"]
    head = (f"{'energy':<7}{'dark cols':>10}{'air cols':>9}{'dark':>10}{'dark noise':>12}{'air-dark':>10}"
            f"{'gain spread':>13}{'gain min..max':>15}{'air noise':>11}{'max A':>7}{'bad rows':>10}")
    lines.append(head)
    for e, s in cal.stats().items():
        lines.append(f"{e:<7}{s['dark_columns']:>10.0f}{s['air_columns']:>9.0f}{s['dark_median']:>10.1f}"
                     f"{s['dark_noise_median']:>12.2f}{s['span_median']:>10.0f}{s['gain_spread_pct']:>11.2f} %"
                     f"{s['gain_min']:>9.2f}..{s['gain_max']:<4.2f}{s['air_noise_median_pct']:>9.2f} %"
                     f"{s['max_attenuation']:>7.1f}{s['bad_rows']:>10.0f}")
    lines.append(f"bad rows (interpolated in every energy): {len(cal.repaired_rows)}"
                 + (f" of {cal.rows}" if cal.repaired_rows else ""))
    for b in cal.bad_rows[:MAX_LISTED_BAD_ROWS]:
        lines.append(f"  row {b.row:<6} {b.energy:<5} {b.reason:<11} {b.detail}")
    if len(cal.bad_rows) > MAX_LISTED_BAD_ROWS:
        lines.append(f"  ... and {len(cal.bad_rows) - MAX_LISTED_BAD_ROWS} more (calibration.json lists them all)")
    t = cal.thresholds
    lines.append(f"material map: air below A {t.air_attenuation:g}; R = A_low/A_high boundaries organic|inorganic "
                 f"{t.organic_inorganic:.3f}, inorganic|metal {t.inorganic_metal:.3f} ({t.source})")
    if cal.beam_reference_rows:
        lines.append(f"beam correction: open-beam reference rows {cal.beam_reference_rows[0]}:"
                     f"{cal.beam_reference_rows[1]}")
    return "\n".join(lines)


def cmd_calibrate_xray(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if bool(args.low_dark) != bool(args.low_air):
        raise CalibrationError("give both --low-dark and --low-air (or neither)")
    if args.wedge_low and not args.wedge:
        raise CalibrationError("--wedge-low needs --wedge")
    out = Path(args.out)
    calibration_folder(out, args.scanner)  # checks the id before any file is read
    sources: list[SourceFile] = []
    dark = {"high": _read_frames(args.dark, "high", "dark", sources)}
    air = {"high": _read_frames(args.air, "high", "air", sources)}
    if args.low_dark:
        dark["low"] = _read_frames(args.low_dark, "low", "dark", sources)
        air["low"] = _read_frames(args.low_air, "low", "air", sources)
    t_read = time.perf_counter()
    cal = build_calibration(args.scanner, dark, air, sources=sources, beam_reference_rows=_beam_rows(args.beam_rows))
    if args.wedge:
        cal = _fit_wedges(cal, args, sources)
        cal = dataclasses.replace(cal, sources=tuple(sources))
    t_build = time.perf_counter()
    folder = save_calibration(cal, out, history={"built_by": "appliance calibrate xray",
                                                 "build_seconds": round(t_build - t_read, 3)})
    print(format_summary(cal))
    print(f"time: read {t_read - t0:.2f} s, build {t_build - t_read:.2f} s")
    print(f"wrote {folder / CALIBRATION_FILE} and {folder / FRAMES_FILE}; recorded in {folder / HISTORY_FILE}")
    return 0


def add_xray_parser(calibrate_sub: argparse._SubParsersAction) -> None:
    p = calibrate_sub.add_parser("xray", help="X-ray scanner: dark/air frames -> per-row calibration, bad rows",
                                 description="Builds calibration/xray/<scanner>/ from dark (beam off) and air "
                                             "(open beam) frames; docs/XRAY_CALIBRATION.md.")
    p.add_argument("--scanner", required=True, help="scanner id, as the scans' metadata carry it")
    p.add_argument("--dark", nargs="+", required=True, metavar="FILE", help="high-energy dark frame(s)")
    p.add_argument("--air", nargs="+", required=True, metavar="FILE", help="high-energy air (open-beam) frame(s)")
    p.add_argument("--low-dark", nargs="+", metavar="FILE", help="low-energy dark frame(s) (dual-energy scanners)")
    p.add_argument("--low-air", nargs="+", metavar="FILE", help="low-energy air frame(s)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"calibration root (default {DEFAULT_OUT})")
    p.add_argument("--beam-rows", metavar="START:STOP",
                   help="rows that see open beam above every vehicle: per-column beam-intensity correction")
    p.add_argument("--wedge", nargs="+", metavar="FILE", help="step-wedge scan(s), high energy: fit the "
                   "material thresholds")
    p.add_argument("--wedge-low", nargs="+", metavar="FILE", help="the same wedge scan(s), low energy")
    p.add_argument("--wedge-labels", metavar="JSON",
                   help='{"wedges": {"FILE NAME": [{"material": "organic", "rows": [r0, r1], "cols": [c0, c1]}]}}')
    p.set_defaults(func=cmd_calibrate_xray)


def add_parsers(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The ``calibrate`` command with its ``xray`` target; returns the action other targets add to."""
    calibrate = sub.add_parser("calibrate", help="build calibration data (xray: scanner dark/air frames)")
    calibrate_sub = calibrate.add_subparsers(dest="calibrate_target", required=True, metavar="TARGET")
    add_xray_parser(calibrate_sub)
    return calibrate_sub
