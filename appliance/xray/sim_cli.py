"""``appliance simulate-xray``: render synthetic X-ray cargo scans with ground truth (wired in by appliance/cli.py).

Writes DIR/scans (16-bit PNG pairs + JSON sidecars: an X-ray drop folder), DIR/masks, DIR/calibration
(dark and air frames) and DIR/truth.json; the layout is in docs/XRAY.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_simulate_xray(args: argparse.Namespace) -> int:
    from appliance.sim.xray import simulate_xray

    goods = [g.strip() for g in args.goods.split(",") if g.strip()] if args.goods else None

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{done}/{total} scans", end="" if done < total else "\n", file=sys.stderr, flush=True)

    result = simulate_xray(
        Path(args.out), args.scans, args.seed, scale=args.scale, anomaly_share=args.anomaly_share,
        mismatch_share=args.mismatch_share, goods=goods, overwrite=args.overwrite, progress=progress,
    )  # fmt: skip
    anomalies = ", ".join(f"{k} {v}" for k, v in sorted(result.anomalies.items())) or "none"
    mismatches = ", ".join(f"{k} {v}" for k, v in sorted(result.mismatches.items())) or "none"
    print(f"{result.scans} scans in {result.elapsed_s:.1f} s -> {result.out_dir}")
    print(f"  anomalies: {anomalies}; manifest mismatches: {mismatches}")
    print(f"  truth: {result.truth_path}; drop folder: {result.out_dir / 'scans'}")
    return 0


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate-xray", help="render synthetic X-ray cargo scans (dual energy) with ground truth")
    p.add_argument("--out", required=True, help="output folder (must be empty unless --overwrite)")
    p.add_argument("--scans", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=float, default=1.0,
                   help="1.0: scanner resolution (40' about 1,500 x 4,000); 0.25 for quick sets")
    p.add_argument("--anomaly-share", type=_share, default=0.3, help="share of scans with a TIP anomaly")
    p.add_argument("--mismatch-share", type=_share, default=0.2,
                   help="share of scans whose declared goods class or quantity is wrong")
    p.add_argument("--goods", help="comma-separated goods classes to draw from (default: all)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier simulation in --out")
    p.set_defaults(func=cmd_simulate_xray)
