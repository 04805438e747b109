"""``appliance simulate``: the command-line entry of the lane simulator.

Wire it into the main parser with::

    from appliance.sim.cli import add_cli
    add_cli(subparsers)          # adds the "simulate" sub-command, sets func=run_cli

``run_cli(args)`` returns a process exit status (0 ok, 2 bad request).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from appliance.errors import SimulationError

log = logging.getLogger(__name__)


def add_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``simulate`` on ``subparsers``; returns its parser."""
    p = subparsers.add_parser(
        "simulate",
        help="render a simulated cargo lane (videos, kiosk images, truth, manifest)",
        description="Render a simulated lane into --out (layout: docs/SIMULATOR.md). Deterministic per --seed.",
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (must be empty unless --overwrite)")
    p.add_argument("--vehicles", type=int, default=20, help="number of passages (default 20)")
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    timing = p.add_mutually_exclusive_group()
    timing.add_argument("--rate-per-day", type=float, default=None, help="Poisson arrivals, e.g. 3500 trucks/day")
    timing.add_argument("--gap-s", type=float, default=None, help="empty-lane seconds between vehicles (default 2)")
    p.add_argument("--fps", type=float, default=5.0, help="camera frame rate (default 5)")
    p.add_argument("--width", type=int, default=1920, help="frame width (default 1920)")
    p.add_argument("--height", type=int, default=1080, help="frame height (default 1080)")
    p.add_argument("--night-share", type=float, default=0.3, help="share of passages at night (default 0.3)")
    p.add_argument(
        "--mismatch-share", type=float, default=0.2, help="share of passages with a manifest mismatch (default 0.2)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace a previous simulation in --out")
    p.set_defaults(func=run_cli)
    return p


def run_cli(args: argparse.Namespace) -> int:
    """Run ``simulate`` from parsed arguments, printing a short summary."""
    from appliance.sim import simulate  # heavy imports (OpenCV, fonts) only when used

    gap = args.gap_s if args.gap_s is not None else (None if args.rate_per_day is not None else 2.0)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{done}/{total} frames", end="" if done < total else "\n", file=sys.stderr, flush=True)

    try:
        result = simulate(
            args.out, args.vehicles, args.seed, fps=args.fps, width=args.width, height=args.height,
            gap_s=gap, rate_per_day=args.rate_per_day, night_share=args.night_share,
            mismatch_share=args.mismatch_share, progress=progress, overwrite=args.overwrite,
        )  # fmt: skip
    except SimulationError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    mismatches = ", ".join(f"{k} {v}" for k, v in sorted(result.mismatches.items())) or "none"
    print(
        f"{result.vehicles} vehicles, {result.frames} frames per camera ({result.duration_s:.0f} s of video) "
        f"rendered in {result.elapsed_s:.0f} s -> {result.out_dir}\n"
        f"mismatches: {mismatches}; kiosk images: {len(result.kiosk_images)}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m appliance.sim.cli simulate --out DIR ...``."""
    parser = argparse.ArgumentParser(prog="appliance")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
