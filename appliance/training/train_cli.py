"""``appliance train detector ...``: train a YOLO detector on an exported dataset and install it as a candidate.

    appliance train detector --data DIR/data.yaml [--name lane-objects] [--epochs 30] [--imgsz 320]
        [--batch 16] [--seed 0] [--model yolov8n.yaml|PATH] [--config FILE] [--key PEM] [--root STORE]
        [--work DIR]

``add_train_parsers(sub)`` adds the ``train`` command (wired in by appliance/cli.py). Needs the
``train`` extra (torch, ultralytics); nothing here imports them until the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.inference.store import ModelStore
from appliance.inference.validation import ValidationPolicy


def _store_and_policy(args: argparse.Namespace) -> tuple[ModelStore, ValidationPolicy | None]:
    """--root, else models.root of --config, else the project's models/; the config's validation policy
    (None without --config: unsigned packages allowed, as in development)."""
    if not args.config:
        return (ModelStore(Path(args.root)) if args.root else ModelStore()), None
    from appliance.config import load_config
    from appliance.inference.validation import validation_policy

    config = load_config(Path(args.config))
    root = args.root or config.models.root
    return (ModelStore(Path(root)) if root else ModelStore()), validation_policy(config)


def cmd_train_detector(args: argparse.Namespace) -> int:
    from appliance.training.train_detector import train_detector

    store, policy = _store_and_policy(args)
    ref = train_detector(
        Path(args.data),
        store,
        name=args.name,
        model_yaml=args.model,
        epochs=args.epochs,
        imgsz=args.imgsz,
        batch=args.batch,
        seed=args.seed,
        device=args.device,
        policy=policy,
        key=Path(args.key) if args.key else None,
        work_dir=Path(args.work) if args.work else None,
    )
    print(
        f"installed {ref.task}/{ref.name} v{ref.version}  {ref.folder}  "
        f"(a candidate, not activated; `appliance models verify {ref.folder}` checks it again)"
    )
    return 0


def cmd_train_xray_anomaly(args: argparse.Namespace) -> int:
    from pathlib import Path

    from appliance.inference.store import DEFAULT_ROOT
    from appliance.training.xray_anomaly import train_xray_anomaly

    scans = args.scans_per_class or (100 if args.head == "cnn" else 6)
    folder, metrics = train_xray_anomaly(args.head, scans, args.seed, args.name or f"sim-{args.head}",
                                         Path(args.root) if args.root else DEFAULT_ROOT,
                                         Path(args.key) if args.key else None, args.eval_per_class, args.steps)
    print(f"wrote {folder} ({'signed' if args.key else 'unsigned'})")
    for name, value in metrics.items():
        print(f"  {name}: {value}")
    return 0


def cmd_train_xray_consistency(args: argparse.Namespace) -> int:
    from pathlib import Path

    from appliance.inference.store import DEFAULT_ROOT
    from appliance.training.xray_consistency import train_xray_consistency

    folder, metrics = train_xray_consistency(args.scans_per_class, args.seed, args.name,
                                             Path(args.root) if args.root else DEFAULT_ROOT,
                                             Path(args.key) if args.key else None, args.eval_per_class)
    print(f"wrote {folder} ({'signed' if args.key else 'unsigned'})")
    for name, value in metrics.items():
        print(f"  {name}: {value}")
    return 0


def add_train_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``train`` command and its sub-commands (today: ``detector``)."""
    train = sub.add_parser("train", help="train a model on an exported dataset (needs the train extra)")
    tsub = train.add_subparsers(dest="train_command", required=True, metavar="COMMAND")
    p = tsub.add_parser(
        "detector",
        help="train a YOLO detector with ultralytics (CPU), export ONNX, install it as a candidate",
        description="Train, validate (mAP50, mAP50-95, precision, recall on the val split), export ONNX, write "
        "golden cases and install the result as the next version of object-detection/NAME in the store. "
        "It is not activated. The model is AGPL-3.0 (ultralytics).",
    )
    p.add_argument("--data", required=True, help="the dataset's data.yaml (from `appliance training export`)")
    p.add_argument("--name", default="lane-objects", help="model name in the store (default: lane-objects)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    p.add_argument("--imgsz", type=int, default=320, help="square input size, a multiple of 32 (default: 320)")
    p.add_argument("--batch", type=int, default=16, help="batch size (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--model",
        default="yolov8n.yaml",
        help="architecture yaml trained from scratch (default: yolov8n.yaml) or a local .pt checkpoint; "
        "nothing is downloaded",
    )
    p.add_argument("--device", default="cpu", help="torch device (default: cpu; e.g. 0 for the first GPU)")
    p.add_argument(
        "--config",
        help="validate the package with this config's models.trusted_keys / allow_unsigned "
        "and install into its models.root (default: unsigned allowed, the project's models/)",
    )
    p.add_argument("--key", help="sign the package with this Ed25519 private key (PEM) before installing")
    p.add_argument("--root", help="model store folder (default: models.root of --config, else the project's models/)")
    p.add_argument(
        "--work",
        help="keep ultralytics' run (weights, results.csv) and the package here (default: a temporary folder, removed)",
    )
    p.set_defaults(func=cmd_train_detector)

    p = tsub.add_parser(
        "xray-anomaly",
        help="fit the X-ray anomaly model on simulated normal scans (no torch), export ONNX into the store",
        description="Render normal scans of every goods class with the simulator, calibrate them, fit the normal "
        "model per class, set the alarm threshold on clean validation scans, measure on the held-out simulated "
        "set and write the package as the next version of xray-anomaly/NAME (signed with --key).",
    )
    p.add_argument("--head", choices=["cnn", "knn", "gaussian"], default="cnn",
                   help="cnn: a small detector trained on normal scans with generic synthetic anomalies (needs the "
                   "train extra); knn / gaussian: fixed features and a per-class normal model, no torch "
                   "(default: cnn; docs/XRAY.md compares them)")
    p.add_argument("--steps", type=int, default=0, help="cnn: training steps (default: 12000)")
    p.add_argument("--scans-per-class", type=int, default=None,
                   help="normal scans per goods class to fit (default: cnn 100, knn/gaussian 6)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument("--name", default=None, help="model name in the store (default: sim-HEAD, e.g. sim-cnn)")
    p.add_argument("--root", default=None, help="model store folder (default: the project's models/)")
    p.add_argument("--key", help="sign the package with this Ed25519 private key (PEM)")
    p.add_argument("--eval-per-class", type=int, default=4,
                   help="held-out simulated scans per class and anomaly type to measure (0: skip)")
    p.set_defaults(func=cmd_train_xray_anomaly)

    p = tsub.add_parser(
        "xray-consistency",
        help="fit the X-ray manifest-consistency model (declared goods and quantity vs the image) on simulated scans",
        description="Render consistent scans of every goods class, fit the goods classifier and the quantity model, "
        "choose the goods threshold on validation scans, measure on the held-out simulated set and write the "
        "package as the next version of xray-consistency/NAME (signed with --key).",
    )
    p.add_argument("--scans-per-class", type=int, default=15, help="scans per goods class to fit (default: 15)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    p.add_argument("--name", default="sim-consistency", help="model name in the store (default: sim-consistency)")
    p.add_argument("--root", default=None, help="model store folder (default: the project's models/)")
    p.add_argument("--key", help="sign the package with this Ed25519 private key (PEM)")
    p.add_argument("--eval-per-class", type=int, default=6,
                   help="held-out simulated scans per class and kind to measure (0: skip)")
    p.set_defaults(func=cmd_train_xray_consistency)
