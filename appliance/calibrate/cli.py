"""``appliance calibrate camera`` and ``appliance calibrate lane`` (registered beside ``calibrate xray``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.calibrate.store import DEFAULT_ROOT, HISTORY_FILE, camera_folder, save_result

INTRINSICS_FILE = "intrinsics.json"
LANE_FILE = "lane_check.json"


def cmd_camera(args: argparse.Namespace) -> int:
    from appliance.calibrate.camera import calibrate_images, parse_board

    board = parse_board(args.board)
    camera_folder(Path(args.out), args.camera)  # checks the id before any image is read
    result = calibrate_images(Path(args.images), board, args.square_mm)
    path = save_result(Path(args.out), args.camera, INTRINSICS_FILE, result.to_json(args.camera, board,
                                                                                      args.square_mm))
    k = result.camera_matrix
    print(f"camera {args.camera}: {len(result.used)} view(s) used, {len(result.rejected)} rejected; image "
          f"{result.image_size[0]}x{result.image_size[1]}")
    print(f"fx {k[0, 0]:.1f}  fy {k[1, 1]:.1f}  cx {k[0, 2]:.1f}  cy {k[1, 2]:.1f}  distortion "
          + " ".join(f"{v:+.4f}" for v in result.distortion))
    print(f"reprojection error: RMS {result.rms_px:.3f} px; worst view "
          + max(result.per_view_px.items(), key=lambda kv: kv[1])[0]
          + f" {max(result.per_view_px.values()):.3f} px")
    for name, why in result.rejected.items():
        print(f"  rejected {name}: {why}")
    print(f"wrote {path}; recorded in {path.parent / HISTORY_FILE}")
    return 0


def cmd_lane(args: argparse.Namespace) -> int:
    from appliance.calibrate.lane import check_lane, find_source, measure_plates
    from appliance.config import load_config

    config = load_config(Path(args.config))
    camera_folder(Path(args.out), args.camera)
    lane_id, src = find_source(config, args.camera)
    boxes, count, size = measure_plates(config, src.role, Path(args.frames), every=args.every,
                                        max_frames=args.max_frames)
    result = check_lane(args.camera, lane_id, src.roi, src.plate_height_px, boxes, count, size)
    path = save_result(Path(args.out), args.camera, LANE_FILE, result)
    h = result["plate_height_px"]
    print(f"camera {args.camera} (lane {lane_id}): {result['plates']} plate(s) on {count} frame(s); plate height "
          f"p10 {h['p10']:g}, median {h['median']:g}, p90 {h['p90']:g} px")
    for problem in result["problems"]:
        print(f"  check: {problem}")
    s = result["suggested"]
    print(f"{'OK' if result['ok'] else 'NEEDS ATTENTION'}; suggested: roi {s['roi']}, plate_height_px "
          f"{s['plate_height_px']}")
    print(f"wrote {path}; recorded in {path.parent / HISTORY_FILE}")
    return 0 if result["ok"] else 1


def add_camera_parsers(calibrate_sub: argparse._SubParsersAction) -> None:
    p = calibrate_sub.add_parser("camera", help="camera intrinsics from chessboard images",
                                 description="Writes calibration/camera/<ID>/intrinsics.json; "
                                             "docs/CALIBRATION_CAMERA.md.")
    p.add_argument("--images", required=True, help="folder of board images (png/jpg)")
    p.add_argument("--board", required=True, help="inner corners COLSxROWS, e.g. 9x6")
    p.add_argument("--square-mm", type=float, required=True, help="side of one board square in mm")
    p.add_argument("--camera", required=True, help="camera id (the source id in the lane config)")
    p.add_argument("--out", default=str(DEFAULT_ROOT), help=f"calibration root (default {DEFAULT_ROOT})")
    p.set_defaults(func=cmd_camera)
    p = calibrate_sub.add_parser("lane", help="check the lane ROI and the expected plate size on a camera's frames",
                                 description="Writes calibration/camera/<ID>/lane_check.json; exit 1 when the "
                                             "config needs attention.")
    p.add_argument("--config", required=True, help="the lane config (the source's roi and plate_height_px)")
    p.add_argument("--camera", required=True, help="source id of the camera in the config")
    p.add_argument("--frames", required=True, help="folder of frames or a video file from this camera")
    p.add_argument("--every", type=int, default=1, help="read every N-th frame")
    p.add_argument("--max-frames", type=int, default=200, help="read at most this many frames")
    p.add_argument("--out", default=str(DEFAULT_ROOT), help=f"calibration root (default {DEFAULT_ROOT})")
    p.set_defaults(func=cmd_lane)
