"""The demo's drive-through X-ray scanner: simulated scans of the demo lane's container trucks.

``appliance demo`` simulates a cargo lane (``appliance/sim``); this module gives that lane a virtual
X-ray portal a little downstream of the cameras, so that the demo shows the X-ray part of the product
(docs/XRAY.md) on the same trucks:

* ``add_demo_xray(data, workdir, sim_dir, seed)`` renders one scan per container truck of the lane's
  ``truth.json`` (once per seed and lane, cached like the lane itself), with the truck's container
  numbers and tractor plate, its declared goods class (from the lane manifest's HS code) and a scan
  time ``SCAN_DELAY_S`` after the truck left the cameras. Every third truck (the 2nd, 5th, ...) carries
  a projected threat (TIP: the simulator's anomaly kinds in turn). It also builds the virtual scanner's
  calibration (what ``appliance calibrate xray`` writes from its dark/air frames) and adds the ``xray:``
  section to the demo config. The model stays the config default (the store's committed model).
* ``DemoXray.start(services)`` (run_appliance's ``on_start`` hook) starts a feeder thread that drops
  each scan into the drop folder only once the lane has made the crossing it belongs to (the store
  has a crossing with its container or plate, checked with the X-ray matcher itself) and the lane's
  replay clock has passed the scan time. A truck the lane did not read is scanned all the same once
  the replay is ``GIVE_UP_S`` past it (or the lane ended): the result is then stored untied, as on a
  real gate. Dropping by the lane's progress rather than by a wall-clock timer keeps the order right
  on a slow or busy machine, where the replay lags behind real time.

Scans render at ``SCALE`` 0.5: the scale the anomaly model was fitted at (appliance/training/
xray_anomaly.py ``TRAIN_SCALE``), and about 0.3-0.6 s per scan with its PNGs on a 2-core machine
(full size: 1.5-2.5 s). Text stays in this module's logs at DEBUG where it names plates or containers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from appliance.errors import SimulationError

if TYPE_CHECKING:
    from appliance.app import Services

log = logging.getLogger(__name__)

SCALE = 0.5  # the anomaly model's training scale (appliance/training/xray_anomaly.py TRAIN_SCALE)
SCANNER_ID = "SIM-XR-DEMO"
SCAN_DELAY_S = 8.0  # the portal stands downstream of the cameras: a truck is scanned this long after it left them
GIVE_UP_S = 30.0  # replay seconds past the scan time after which a truck the lane did not read is dropped anyway
THREAT_EVERY = 3  # every third container truck (the 2nd, 5th, ...) carries a projected threat
WINDOW_S = 600.0  # the scan-to-crossing window of the demo's config
TRUTH_FILE = "xray-truth.json"
VN_TZ = dt.timezone(dt.timedelta(hours=7))

# HS chapter of the lane manifest's goods -> the X-ray simulator's goods class (appliance/sim/xray_goods.py).
_HS_GOODS = {"03": "seafood", "07": "fruit", "08": "fruit", "27": "coke", "28": "chemicals", "31": "fertiliser",
             "48": "parcels", "84": "electronics", "85": "electronics"}


@dataclass(frozen=True)
class DemoScan:
    """One rendered scan waiting in the cache folder, and what it belongs to."""

    name: str  # file stem: XR-<vehicle id>
    vehicle_id: str
    scanned_at: float
    containers: tuple[str, ...]
    plate: str
    threat: str | None  # the projected anomaly kind, or None

    def files(self) -> list[str]:
        return [f"{self.name}_high.png", f"{self.name}_low.png", f"{self.name}.json"]  # the sidecar last


def goods_class(hs_code: str | None) -> str | None:
    """The X-ray goods class of a manifest HS code, or None when the simulator has no such class."""
    return _HS_GOODS.get((hs_code or "")[:2])


def container_sizes(containers: list[dict[str, Any]]) -> tuple[str, ...]:
    """X-ray simulator sizes ("20"/"40") of the lane's ISO 6346 size-type codes; 45' boxes drawn as 40'."""
    sizes = tuple("20" if str(c.get("size_type", "4"))[:1] == "2" else "40" for c in containers)
    if len(sizes) > 2:
        raise SimulationError(f"the X-ray simulator draws one or two containers, the vehicle has {len(sizes)}")
    return sizes


def _manifest_goods(sim_dir: Path) -> dict[str, str | None]:
    """Container number -> declared HS code, from the lane's manifest.json (absent: nothing declared)."""
    path = sim_dir / "manifest.json"
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text(encoding="utf-8")).get("entries", [])
    return {str(c["number"]): e.get("hs_code") for e in entries for c in e.get("containers") or []}


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise SimulationError(f"could not encode {path.name} as PNG")
    path.write_bytes(buf.tobytes())


def render_demo_scans(lane_truth: Path, out_dir: Path, seed: int, lane_id: str, *, scale: float = SCALE,
                      threat_every: int = THREAT_EVERY, delay_s: float = SCAN_DELAY_S) -> list[DemoScan]:
    """Render a scan per container truck of ``lane_truth`` into ``out_dir/scans`` (sidecar + two PNGs each),
    with ``out_dir/TRUTH_FILE`` (written last: its presence marks a complete cache)."""
    from appliance.sim.xray import ANOMALY_KINDS, ROW_M, SCENE_HEIGHT_M, make_scanner, random_spec, render_scan

    truth = json.loads(lane_truth.read_text(encoding="utf-8"))
    hs = _manifest_goods(lane_truth.parent)
    trucks = [v for v in truth["vehicles"] if v.get("kind") == "truck" and v.get("containers")]
    rows = max(16, round(SCENE_HEIGHT_M / ROW_M * scale))
    scanner = make_scanner(rows, seed, SCANNER_ID)
    scans_dir = out_dir / "scans"
    scans_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    scans: list[DemoScan] = []
    records: list[dict[str, Any]] = []
    for i, v in enumerate(trucks):
        numbers = tuple(str(c["number"]) for c in v["containers"])
        plate = str((v.get("tractor_plate") or {}).get("text") or "")
        threat = ANOMALY_KINDS[(i // threat_every) % len(ANOMALY_KINDS)] if i % threat_every == 1 else None
        rng = np.random.default_rng([int(seed), i, 0xDE30])
        spec = random_spec(rng, goods_class(hs.get(numbers[0])), threat, containers=container_sizes(v["containers"]))
        spec = dataclasses.replace(spec, plate=plate, container_numbers=numbers)
        r = render_scan(spec, int(rng.integers(2**48)), scale, scanner=scanner)
        name = f"XR-{v['id']}"
        when = round(float(v["t_exit"]) + delay_s, 3)
        _write_png(scans_dir / f"{name}_high.png", r.high)
        _write_png(scans_dir / f"{name}_low.png", r.low)
        sidecar = {
            "format": "gate-xray/1", "scanner_id": SCANNER_ID,
            "scanned_at": dt.datetime.fromtimestamp(when, VN_TZ).isoformat(timespec="milliseconds"),
            "lane_id": lane_id, "plate": plate, "containers": list(numbers),
            "declared_goods": r.truth["manifest"]["declared_goods"],
            "declared_quantity": spec.declared_quantity if spec.load else 0,
            "declared_unit": r.truth["manifest"]["declared_unit"],
            "energy_kv": {"high": scanner.energies_kv[0], "low": scanner.energies_kv[1]},
            "bit_depth": 16, "normalised": False, "images": {"high": f"{name}_high.png", "low": f"{name}_low.png"},
            "extra": {"pixel_m": r.truth["pixel_m"], "demo_vehicle": v["id"]},
        }  # fmt: skip
        (scans_dir / f"{name}.json").write_text(json.dumps(sidecar, indent=2, ensure_ascii=False), encoding="utf-8")
        scan = DemoScan(name, str(v["id"]), when, numbers, plate, threat)
        scans.append(scan)
        records.append({**dataclasses.asdict(scan), "anomalies": r.truth["anomalies"],
                        "goods": r.truth["manifest"]["real_goods"], "shape": list(r.high.shape)})
    doc = {"format": "gate-demo-xray/1", "seed": int(seed), "scale": scale, "scanner_id": SCANNER_ID, "rows": rows,
           "scans": records}
    (out_dir / TRUTH_FILE).write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    log.info("demo: rendered %d X-ray scan(s) (%d with a projected threat) in %.1f s", len(scans),
             sum(1 for s in scans if s.threat), time.perf_counter() - started)
    return scans


def load_demo_scans(out_dir: Path) -> list[DemoScan]:
    doc = json.loads((out_dir / TRUTH_FILE).read_text(encoding="utf-8"))
    return [DemoScan(s["name"], s["vehicle_id"], float(s["scanned_at"]), tuple(s["containers"]), s["plate"],
                     s["threat"]) for s in doc["scans"]]


def build_demo_calibration(root: Path, seed: int, scale: float = SCALE) -> Path:
    """The virtual scanner's calibration from its dark and air frames, as ``appliance calibrate xray``
    saves it (``<root>/<scanner id>/``)."""
    from appliance.sim.xray import ROW_M, SCENE_HEIGHT_M, calibration_frames, make_scanner
    from appliance.xray.calibration import build_calibration, save_calibration

    scanner = make_scanner(max(16, round(SCENE_HEIGHT_M / ROW_M * scale)), seed, SCANNER_ID)
    frames = calibration_frames(scanner, seed)
    cal = build_calibration(SCANNER_ID, dark=frames["dark"], air=frames["air"])
    return save_calibration(cal, root, history={"command": "appliance demo (virtual scanner's dark/air frames)"})


@dataclass
class DemoXray:
    """The demo's X-ray scanner: where its scans wait, where they are dropped, and the feeder thread."""

    cache_dir: Path  # rendered scans (cache_dir/scans) and their truth
    drop_dir: Path
    calibration_dir: Path
    lane_id: str
    scans: list[DemoScan]
    stop_when_done: bool = False  # set services.stop once every scan is processed and the lanes ended
    poll_s: float = 0.25
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    dropped: list[str] = field(default_factory=list)

    def section(self) -> dict[str, Any]:
        """The config's ``xray:`` section (the model stays the config default: the store's committed one)."""
        return {"drop_dir": str(self.drop_dir), "calibration_dir": str(self.calibration_dir), "follow": True,
                "window_s": WINDOW_S}

    def start(self, services: Services) -> None:
        """run_appliance's ``on_start`` hook: feed the drop folder from a thread as the lane makes crossings."""
        self._thread = threading.Thread(target=self._run, args=(services,), name="demo-xray-feeder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    # -- the feeder ------------------------------------------------------------------------
    def _due(self, services: Services, scan: DemoScan) -> bool:
        """True once the scan may be dropped: its crossing exists and the replay reached the scan time, or the
        replay is ``GIVE_UP_S`` past it, or the lane ended."""
        from appliance.xray.results import match_crossing
        from appliance.xray.scan import ScanMeta

        lane = services.status.get("lanes", {}).get(self.lane_id, {})
        if lane.get("state") == "finished":
            return True
        clock = lane.get("last_frame_ts")
        if clock is None or clock < scan.scanned_at:
            return False
        if clock >= scan.scanned_at + GIVE_UP_S:
            return True
        meta = ScanMeta(SCANNER_ID, scan.scanned_at, containers=scan.containers, plate=scan.plate or None)
        crossing, _, _ = match_crossing(services.store, meta, WINDOW_S)
        return crossing is not None

    def drop(self, scan: DemoScan) -> None:
        """Copy a scan into the drop folder, images first and the sidecar last, each under a hidden name
        first (the drop folder skips hidden files) and renamed in place."""
        for name in scan.files():
            tmp = self.drop_dir / f".{name}.part"
            shutil.copyfile(self.cache_dir / "scans" / name, tmp)
            os.replace(tmp, self.drop_dir / name)
        self.dropped.append(scan.name)

    def _handled(self, services: Services) -> int:
        x = services.status.get("xray", {})
        rejected = len(list((self.drop_dir / "rejected").glob("*.reason.txt")))
        return int(x.get("processed", 0)) + int(x.get("failed", 0)) + rejected

    def _lanes_ended(self, services: Services) -> bool:
        lanes = services.status.get("lanes", {})
        return all(lanes.get(lane.id, {}).get("state") == "finished" for lane in services.config.lanes)

    def _run(self, services: Services) -> None:
        pending = list(self.scans)
        try:
            while pending and not (self._stop.is_set() or services.stop.is_set()):
                while pending and self._due(services, pending[0]):
                    scan = pending.pop(0)
                    self.drop(scan)
                    log.debug("demo: X-ray scan %s of vehicle %s dropped", scan.name, scan.vehicle_id)
                self._stop.wait(self.poll_s)
            if not pending:
                log.info("demo: all %d X-ray scan(s) dropped into %s", len(self.scans), self.drop_dir)
            if not self.stop_when_done:
                return
            deadline = None  # counted from the end of the lanes: the passenger lane may run longer
            while not (self._stop.is_set() or services.stop.is_set()):
                if not self._lanes_ended(services):
                    self._stop.wait(self.poll_s)
                    continue
                if self._handled(services) >= len(self.dropped):
                    break
                deadline = deadline or time.monotonic() + 60.0 + 5.0 * len(self.dropped)
                if time.monotonic() > deadline:
                    log.warning("demo: %d of %d X-ray scan(s) handled before the deadline; stopping anyway",
                                self._handled(services), len(self.dropped))
                    break
                self._stop.wait(self.poll_s)
            services.stop.set()  # --exit-when-done: the X-ray thread follows its folder until stopped
        except Exception:  # the demo goes on without its remaining scans
            log.exception("demo: the X-ray feeder failed; %d scan(s) not dropped", len(pending))
            if self.stop_when_done:
                services.stop.set()


def add_demo_xray(data: dict[str, Any], workdir: Path, sim_dir: Path, seed: int, *,
                  stop_when_done: bool = False) -> DemoXray:
    """Render (once per seed and lane) the demo lane's X-ray scans, build the scanner's calibration, empty
    the drop folder (each demo run starts from an empty store) and add the ``xray:`` section to ``data``
    (the demo config, as a dict). ``stop_when_done``: ``--exit-when-done``."""
    lane_id = str(data["lanes"][0]["id"])  # the cargo lane
    cache = (workdir / f"xray-{sim_dir.name}").resolve()
    if (cache / TRUTH_FILE).is_file():
        scans = load_demo_scans(cache)
    else:
        log.info("rendering the demo's X-ray scans into %s", cache)
        if cache.exists():
            shutil.rmtree(cache)
        scans = render_demo_scans(sim_dir / "truth.json", cache, seed, lane_id)
    calibration = (workdir / "xray" / "calibration").resolve()
    build_demo_calibration(calibration, seed)
    drop = (workdir / "xray" / "drop").resolve()
    if drop.exists():
        shutil.rmtree(drop)  # last run's done/ and rejected/: their results went with the old store
    drop.mkdir(parents=True)
    xray = DemoXray(cache, drop, calibration, lane_id, scans, stop_when_done=stop_when_done)
    data["xray"] = xray.section()
    return xray
