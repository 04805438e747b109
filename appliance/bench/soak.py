"""``appliance soak --minutes N``: the simulated gate, run for a set time, with memory, fds and threads sampled.

The appliance's own parts run as on a box: one ``Services`` (store, models, analyzers) built once, the lane
threads replaying the simulated cameras at camera speed (each replay gets fresh timestamps, so every pass
makes new crossings), and the retention thread. A sampler reads ``/proc/self`` every ``sample_s``: resident
memory (VmRSS), open file descriptors, OS threads (all of them, ONNX Runtime's too) and Python threads.

The verdict is the growth of RSS from the median of the first quarter of the samples to the median of the
last quarter; the bar for the 2-hour run is under 5 % (docs/OPERATIONS_SOAK.md). File descriptors and
threads must come back to their first-quarter level: a leak shows as a steady climb.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RSS_BAR = 0.05


@dataclass(frozen=True)
class Sample:
    t_s: float  # seconds since the soak started
    rss_kb: int
    fds: int
    threads: int  # OS threads of the process (/proc/self/status Threads)
    py_threads: int
    crossings: int


@dataclass
class SoakReport:
    minutes: float
    sample_s: float
    samples: list[Sample] = field(default_factory=list)
    passes: int = 0  # replays of the simulated lane

    def quarter(self, which: str, attr: str) -> float:
        values = [getattr(s, attr) for s in self.samples]
        n = max(1, len(values) // 4)
        part = values[:n] if which == "first" else values[-n:]
        return float(statistics.median(part)) if part else 0.0

    def growth(self, attr: str) -> float:
        first = self.quarter("first", attr)
        return 0.0 if first == 0 else self.quarter("last", attr) / first - 1.0

    def summary(self) -> dict[str, Any]:
        return {
            "samples": len(self.samples), "passes": self.passes,
            "crossings": self.samples[-1].crossings if self.samples else 0,
            "rss_first_quarter_median_kb": self.quarter("first", "rss_kb"),
            "rss_last_quarter_median_kb": self.quarter("last", "rss_kb"),
            "rss_growth": round(self.growth("rss_kb"), 4),
            "rss_bar": RSS_BAR, "rss_within_bar": self.growth("rss_kb") < RSS_BAR,
            "fds_first_quarter_median": self.quarter("first", "fds"),
            "fds_last_quarter_median": self.quarter("last", "fds"),
            "fds_max": max((s.fds for s in self.samples), default=0),
            "threads_first_quarter_median": self.quarter("first", "threads"),
            "threads_last_quarter_median": self.quarter("last", "threads"),
            "threads_max": max((s.threads for s in self.samples), default=0),
        }

    def to_json(self) -> dict[str, Any]:
        return {"minutes": self.minutes, "sample_s": self.sample_s, "summary": self.summary(),
                "samples": [asdict(s) for s in self.samples]}

    def format_table(self, rows: int = 24) -> str:
        step = max(1, len(self.samples) // rows)
        shown = self.samples[::step]
        if self.samples and shown[-1] is not self.samples[-1]:
            shown.append(self.samples[-1])
        lines = [f"soak: {self.minutes:g} min, a sample every {self.sample_s:g} s, {len(self.samples)} samples, "
                 f"{self.passes} replay(s) of the simulated lane",
                 f"{'t (s)':>8} {'RSS (MiB)':>10} {'fds':>5} {'threads':>8} {'py thr':>7} {'crossings':>10}"]
        lines += [f"{s.t_s:>8.0f} {s.rss_kb / 1024:>10.1f} {s.fds:>5} {s.threads:>8} {s.py_threads:>7} "
                  f"{s.crossings:>10}" for s in shown]
        m = self.summary()
        lines.append(f"RSS median, first quarter {m['rss_first_quarter_median_kb'] / 1024:.1f} MiB -> last quarter "
                     f"{m['rss_last_quarter_median_kb'] / 1024:.1f} MiB: growth {100 * m['rss_growth']:+.2f} % "
                     f"(bar: under {100 * RSS_BAR:.0f} % over 2 hours) "
                     f"{'within the bar' if m['rss_within_bar'] else 'OVER THE BAR'}")
        lines.append(f"fds: first quarter {m['fds_first_quarter_median']:g}, last quarter "
                     f"{m['fds_last_quarter_median']:g}, max {m['fds_max']}; threads: first quarter "
                     f"{m['threads_first_quarter_median']:g}, last quarter {m['threads_last_quarter_median']:g}, "
                     f"max {m['threads_max']}")
        return "\n".join(lines)


def _proc_status() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                out[key] = int(value.split()[0])
    return out


def sample(started: float, crossings: int) -> Sample:
    st = _proc_status()
    return Sample(round(time.monotonic() - started, 2), st.get("VmRSS", 0), len(os.listdir("/proc/self/fd")),
                  st.get("Threads", 0), threading.active_count(), crossings)


def _soak_config(sim_dir: Path, workdir: Path, realtime: bool) -> Any:
    import yaml

    from appliance.config import load_config

    data = load_config(sim_dir / "lane.yaml").model_dump(mode="json")
    for lane in data["lanes"]:
        for src in lane["sources"]:
            if src["type"] == "video_file":
                src["realtime"] = realtime
            if src["type"] == "folder":
                src["move_processed"] = False
    for stale in workdir.glob("soak.db*"):
        stale.unlink()
    data["storage"] = {"path": str((workdir / "soak.db").resolve()),
                       "evidence_dir": str((workdir / "evidence").resolve())}
    data["retention"] = {"interval_s": 10, "budgets": {"evidence": "200MB"}}
    path = workdir / "soak.yaml"
    path.write_text("# Written by `appliance soak`.\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return load_config(path)


def run_soak(minutes: float, workdir: Path, sample_s: float = 5.0, vehicles: int = 4, seed: int = 1,
             width: int = 1280, height: int = 720, realtime: bool = True) -> SoakReport:
    """Run the simulated gate for ``minutes`` and sample the process every ``sample_s`` seconds."""
    from appliance.app import DEMO_GAP_S, init_services, run_lane
    from appliance.errors import ApplianceError
    from appliance.retention.service import RetentionService
    from appliance.sim import simulate

    if minutes <= 0:
        raise ApplianceError(f"soak: --minutes must be positive, got {minutes}")
    if sample_s <= 0:
        raise ApplianceError(f"soak: --sample-s must be positive, got {sample_s}")
    workdir.mkdir(parents=True, exist_ok=True)
    sim_dir = workdir / f"sim-{seed}-{vehicles}-{width}x{height}"
    if not (sim_dir / "truth.json").is_file():
        log.info("soak: rendering the simulated gate (%d vehicles) into %s", vehicles, sim_dir)
        simulate(sim_dir, vehicles, seed, gap_s=DEMO_GAP_S, width=width, height=height, overwrite=True)
    config = _soak_config(sim_dir, workdir, realtime)
    services = init_services(config)
    retention = RetentionService(config, services.store, services.status)
    report = SoakReport(minutes, sample_s)
    stop = threading.Event()
    started = time.monotonic()
    deadline = started + minutes * 60

    def crossings() -> int:
        return sum(services.store.counts().values())

    def sampler() -> None:
        while not stop.is_set():
            report.samples.append(sample(started, crossings()))
            stop.wait(sample_s)

    retention.start()
    sampling = threading.Thread(target=sampler, name="soak-sampler", daemon=True)
    sampling.start()
    try:
        while time.monotonic() < deadline:
            replay_start = time.time()
            threads = []
            for lane in config.lanes:
                sources = [s.model_copy(update={"start_time": replay_start}) if s.type == "video_file" else s
                           for s in lane.sources]
                fresh = lane.model_copy(update={"sources": sources})
                threads.append(threading.Thread(target=run_lane, args=(fresh, services), kwargs={"stop": stop},
                                                name=f"lane-{lane.id}", daemon=True))
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                if time.monotonic() >= deadline:
                    stop.set()
                for t in threads:
                    t.join(0.5)
            report.passes += 1
    finally:
        stop.set()
        sampling.join(sample_s + 5)
        retention.stop()
        report.samples.append(sample(started, crossings()))
        services.store.close()
    return report


def cmd_soak(args: Any) -> int:
    report = run_soak(args.minutes, Path(args.workdir), sample_s=args.sample_s, vehicles=args.vehicles,
                      seed=args.seed, width=args.width, height=args.height, realtime=not args.no_realtime)
    print(report.format_table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("soak", help="run the simulated gate for a set time; RSS, fds and threads over time "
                                    "(docs/OPERATIONS_SOAK.md)")
    p.add_argument("--minutes", type=float, required=True, help="how long (the release bar: 120)")
    p.add_argument("--json", help="write every sample and the summary as JSON")
    p.add_argument("--workdir", default="var/soak", help="simulation, store and evidence of the soak")
    p.add_argument("--sample-s", type=float, default=5.0, help="seconds between two samples")
    p.add_argument("--vehicles", type=int, default=4, help="vehicles in the simulated lane (replayed in a loop)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--no-realtime", action="store_true",
                   help="replay as fast as the lane analyses (more replays per minute: a harsher leak test)")
    p.set_defaults(func=cmd_soak)
