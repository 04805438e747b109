"""Camera calibration tools: chessboard intrinsics recovered from synthetic views of a board projected through a
known camera (with distortion), refusals with clear messages, results and history under calibration/camera/,
and the lane check measured on a simulated lane whose plate boxes are known."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from appliance.calibrate.camera import board_points, calibrate_images, parse_board
from appliance.calibrate.store import CameraCalibrationError
from appliance.cli import main

SIZE = (800, 600)
K = np.array([[700.0, 0, 410.0], [0, 705.0, 290.0], [0, 0, 1]])
DIST = np.array([-0.21, 0.08, 0.0012, -0.0008, 0.0])
BOARD = (9, 6)
SQUARE = 25.0
PX_PER_MM = 6


def board_texture() -> np.ndarray:
    """The printed board: (cols+1) x (rows+1) squares, one square of white margin around it."""
    cols, rows = BOARD[0] + 1, BOARD[1] + 1
    s = int(SQUARE * PX_PER_MM)
    tex = np.full(((rows + 2) * s, (cols + 2) * s), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                tex[(r + 1) * s:(r + 2) * s, (c + 1) * s:(c + 2) * s] = 0
    return tex


def render_view(tex: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """What the distorted camera sees: for each pixel, undistort, back-project onto the board plane, sample."""
    w, h = SIZE
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    pix = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
    norm = cv2.undistortPoints(pix, K, DIST).reshape(-1, 2)
    r, _ = cv2.Rodrigues(rvec)
    plane_to_norm = np.column_stack([r[:, 0], r[:, 1], tvec.ravel()])
    inv = np.linalg.inv(plane_to_norm)
    pts = inv @ np.vstack([norm.T, np.ones(len(norm))])
    x_mm, y_mm = pts[0] / pts[2], pts[1] / pts[2]
    # board point (0, 0) is the first inner corner: one margin square and one board square from the texture edge
    s = SQUARE * PX_PER_MM
    map_x = (x_mm * PX_PER_MM + 2 * s).reshape(h, w).astype(np.float32)
    map_y = (y_mm * PX_PER_MM + 2 * s).reshape(h, w).astype(np.float32)
    img = cv2.remap(tex, map_x, map_y, cv2.INTER_LINEAR, borderValue=200)
    return cv2.GaussianBlur(img, (3, 3), 0.6)


def write_views(folder: Path, n: int, seed: int = 7) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tex = board_texture()
    centre = board_points(BOARD, SQUARE).mean(axis=0)
    for i in range(n):
        rvec = np.radians(rng.uniform([-30, -30, -15], [30, 30, 15])).reshape(3, 1)
        r, _ = cv2.Rodrigues(rvec)
        z = rng.uniform(420, 620)
        offset = rng.uniform([-150, -100], [150, 100])
        tvec = (np.array([offset[0], offset[1], z]) - r @ centre).reshape(3, 1)
        cv2.imwrite(str(folder / f"view{i:02d}.png"), render_view(tex, rvec, tvec))


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("board") / "views"
    write_views(folder, 16)
    return folder


def test_intrinsics_are_recovered_from_synthetic_views(views: Path) -> None:
    result = calibrate_images(views, BOARD, SQUARE)
    k = result.camera_matrix
    assert len(result.used) >= 10, result.rejected
    assert k[0, 0] == pytest.approx(K[0, 0], rel=0.01) and k[1, 1] == pytest.approx(K[1, 1], rel=0.01)
    assert k[0, 2] == pytest.approx(K[0, 2], abs=4) and k[1, 2] == pytest.approx(K[1, 2], abs=4)
    # k1 and k2 trade off against each other; what must match is the mapping they make: undistorted positions
    # of points across the middle 70 % of the frame (where the views put the board) agree within 3 px
    assert result.distortion[0] == pytest.approx(DIST[0], abs=0.05)
    u, v = np.meshgrid(np.linspace(0.15, 0.85, 9) * SIZE[0], np.linspace(0.15, 0.85, 7) * SIZE[1])
    grid = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2).astype(np.float32)
    true_px = cv2.undistortPoints(grid, K, DIST, P=K).reshape(-1, 2)
    got_px = cv2.undistortPoints(grid, k, result.distortion, P=K).reshape(-1, 2)
    assert float(np.abs(true_px - got_px).max()) < 3.0  # within 0.4 % of the frame width
    assert result.rms_px < 0.5
    assert set(result.per_view_px) == set(result.used) and max(result.per_view_px.values()) < 1.0


def test_too_few_usable_views_are_refused_with_the_reasons(tmp_path: Path, views: Path) -> None:
    folder = tmp_path / "few"
    folder.mkdir()
    for p in sorted(views.iterdir())[:3]:
        (folder / p.name).write_bytes(p.read_bytes())
    cv2.imwrite(str(folder / "blank.png"), np.full((SIZE[1], SIZE[0]), 128, np.uint8))
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CameraCalibrationError) as err:
        calibrate_images(folder, BOARD, SQUARE)
    text = str(err.value)
    assert "3 usable view(s)" in text and "at least 6" in text
    assert "blank.png: no 9x6 board found" in text and "broken.jpg: not a readable image" in text


@pytest.mark.parametrize("board, message", [("9", "COLSxROWS"), ("6x6", "square board is ambiguous"),
                                            ("2x5", "3 or more")])
def test_board_argument_is_checked(board: str, message: str) -> None:
    with pytest.raises(CameraCalibrationError, match=message):
        parse_board(board)


def test_cli_writes_intrinsics_and_history(tmp_path: Path, views: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "calibration" / "camera"
    args = ["calibrate", "camera", "--images", str(views), "--board", "9x6", "--square-mm", "25", "--camera",
            "front", "--out", str(out)]
    assert main(args) == 0
    assert "reprojection error: RMS" in capsys.readouterr().out
    assert main(args) == 0
    saved = json.loads((out / "front" / "intrinsics.json").read_text())
    assert saved["camera_matrix"][0][0] == pytest.approx(K[0, 0], rel=0.01)
    assert saved["board"] == {"inner_corners": [9, 6], "square_mm": 25.0}
    history = [json.loads(line) for line in (out / "front" / "history.jsonl").read_text().splitlines()]
    assert len(history) == 2 and history[0]["replaces"] is None and history[1]["replaces"] == history[0]["sha256"]
    assert main(["calibrate", "camera", "--images", str(views), "--board", "9x6", "--square-mm", "25",
                 "--camera", "../x", "--out", str(out)]) == 2
    assert "camera id '../x'" in capsys.readouterr().err


def test_lane_check_measures_the_plates_of_a_simulated_lane(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from appliance.sim import simulate

    sim = tmp_path / "sim"
    simulate(sim, 1, 3, width=960, height=540)
    out = tmp_path / "cal"
    video = sim / "cameras" / "front.mp4"
    base = ["calibrate", "lane", "--camera", "front", "--frames", str(video), "--every", "3", "--out", str(out)]
    assert main([*base, "--config", str(sim / "lane.yaml")]) == 1  # no roi, no plate size: needs attention
    result = json.loads((out / "front" / "lane_check.json").read_text())
    assert result["plates"] >= 3 and not result["ok"]
    truth = {}
    for line in (sim / "annotations" / "front.jsonl").read_text().splitlines():
        ann = json.loads(line)
        truth[f"frame {ann['frame']}"] = [o["box"] for o in ann["objects"] if o["class"] == "plate"]
    for box in result["boxes"]:  # each measured plate is where the simulator drew one, at its height
        drawn = truth[box["frame"]]
        assert any(abs(box["h"] - t[3]) <= max(3.0, 0.15 * t[3]) and abs(box["y"] - t[1]) <= 6 for t in drawn), box
    # with the suggested values the same frames pass; with a ROI off to the side they do not
    lane = yaml.safe_load((sim / "lane.yaml").read_text())
    front = next(s for s in lane["lanes"][0]["sources"] if s["id"] == "front")
    front.update(roi=result["suggested"]["roi"], plate_height_px=result["suggested"]["plate_height_px"])
    (sim / "good.yaml").write_text(yaml.safe_dump(lane))
    capsys.readouterr()
    assert main([*base, "--config", str(sim / "good.yaml")]) == 0
    assert "OK; suggested" in capsys.readouterr().out
    front.update(roi=[0, 0, 200, 150], plate_height_px=[80, 120])
    (sim / "bad.yaml").write_text(yaml.safe_dump(lane))
    assert main([*base, "--config", str(sim / "bad.yaml")]) == 1
    printed = capsys.readouterr().out
    assert "only 0 % of the plates have their centre inside roi [0, 0, 200, 150]" in printed
    assert "0 % of the plates are 80-120 px high" in printed
    assert len((out / "front" / "history.jsonl").read_text().splitlines()) == 3
