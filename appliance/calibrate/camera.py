"""Chessboard intrinsics: camera matrix and distortion from views of a printed board (OpenCV).

Each image is searched for the board's inner corners (``--board 9x6``: 9 by 6 inner corners), refined to
sub-pixel; ``cv2.calibrateCamera`` fits the camera matrix and the distortion (k1, k2, p1, p2, k3). The
RMS reprojection error (pixels) says how well the model fits; per-view errors show a bad view. Fewer than
``MIN_VIEWS`` usable views, or views that all look at the board the same way, give intrinsics nobody
should trust: refused with the list of images where no board was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from appliance.calibrate.store import CameraCalibrationError

MIN_VIEWS = 6
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)


def parse_board(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text or "")
    if not m or int(m[1]) < 3 or int(m[2]) < 3:
        raise CameraCalibrationError(f"--board {text!r}: give the inner corners as COLSxROWS, e.g. 9x6 (3 or more "
                                     "each)")
    cols, rows = int(m[1]), int(m[2])
    if cols == rows:
        raise CameraCalibrationError(f"--board {text}: a square board is ambiguous (rotations look alike); use a "
                                     "board with different corner counts, e.g. 9x6")
    return cols, rows


@dataclass(frozen=True)
class Intrinsics:
    image_size: tuple[int, int]  # width, height
    camera_matrix: np.ndarray  # 3x3
    distortion: np.ndarray  # k1, k2, p1, p2, k3
    rms_px: float
    per_view_px: dict[str, float]
    used: list[str]
    rejected: dict[str, str]  # image -> why

    def to_json(self, camera_id: str, board: tuple[int, int], square_mm: float) -> dict[str, Any]:
        k = self.camera_matrix
        return {
            "format": 1, "camera_id": camera_id, "kind": "intrinsics",
            "board": {"inner_corners": list(board), "square_mm": square_mm},
            "image_size": list(self.image_size),
            "camera_matrix": [[float(v) for v in row] for row in k],
            "distortion": [float(v) for v in self.distortion.ravel()],
            "reprojection_rms_px": round(self.rms_px, 4),
            "per_view_px": {n: round(e, 4) for n, e in self.per_view_px.items()},
            "used": self.used, "rejected": self.rejected,
            "summary": {"fx": round(float(k[0, 0]), 2), "fy": round(float(k[1, 1]), 2), "cx": round(float(k[0, 2]), 2),
                        "cy": round(float(k[1, 2]), 2), "rms_px": round(self.rms_px, 4), "views": len(self.used)},
        }


def board_points(board: tuple[int, int], square_mm: float) -> np.ndarray:
    cols, rows = board
    grid = np.zeros((rows * cols, 3), np.float32)
    grid[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * square_mm
    return grid


def find_corners(gray: np.ndarray, board: tuple[int, int]) -> np.ndarray | None:
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    found, corners = cv2.findChessboardCorners(gray, board, flags=flags)
    if not found:
        return None
    return cv2.cornerSubPix(gray, corners, (5, 5), (-1, -1), _CRITERIA)


def calibrate_images(images_dir: Path, board: tuple[int, int], square_mm: float) -> Intrinsics:
    if square_mm <= 0:
        raise CameraCalibrationError(f"--square-mm must be positive, got {square_mm}")
    if not images_dir.is_dir():
        raise CameraCalibrationError(f"{images_dir}: not a folder of board images")
    paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise CameraCalibrationError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    obj = board_points(board, square_mm)
    object_points, image_points, used = [], [], []
    rejected: dict[str, str] = {}
    size: tuple[int, int] | None = None
    for path in paths:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            rejected[path.name] = "not a readable image"
            continue
        here = (gray.shape[1], gray.shape[0])
        if size is None:
            size = here
        elif here != size:
            rejected[path.name] = f"size {here[0]}x{here[1]} differs from the first image's {size[0]}x{size[1]}"
            continue
        corners = find_corners(gray, board)
        if corners is None:
            rejected[path.name] = f"no {board[0]}x{board[1]} board found"
            continue
        object_points.append(obj)
        image_points.append(corners)
        used.append(path.name)
    if len(used) < MIN_VIEWS or size is None:
        listed = "; ".join(f"{n}: {why}" for n, why in list(rejected.items())[:10])
        raise CameraCalibrationError(
            f"{images_dir}: {len(used)} usable view(s) of the {board[0]}x{board[1]} board, at least {MIN_VIEWS} are "
            f"needed (tilt the board differently in each, cover the corners of the frame)"
            + (f"; rejected: {listed}" if listed else ""))
    rms, k, dist, rvecs, tvecs = cv2.calibrateCamera(object_points, image_points, size, None, None)
    per_view: dict[str, float] = {}
    for name, o, i, r, t in zip(used, object_points, image_points, rvecs, tvecs, strict=True):
        projected, _ = cv2.projectPoints(o, r, t, k, dist)
        diff = projected.reshape(-1, 2) - np.asarray(i).reshape(-1, 2)
        per_view[name] = float(np.sqrt(np.mean(np.sum(diff ** 2, axis=1))))
    return Intrinsics(size, k, dist.ravel()[:5], float(rms), per_view, used, rejected)
