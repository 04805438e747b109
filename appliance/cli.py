"""Command line: ``appliance run|demo|simulate|check-config|eval|bench|models|training|train|outbox|users|audit``
and ``appliance faces|calibrate``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from appliance.errors import ApplianceError

log = logging.getLogger("appliance")

EVAL_TASKS = ("qr", "plates", "containers", "faces", "sim", "xray")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_check_config(args: argparse.Namespace) -> int:
    from appliance.config import AppConfig, load_config, verify_paths

    if args.schema:
        print(json.dumps(AppConfig.model_json_schema(), indent=2, ensure_ascii=False))
        return 0
    if args.file is None:
        raise ApplianceError("check-config needs a FILE (or --schema)")
    cfg = load_config(Path(args.file))
    verify_paths(cfg, args.file)
    sources = sum(len(lane.sources) for lane in cfg.lanes)
    print(f"{args.file}: OK ({len(cfg.lanes)} lane(s), {sources} source(s), gate {cfg.site.gate})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from appliance.app import run_appliance

    run_appliance(Path(args.config), serve=not args.no_web, keep_serving=not args.exit_when_done, as_service=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from appliance.app import run_demo

    run_demo(Path(args.workdir), vehicles=args.vehicles, seed=args.seed, port=args.port,
             keep_serving=not args.exit_when_done, passengers=args.passengers)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.passengers:
        from appliance.sim.passengers import simulate_passengers

        sim = simulate_passengers(Path(args.out), args.passengers, args.seed, overwrite=args.overwrite)
        counts: dict[str, int] = {}
        for truth in sim.passengers:
            counts[truth.scenario] = counts.get(truth.scenario, 0) + 1
        print(f"simulated {args.passengers} passengers into {args.out} ({sim.frames} face frames): {counts}")
        print(f"next: appliance faces keygen --config {sim.lane_yaml_path}; "
              f"appliance faces enrol --config {sim.lane_yaml_path} --folder {sim.out_dir / 'enrol'}; "
              f"appliance run --config {sim.lane_yaml_path}")
        return 0
    from appliance.sim import simulate

    result = simulate(
        Path(args.out), args.vehicles, args.seed, fps=args.fps, width=args.width, height=args.height,
        gap_s=None if args.rate_per_day else args.gap_s, rate_per_day=args.rate_per_day,
        night_share=args.night_share, mismatch_share=args.mismatch_share,
    )
    print(f"simulated {args.vehicles} vehicles into {args.out}: {result}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    data = Path(args.data) if args.data else None
    if args.task == "sim":
        from appliance.eval.sim import evaluate_sim

        report = evaluate_sim(data, vehicles=args.vehicles, seed=args.seed, workers=args.workers,
                              detector=args.detector, detector_side=args.detector_side)
    else:
        if data is None:
            raise ApplianceError(f"eval {args.task} needs --data DIR (e.g. ../shared/eval/{args.task})")
        if not data.is_dir():
            raise ApplianceError(f"{data}: evaluation folder not found")
        if args.task == "qr":
            from appliance.eval.qr import evaluate_qr

            report = evaluate_qr(data)
        elif args.task == "xray":
            from appliance.eval.xray import evaluate_xray

            report = evaluate_xray(data, model=args.model, consistency_per_class=args.consistency_per_class)
        elif args.task == "faces":
            from appliance.eval.faces import evaluate_faces

            report = evaluate_faces(data)
        elif args.task == "plates":
            from appliance.eval.plates import evaluate_plates

            report = evaluate_plates(data)
        else:
            from appliance.eval.containers import evaluate_containers

            report = evaluate_containers(data)
    print(report.format_table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "ui":
        from appliance.bench.ui import bench_ui, format_ui_bench

        print(format_ui_bench(bench_ui(crossings=args.crossings or 100_000, requests=args.requests)))
        return 0
    if args.what == "outbox":
        from appliance.bench.outbox import bench_outbox, format_outbox_bench

        print(format_outbox_bench(bench_outbox(crossings=args.crossings or 3000, broker_port=args.broker_port,
                                               rate=args.rate, latency_seconds=args.latency_seconds)))
        return 0
    if args.what == "xray":
        from appliance.bench.xray import bench_xray

        print(bench_xray(runs=args.runs if args.runs != 20 else 5))
        return 0
    if args.what == "passenger":
        from appliance.bench.passenger import bench_passenger

        print(bench_passenger(passengers=args.passengers, watchlist_size=args.watchlist_size))
        return 0
    if args.what == "models":
        from appliance.bench.models import bench_models, format_models_bench

        print(format_models_bench(bench_models(runs=args.runs)))
        return 0
    if args.what == "lane" and args.actuators:
        from appliance.bench.actuators import bench_actuators, format_actuator_bench

        print(format_actuator_bench(bench_actuators(trials=args.trials)))
        return 0
    from appliance.bench.lane import bench_lane

    if args.what != "lane":
        raise ApplianceError(f"unknown benchmark {args.what!r}; available: lane, models, outbox, passenger, ui, xray")
    print(bench_lane(seconds=args.seconds, width=args.width, height=args.height))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from appliance.config import load_config
    from appliance.publish.status import format_outbox_status
    from appliance.store.db import Store

    cfg = load_config(Path(args.config))
    store = Store(cfg.storage.path, cfg.storage.evidence_dir, backlog_alarm_s=cfg.publish.backlog_alarm_s)
    try:
        print(format_outbox_status(store))
    finally:
        store.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description="Lane-side edge appliance for smart border gates.")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the appliance on a config file")
    p.add_argument("--config", required=True)
    p.add_argument("--no-web", action="store_true", help="do not serve the web UI")
    p.add_argument("--exit-when-done", action="store_true", help="exit when finite sources end")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="simulate a lane and run the appliance on it, with the web UI")
    p.add_argument("--workdir", default="var/demo")
    p.add_argument("--vehicles", type=int, default=12)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--passengers", type=int, default=12, help="passengers on the simulated passenger lane (0: none)")
    p.add_argument("--exit-when-done", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("simulate", help="render a simulated lane with ground truth")
    p.add_argument("--out", required=True)
    p.add_argument("--vehicles", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--gap-s", type=float, default=3.0, help="idle seconds between vehicles")
    p.add_argument("--rate-per-day", type=float, default=None, help="e.g. 3500 (Hữu Nghị's 2030 target)")
    p.add_argument("--night-share", type=float, default=0.3)
    p.add_argument("--mismatch-share", type=float, default=0.2)
    p.add_argument("--passengers", type=int, default=0,
                   help="simulate a passenger lane with this many passengers instead of a cargo lane")
    p.add_argument("--overwrite", action="store_true", help="passengers: replace an earlier simulation in --out")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("file", nargs="?")
    p.add_argument("--schema", action="store_true", help="print the JSON schema")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("eval", help="measure accuracy on a labelled folder")
    p.add_argument("task", choices=EVAL_TASKS)
    p.add_argument("--data", help="folder in the ../shared/eval format (sim: a simulated lane, or none)")
    p.add_argument("--json", help="write the summary as JSON")
    p.add_argument("--vehicles", type=int, default=200, help="sim: vehicles to simulate")
    p.add_argument("--seed", type=int, default=2026, help="sim: seed")
    p.add_argument("--workers", type=int, default=2, help="sim: analysis threads")
    p.add_argument("--detector", help="sim: text detector from the model store (default: the config's), "
                   "e.g. ppocrv4-det-int8")
    p.add_argument("--detector-side", type=int, help="sim: text detector input size in px (default: the config's)")
    p.add_argument("--consistency-per-class", type=int, default=4,
                   help="xray: consistency model, held-out simulated scans per goods class and kind (default: 4)")
    p.add_argument("--model", help="xray: the xray-anomaly model in the store (default: the config's, sim-cnn), "
                   "e.g. sim-knn to compare")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="speed and memory benchmarks")
    p.add_argument("what", choices=["lane", "models", "outbox", "passenger", "ui", "xray"])
    p.add_argument("--seconds", type=float, default=20.0, help="lane: length of the simulated video")
    p.add_argument("--actuators", action="store_true",
                   help="lane: verdict -> barrier command and IGV arrival -> release latency (real Modbus + MQTT)")
    p.add_argument("--trials", type=int, default=30, help="lane --actuators: trucks and IGVs per controller")
    p.add_argument("--width", type=int, default=1920)
    p.add_argument("--height", type=int, default=1080)
    p.add_argument("--crossings", type=int, default=None,
                   help="outbox: crossings written, then published (3000); ui: crossings in the store (100000)")
    p.add_argument("--requests", type=int, default=50, help="ui: requests per page (p50/p95 over them)")
    p.add_argument("--broker-port", type=int, help="outbox: MQTT broker on 127.0.0.1 (default: start mosquitto)")
    p.add_argument("--rate", type=float, default=50.0, help="outbox: crossings per second for the latency run")
    p.add_argument("--latency-seconds", type=float, default=4.0, help="outbox: length of the latency run")
    p.add_argument("--runs", type=int, default=20, help="models: timed runs per model and provider")
    p.add_argument("--passengers", type=int, default=36, help="passenger: simulated passages")
    p.add_argument("--watchlist-size", type=int, default=100_000, help="passenger: face watchlist templates")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("outbox", help="delivery state of the verdict outbox per sink")
    p.add_argument("action", choices=["status"])
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_outbox)

    from appliance.inference.models_cli import add_parsers as add_models_parsers  # models list|install|activate|...

    add_models_parsers(sub)

    from appliance.training.cli import add_parsers as add_training_parsers  # training export

    add_training_parsers(sub)
    from appliance.training.train_cli import add_train_parsers  # train detector

    add_train_parsers(sub)

    from appliance.faces.cli import add_parsers as add_faces_parsers  # faces keygen|enrol|purge|forget|status

    add_faces_parsers(sub)
    from appliance.xray.sim_cli import add_parsers as add_xray_sim_parsers  # simulate-xray

    add_xray_sim_parsers(sub)
    from appliance.xray.calibrate_cli import add_parsers as add_calibrate_parsers  # calibrate xray (camera: issue 8)

    calibrate_sub = add_calibrate_parsers(sub)
    from appliance.calibrate.cli import add_camera_parsers  # calibrate camera|lane

    add_camera_parsers(calibrate_sub)
    from appliance.retention.cli import add_parsers as add_retention_parsers  # retention hold|release|status|run

    add_retention_parsers(sub)
    from appliance.bench.soak import add_parsers as add_soak_parsers  # soak --minutes N

    add_soak_parsers(sub)
    from appliance.lifecycle.store_cli import add_parsers as add_store_parsers  # store backup|restore

    add_store_parsers(sub)
    from appliance.users_cli import add_parsers as add_users_parsers  # users create-admin|list, audit verify

    add_users_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return int(args.func(args))
    except ApplianceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
