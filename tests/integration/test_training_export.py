"""`appliance training export` on a real simulated lane and a real SQLite store with inspector decisions."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from appliance.analyzers.ocr import OcrEngine
from appliance.publish.decision_events import DecisionEventBuilder
from appliance.sim import simulate
from appliance.sim.model import Plate
from appliance.sim.plates_render import plate_line_texts
from appliance.store import decisions
from appliance.store.db import Store
from appliance.store.decisions import DecisionRequest
from appliance.training import ExportError, splits
from appliance.training.cli import main
from appliance.training.export import export_training_data
from appliance.training.guards import SHARED_EVAL
from appliance.verdicts.manifest import plate_key
from tests.web.review_helpers import add_crossing

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["plate", "container_number", "seal", "fleet_id"]
SEED = 32  # 3 vehicles: a VN tractor by day, an IGV (fleet ID, no plate), a CN tractor at night
EVENTS = DecisionEventBuilder("VNHNG", "box-1")
CONFIG = """\
site: {gate: VNHNG, box_id: lane1-box}
lanes:
  - id: cargo-1
    sources: [{id: front, type: video_file, role: front, path: front.mp4}]
storage: {path: gate.db, evidence_dir: evidence}
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "lane"
    simulate(out, 3, SEED, width=960, height=540, gap_s=0.4)
    return out


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gate store: one crossing corrected and approved, one approved, one nobody reviewed."""
    folder = tmp_path_factory.mktemp("gate")
    path = folder / "lane.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    store = Store(folder / "gate.db", folder / "evidence")
    try:
        fixed = add_crossing(store, "cargo-1_a", plate="29C-123.45", container="MSKU1234565")
        sha = fixed.tractor_plate.evidence_sha256 if fixed.tractor_plate else None
        decisions.record(store, "cargo-1_a", "lan", "inspector",
                         DecisionRequest("correct", "plate misread", "tractor_plate", "29C-123.45", "29C-128.45", sha),
                         EVENTS)
        decisions.record(store, "cargo-1_a", "lan", "inspector", DecisionRequest("approve", "checked"), EVENTS)
        add_crossing(store, "cargo-1-b", plate="51D-678.90", container="TGHU0745937", ended_at=1_795_002_000.0)
        decisions.record(store, "cargo-1-b", "lan", "inspector", DecisionRequest("approve", "ok"), EVENTS)
        add_crossing(store, "cargo-1-c", plate="30A-111.22", container="CSQU2543008", ended_at=1_795_003_000.0)
    finally:
        store.close()
    return path


@pytest.fixture(scope="module")
def out(sim: Path, config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("export") / "data"
    assert main(["training", "export", "--sim", str(sim), "--config", str(config), "--out", str(target),
                 "--every", "3"]) == 0
    return target


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine.from_store()


def truth(sim: Path) -> dict[str, Any]:
    return json.loads((sim / "truth.json").read_text(encoding="utf-8"))


def vehicles(sim: Path) -> dict[str, dict[str, Any]]:
    return {v["id"]: v for v in truth(sim)["vehicles"]}


def labels(folder: Path) -> list[tuple[str, str]]:
    lines = (folder / "labels.txt").read_text(encoding="utf-8").splitlines()
    return [(name, text) for name, text in (line.split("\t") for line in lines)]


def meta(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for s in ("train", "val")
            for line in (out / "recognizer" / s / "meta.jsonl").read_text(encoding="utf-8").splitlines()]


def boxes(label_file: Path, width: int, height: int) -> list[tuple[str, int, int, int, int]]:
    out = []
    for line in label_file.read_text().splitlines():
        c, cx, cy, w, h = line.split()
        x0, y0 = (float(cx) - float(w) / 2) * width, (float(cy) - float(h) / 2) * height
        out.append((CLASSES[int(c)], round(x0), round(y0), round(float(w) * width), round(float(h) * height)))
    return out


def plate_on(vehicle: dict[str, Any], camera: str) -> str | None:
    plate = vehicle["tractor_plate"] if camera == "front" else (vehicle["trailer_plate"] or vehicle["tractor_plate"])
    return plate["text"] if plate else None


def true_texts(vehicle: dict[str, Any]) -> set[str]:
    """Every text a crop of this vehicle may carry: plates (whole and per line), container, seal, fleet ID."""
    texts: set[str] = set()
    for p in (vehicle["tractor_plate"], vehicle["trailer_plate"]):
        if p:
            texts |= {p["text"], *plate_line_texts(Plate(p["text"], p["country"], p["layout"], p["colour"]))}
    texts |= {c["number"] for c in vehicle["containers"]} | {s["serial"] for s in vehicle["seals"] if s["serial"]}
    return texts | ({vehicle["fleet_id"]} if vehicle["fleet_id"] else set())


def read_frames(video: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames: dict[int, np.ndarray] = {}
    try:
        for f in range(max(wanted) + 1):
            ok, image = cap.read() if f in wanted else (cap.grab(), None)
            assert ok, f"{video} ends at frame {f}"
            if image is not None:
                frames[f] = image
    finally:
        cap.release()
    return frames


def test_detector_layout_and_labels_parse(out: Path) -> None:
    data = yaml.safe_load((out / "detector" / "data.yaml").read_text(encoding="utf-8"))
    assert data == {"path": str((out / "detector").resolve()), "train": "images/train", "val": "images/val",
                    "names": dict(enumerate(CLASSES))}
    for split in ("train", "val"):
        images = {p.stem for p in (out / "detector" / "images" / split).glob("*.jpg")}
        texts = {p.stem for p in (out / "detector" / "labels" / split).glob("*.txt")}
        assert images and images == texts
        for stem in texts:
            assert cv2.imread(str(out / "detector" / "images" / split / f"{stem}.jpg")).shape == (540, 960, 3)
            for line in (out / "detector" / "labels" / split / f"{stem}.txt").read_text().splitlines():
                fields = line.split(" ")
                assert len(fields) == 5 and fields[0] in {"0", "1", "2", "3"}, line
                cx, cy, w, h = map(float, fields[1:])
                assert 0 < w <= 1 and 0 < h <= 1, line
                assert cx - w / 2 >= -1e-6 and cx + w / 2 <= 1 + 1e-6, line
                assert cy - h / 2 >= -1e-6 and cy + h / 2 <= 1 + 1e-6, line


def test_every_class_is_there_and_frames_without_objects_have_empty_labels(out: Path, sim: Path) -> None:
    seen = Counter(line.split()[0] for p in out.glob("detector/labels/*/*.txt") for line in p.read_text().splitlines())
    assert set(seen) == {"0", "1", "2", "3"}
    # The IGV has no plate: its front frames hold a fleet ID and never a plate.
    igv = next(v["id"] for v in truth(sim)["vehicles"] if v["kind"] == "igv")
    igv_front = list(out.glob(f"detector/labels/*/sim{SEED}-{igv}_front-*.txt"))
    classes = [line.split()[0] for p in igv_front for line in p.read_text().splitlines()]
    assert igv_front and "3" in classes and "0" not in classes


def test_boxes_lie_on_the_painted_objects(out: Path, sim: Path, engine: OcrEngine) -> None:
    """Each box differs from the empty lane just before the vehicle came, and most plates read true."""
    t, by_id = truth(sim), vehicles(sim)
    samples = []
    for p in sorted(out.glob("detector/labels/*/*.txt")):
        unit, frame = p.stem.rsplit("_", 1)
        vid, (camera, index) = unit.split("-", 1)[1], frame.split("-")
        samples.append((p, by_id[vid], camera, int(index)))
    diffs, reads, hits = [], 0, 0
    for camera in ("front", "rear"):
        mine = [s for s in samples if s[2] == camera]
        empty = {round((v["t_enter"] - t["start_time"]) * t["fps"]) - 1 for _, v, _, _ in mine}
        frames = read_frames(sim / "cameras" / f"{camera}.mp4", empty)
        for p, v, _, _ in mine:
            image = cv2.imread(str(p.parent.parent.parent / "images" / p.parent.name / f"{p.stem}.jpg"))
            before = frames[round((v["t_enter"] - t["start_time"]) * t["fps"]) - 1]
            for cls, x, y, w, h in boxes(p, 960, 540):
                region = (slice(y, y + h), slice(x, x + w))
                diffs.append(float(cv2.absdiff(image[region], before[region]).mean()))
                if cls == "plate" and h >= 20:
                    crop = cv2.resize(image[max(0, y - 6) : y + h + 6, max(0, x - 6) : x + w + 6], None, fx=3, fy=3,
                                      interpolation=cv2.INTER_CUBIC)
                    crop = cv2.copyMakeBorder(crop, 30, 30, 30, 30, cv2.BORDER_REPLICATE)
                    text = "".join(line.text for line in engine.read(crop))
                    reads += 1
                    hits += plate_key(text) == plate_key(plate_on(v, camera) or "")
    assert len(diffs) >= 20
    assert sum(d > 20 for d in diffs) >= 0.9 * len(diffs), sorted(diffs)[:10]
    assert reads >= 5 and hits >= 0.6 * reads, (hits, reads)


def test_no_vehicle_or_crossing_in_both_splits(out: Path) -> None:
    units: dict[str, set[str]] = {"train": set(), "val": set()}
    for split in units:
        units[split] |= {p.stem.rsplit("_", 1)[0] for p in (out / "detector" / "images" / split).glob("*.jpg")}
        units[split] |= {p.stem.rsplit("_", 1)[0] for p in (out / "recognizer" / split).glob("*.png")}
    assert units["train"] and units["val"]
    assert not units["train"] & units["val"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert {s: set(v) for s, v in manifest["split"]["unit_lists"].items()} == units


def test_manifest_counts_match_the_files(out: Path, sim: Path, config: Path) -> None:
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert m["classes"] == CLASSES and m["split"]["val_share"] == 0.2 and m["split"]["seed"] == 0
    assert m["command"].startswith("appliance training export --sim ") and "--every 3" in m["command"]
    assert m["created_at"]
    [s] = m["sources"]["sim"]
    assert s["path"] == str(sim.resolve()) and s["seed"] == SEED
    assert m["sources"]["store"]["config"] == str(config.resolve())
    assert "no full frame" in m["sources"]["store"]["detector"]
    for split in ("train", "val"):
        det = m["detector"]["counts"][split]
        label_files = list((out / "detector" / "labels" / split).glob("*.txt"))
        assert det["images"] == len(list((out / "detector" / "images" / split).glob("*.jpg"))) == len(label_files)
        assert det["empty_images"] == sum(not p.read_text() for p in label_files)
        per_class = Counter(CLASSES[int(line.split()[0])] for p in label_files for line in p.read_text().splitlines())
        assert det["boxes"] == {c: per_class.get(c, 0) for c in CLASSES}
        rec = m["recognizer"]["counts"][split]
        folder = out / "recognizer" / split
        rows = labels(folder)
        assert rec["crops"] == len(rows) == len(list(folder.glob("*.png")))
        assert {n for n, _ in rows} == {p.name for p in folder.glob("*.png")}
        docs = [json.loads(line) for line in (folder / "meta.jsonl").read_text(encoding="utf-8").splitlines()]
        assert rec["by_class"] == {c: sum(d["class"] == c for d in docs) for c in CLASSES}
        assert rec["by_source"] == {"sim": sum(d["source"] == "sim" for d in docs),
                                    "store": sum(d["source"] == "store" for d in docs)}


def test_recognizer_crops_carry_their_true_text(out: Path, sim: Path, engine: OcrEngine) -> None:
    by_id = vehicles(sim)
    sim_docs = [d for d in meta(out) if d["source"] == "sim"]
    assert {d["class"] for d in sim_docs} == set(CLASSES)
    for d in sim_docs:
        assert d["text"] in true_texts(by_id[d["unit"].split("-", 1)[1]]), d
    # The PP-OCR recogniser reads most crops as labelled (the boxed check digit and blur cost a few).
    checked = hits = 0
    for split in ("train", "val"):
        rows = [(n, t) for n, t in labels(out / "recognizer" / split) if n.startswith("sim")]
        if rows:
            crops = [cv2.imread(str(out / "recognizer" / split / n)) for n, _ in rows]
            for (_, text), r in zip(rows, engine.recognizer.recognize(crops), strict=True):
                checked += 1
                hits += plate_key(r.text) == plate_key(text)
    assert checked >= 10 and hits >= 0.6 * checked, (hits, checked)


def test_store_exports_the_inspectors_values(out: Path) -> None:
    docs = [d for d in meta(out) if d["source"] == "store"]
    texts = {(d["crossing"], d["class"], d["text"]) for d in docs}
    # The correction wins over the read; an approval confirms the reads; an unreviewed crossing stays out.
    assert ("cargo-1_a", "plate", "29C-128.45") in texts
    assert ("cargo-1-b", "plate", "51D-678.90") in texts
    assert ("cargo-1-b", "container_number", "TGHU0745937") in texts
    assert not [d for d in docs if d["text"] in ("29C-123.45", "30A-111.22") or d["crossing"] == "cargo-1-c"]
    corrected = [d for d in docs if d["text"] == "29C-128.45"]
    assert corrected and all(d["corrected"] and d["unit"] == "cargo-1-a" for d in corrected)
    for d in docs:
        split = "train" if (out / "recognizer" / "train" / d["file"]).exists() else "val"
        assert (d["file"], d["text"]) in labels(out / "recognizer" / split)
        crop = cv2.imread(str(out / "recognizer" / split / d["file"]))
        assert crop is not None and crop.shape[0] >= 20 and crop.std() > 10


def test_store_alone_gives_no_detector_set(config: Path, tmp_path: Path) -> None:
    result = export_training_data(tmp_path / "rec", config=config)
    assert not (tmp_path / "rec" / "detector").exists()
    assert "no full frame" in result.manifest["detector"]["note"]
    assert sum(result.manifest["recognizer"]["counts"][s]["crops"] for s in ("train", "val")) >= 3


def test_export_is_deterministic(sim: Path, tmp_path: Path) -> None:
    a = export_training_data(tmp_path / "a", [sim], every=4)
    b = export_training_data(tmp_path / "b", [sim], every=4)
    files_a = sorted(p.relative_to(a.out) for p in a.out.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b.out) for p in b.out.rglob("*") if p.is_file())
    for rel in files_a:
        if rel.suffix in (".txt", ".jsonl"):
            assert (a.out / rel).read_bytes() == (b.out / rel).read_bytes(), rel


def test_simulator_annotations_are_deterministic(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", 2, 9, width=320, height=180, gap_s=0.4)
    b = simulate(tmp_path / "b", 2, 9, width=320, height=180, gap_s=0.4)
    for camera in ("front", "rear"):
        ann = a.out_dir / "annotations" / f"{camera}.jsonl"
        assert ann.read_bytes() == (b.out_dir / "annotations" / f"{camera}.jsonl").read_bytes()
        assert [p.name for p in (a.out_dir / "cameras").glob(f"{camera}.*")] == [f"{camera}.mp4"]
        assert len(ann.read_text().splitlines()) == sum(
            round((v["t_exit"] - v["t_enter"]) * 5) + 1 for v in truth(a.out_dir)["vehicles"])


def test_refuses_evaluation_data(sim: Path, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "data"
    # This checkout's ../shared/eval: refused from the path alone, before anything under it is opened.
    assert (ROOT.parent / "shared" / "eval").resolve() == SHARED_EVAL.resolve()
    for args in (["--sim", str(ROOT / ".." / "shared" / "eval" / "lane")],
                 ["--sim", str(sim), "--config", str(ROOT.parent / "shared" / "eval" / "lane.yaml")]):
        assert main(["training", "export", *args, "--out", str(target)]) == 2
        err = capsys.readouterr().err
        assert "../shared/eval" in err and "trained on" in err
    # Any shared/eval folder, also through a symlink, and a store that a config puts there.
    copy = tmp_path / "shared" / "eval" / "lane"
    copy.parent.mkdir(parents=True)
    (tmp_path / "link").symlink_to(copy.parent)
    for path in (copy, tmp_path / "link" / "lane"):
        with pytest.raises(ExportError, match="shared/eval"):
            export_training_data(target, [path])
    moved = tmp_path / "moved.yaml"
    moved.write_text(CONFIG.replace("path: gate.db", f"path: {copy.parent / 'gate.db'}"), encoding="utf-8")
    with pytest.raises(ExportError, match="the store named by --config"):
        export_training_data(target, config=moved)
    assert not target.exists()


def test_refuses_a_non_empty_out_unless_forced(sim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "data"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    assert main(["training", "export", "--sim", str(sim), "--out", str(target)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert main(["training", "export", "--sim", str(sim), "--out", str(target), "--every", "6", "--force"]) == 0
    assert main(["training", "export", "--sim", str(sim), "--out", str(target), "--every", "8", "--force"]) == 0
    assert (target / "notes.txt").read_text() == "keep me"
    assert json.loads((target / "manifest.json").read_text())["command"].endswith("--every 8 --val-share 0.2 "
                                                                                   "--seed 0 --force")


def test_refuses_a_run_without_annotations_and_an_empty_export(sim: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    (old / "cameras").mkdir(parents=True)
    shutil.copy(sim / "truth.json", old / "truth.json")
    for camera in ("front", "rear"):
        (old / "cameras" / f"{camera}.mp4").symlink_to(sim / "cameras" / f"{camera}.mp4")
    with pytest.raises(ExportError, match="re-render it with this version of `appliance simulate`"):
        export_training_data(tmp_path / "a", [old])
    # A store where nobody reviewed anything: nothing to export, and nothing written.
    (tmp_path / "lane.yaml").write_text(CONFIG, encoding="utf-8")
    store = Store(tmp_path / "gate.db", tmp_path / "evidence")
    add_crossing(store, "cargo-1-x")
    store.close()
    with pytest.raises(ExportError, match="nothing to export"):
        export_training_data(tmp_path / "b", config=tmp_path / "lane.yaml")
    assert not (tmp_path / "b").exists()


def test_split_rule_is_stable_and_fills_both_splits() -> None:
    units = [f"sim1-V{i:04d}" for i in range(1, 1001)]
    split = splits.assign(units, 0.2, 0)
    assert 0.15 < sum(v == "val" for v in split.values()) / len(units) < 0.25
    # A unit keeps its split when others come and go; a tiny group still gets a val unit.
    assert splits.assign(units[:500], 0.2, 0) == {u: split[u] for u in units[:500]}
    small = splits.assign(["a", "b"], 0.2, 0)
    assert sorted(small.values()) == ["train", "val"]
    assert splits.assign(["only"], 0.2, 0) in ({"only": "train"}, {"only": "val"})
