"""``appliance training export``: wired into appliance/cli.py through :func:`add_parsers`.

::

    appliance training export --sim DIR [--sim DIR ...] [--config FILE] --out OUT
                              [--every 5] [--val-share 0.2] [--seed 0] [--force]

Progress goes to stderr, the summary to stdout. Errors are ExportError / ApplianceError (the
main CLI prints them and exits 2).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from appliance.errors import ApplianceError
from appliance.training.export import export_training_data


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def command_line(args: argparse.Namespace) -> str:
    """The command as it was given (normalised), for manifest.json."""
    words = ["appliance", "training", "export"]
    for sim in args.sim:
        words += ["--sim", sim]
    if args.config:
        words += ["--config", args.config]
    words += [
        "--out",
        args.out,
        "--every",
        str(args.every),
        "--val-share",
        str(args.val_share),
        "--seed",
        str(args.seed),
    ]
    if args.force:
        words.append("--force")
    return shlex.join(words)


def cmd_export(args: argparse.Namespace) -> int:
    result = export_training_data(
        Path(args.out),
        [Path(s) for s in args.sim],
        Path(args.config) if args.config else None,
        every=args.every,
        val_share=args.val_share,
        seed=args.seed,
        force=args.force,
        command=command_line(args),
        progress=_progress,
    )
    m = result.manifest
    det = (m["detector"] or {}).get("counts")
    rec = m["recognizer"]["counts"]
    for split in ("train", "val"):
        images = f"{det[split]['images']} detector images ({sum(det[split]['boxes'].values())} boxes), " if det else ""
        print(f"{split}: {images}{rec[split]['crops']} recogniser crops, {m['split']['units'][split]} units")
    if det:
        print(f"detector dataset: {result.out / 'detector' / 'data.yaml'}")
    print(f"manifest: {result.manifest_path}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("training", help="datasets for retraining the detector and the text recogniser")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser(
        "export",
        help="simulator runs and reviewed crossings -> YOLO detector set + recogniser crops",
        description="Write OUT/detector (YOLO, ultralytics data.yaml), OUT/recognizer (crops + rec_gt labels) and "
        "OUT/manifest.json. Split by vehicle / crossing. Never reads ../shared/eval.",
    )
    a.add_argument(
        "--sim",
        action="append",
        default=[],
        metavar="DIR",
        help="an `appliance simulate --out DIR` folder (repeatable)",
    )
    a.add_argument("--config", metavar="FILE", help="appliance config whose store holds reviewed crossings")
    a.add_argument("--out", required=True, metavar="DIR", help="output folder (new or empty)")
    a.add_argument("--every", type=int, default=5, help="simulator: every Nth frame of each passage (5)")
    a.add_argument("--val-share", type=float, default=0.2, help="share of vehicles / crossings for val (0.2)")
    a.add_argument("--seed", type=int, default=0, help="seed of the split hash (0)")
    a.add_argument("--force", action="store_true", help="replace a previous export in OUT")
    a.set_defaults(func=cmd_export)


def build_parser() -> argparse.ArgumentParser:
    """A parser with just ``training ...`` (tests, and running this module on its own)."""
    parser = argparse.ArgumentParser(prog="appliance")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ApplianceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
