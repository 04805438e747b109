"""The simulated passenger lane (Bắc Luân I style): kiosk scans of CCCD cards and a face camera.

``simulate_passengers(out_dir, passengers, seed)`` writes::

    DIR/lane.yaml                 a passenger lane (face video + kiosk folder) and its faces section
    DIR/cameras/face.mp4          640 x 480 at 10 fps: each passenger's capture, an empty wall between
    DIR/kiosk/<epoch ms>_P0007.png    the CCCD card on the scanner glass (QR with the CCCD record)
    DIR/enrol/<id number>.jpg     reference photos to enrol (`appliance faces enrol --folder DIR/enrol`)
    DIR/enrol/watchlist/<label>.jpg   faces for the face watchlist
    DIR/docreader.src/<id number>.jpg what the document reader hands over (copied to docreader/ per run)
    DIR/truth.json                every passage: scenario, times, expected decision and reason codes

The one real face is ``skimage.data.astronaut()``; other people are upscaled LFW crops from
``skimage.data.lfw_subset()`` (``faces_render.other_face``). Live captures, prints and screen
replays are the crude renderings of ``faces_render``: they exercise the lane's paths and its
reasons, they measure nothing about real attacks. Scenarios and what the lane must decide:

==================== ======================================================= ========================
scenario             what happens                                            expected
==================== ======================================================= ========================
genuine              enrolled, live astronaut                                OPEN
impostor             enrolled as another person, the astronaut presents      MANUAL face_mismatch
printed              a printed photo of the astronaut, moved by hand         MANUAL presentation_attack
replay               the astronaut's photo on a phone screen                 MANUAL presentation_attack
no_face              nobody in front of the camera                           MANUAL no_face
two_faces            two people in the frame (tailgating)                    MANUAL several_faces
unreadable_document  the card's QR under glare and blur                      MANUAL document_unreadable
invalid_document     a CCCD whose id digits disagree with the birth year     MANUAL document_invalid
not_enrolled         no template and no document-reader photo                MANUAL reference_missing
document_reader      not enrolled; the reader hands over the chip photo      OPEN
corrupt_reference    the reader hands over bytes that are not an image       MANUAL reference_unusable
listed_face          a face on the face watchlist presents (enrolled)        DENY face_listed
==================== ======================================================= ========================
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from PIL import Image, ImageDraw

from appliance.errors import SimulationError
from appliance.sim import faces_render as fr
from appliance.sim.codes_render import qr_image
from appliance.sim.fonts import font

log = logging.getLogger(__name__)

FPS = 10.0
WIDTH, HEIGHT = 640, 480
CAPTURE_S = 3.0  # face frames per passage (the lane's faces.capture_s)
GAP_S = 1.5  # empty lane between two passengers
DEFAULT_START = 1795000000.0
SCENARIOS = (
    "genuine", "impostor", "printed", "replay", "no_face", "two_faces", "unreadable_document",
    "invalid_document", "not_enrolled", "document_reader", "corrupt_reference", "listed_face",
)
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "genuine": ("OPEN", ("all_checks_passed",)),
    "impostor": ("MANUAL", ("face_mismatch",)),
    "printed": ("MANUAL", ("presentation_attack",)),
    "replay": ("MANUAL", ("presentation_attack",)),
    "no_face": ("MANUAL", ("no_face",)),
    "two_faces": ("MANUAL", ("several_faces",)),
    "unreadable_document": ("MANUAL", ("document_unreadable",)),
    "invalid_document": ("MANUAL", ("document_invalid",)),
    "not_enrolled": ("MANUAL", ("reference_missing",)),
    "document_reader": ("OPEN", ("all_checks_passed",)),
    "corrupt_reference": ("MANUAL", ("reference_unusable",)),
    "listed_face": ("DENY", ("face_listed",)),
}
# A default mix: mostly ordinary passengers, every problem at least once per 18.
MIX = ("genuine", "genuine", "impostor", "genuine", "printed", "genuine", "replay", "no_face", "genuine",
       "two_faces", "unreadable_document", "document_reader", "invalid_document", "not_enrolled", "genuine",
       "corrupt_reference", "listed_face", "genuine")
SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Lò")
GIVEN = ("Văn An", "Thị Bình", "Minh Châu", "Văn Dũng", "Thị Hoa", "Quốc Khánh", "Thu Hà", "Đức Long",
         "Thị Mai", "Văn Nam", "Hồng Nhung", "Văn Phúc")
PLACES = ("Hải Hòa, Móng Cái, Quảng Ninh", "Ka Long, Móng Cái, Quảng Ninh", "Trà Cổ, Móng Cái, Quảng Ninh",
          "Hải Yên, Móng Cái, Quảng Ninh")
OTHER_FACES = (1, 2, 3, 5, 7, 8, 11, 14, 15, 18, 19, 22)  # lfw_subset faces dlib finds (faces_render.other_face)


@dataclass(frozen=True)
class PassengerTruth:
    id: str
    scenario: str
    id_number: str
    name: str
    kiosk_ms: int
    capture_start: float
    capture_end: float
    expected_decision: str
    expected_reasons: tuple[str, ...]


@dataclass(frozen=True)
class PassengerSimulation:
    out_dir: Path
    lane_yaml_path: Path
    truth_path: Path
    passengers: tuple[PassengerTruth, ...]
    frames: int


def cccd_payload(rng: np.random.Generator, valid: bool = True) -> tuple[str, str]:
    """(payload, id number) of a CCCD QR (id|old id|name|birth|sex|address|issued); ``valid=False``
    breaks the id's sex/year digits."""
    sex = "Nam" if rng.random() < 0.5 else "Nữ"
    year = int(rng.integers(1960, 2006))
    code = 2 * ((year - 1900) // 100) + (0 if sex == "Nam" else 1)
    if not valid:
        code = (code + 1) % 10  # the other sex, or another century: the id disagrees with the person
    province = ("022", "020", "001", "031")[int(rng.integers(4))]
    id_number = f"{province}{code}{year % 100:02d}{int(rng.integers(0, 1_000_000)):06d}"
    birth = f"{int(rng.integers(1, 29)):02d}{int(rng.integers(1, 13)):02d}{year}"
    issued = f"{int(rng.integers(1, 29)):02d}{int(rng.integers(1, 13)):02d}{int(rng.integers(2021, 2026))}"
    name = f"{SURNAMES[int(rng.integers(len(SURNAMES)))]} {GIVEN[int(rng.integers(len(GIVEN)))]}"
    address = PLACES[int(rng.integers(len(PLACES)))]
    return f"{id_number}||{name}|{birth}|{sex}|{address}|{issued}", id_number


def render_card(payload: str, rng: np.random.Generator, unreadable: bool = False) -> np.ndarray:
    """A CCCD card on the kiosk's scanner glass (960 x 720 BGR), its QR holding ``payload``."""
    card_w, card_h = 856, 540  # 85.6 x 54 mm at 10 px/mm
    card = Image.new("RGB", (card_w, card_h), (226, 236, 244))
    pen = ImageDraw.Draw(card)
    pen.rectangle((0, 0, card_w, 70), fill=(170, 40, 40))
    pen.text((24, 18), "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", font=font("latin_bold", 26), fill=(250, 240, 200))
    pen.text((24, 90), "CĂN CƯỚC CÔNG DÂN", font=font("latin_bold", 34), fill=(30, 40, 90))
    fields = payload.split("|")
    pen.text((24, 150), f"Số / No.: {fields[0]}", font=font("latin_regular", 26), fill=(20, 20, 20))
    pen.text((24, 195), f"Họ và tên: {fields[2]}", font=font("latin_regular", 26), fill=(20, 20, 20))
    pen.rectangle((24, 260, 204, 500), fill=(190, 200, 210))  # the printed portrait, not used by the lane
    page = np.ascontiguousarray(np.asarray(card, np.uint8)[..., ::-1])
    qr = qr_image(payload, 5)
    qh, qw = qr.shape
    x, y = card_w - qw - 24, card_h - qh - 24
    page[y:y + qh, x:x + qw] = qr[..., None]
    if unreadable:  # glare over the code and a smudge: no decoder can read it
        cx, cy = x + qw // 2, y + qh // 2
        cv2.circle(page, (cx, cy), qw // 3, (255, 255, 255), -1)
        page[y:y + qh, x:x + qw] = cv2.GaussianBlur(page[y:y + qh, x:x + qw], (0, 0), 6)
    surface = np.full((720, 960, 3), 48, np.uint8)
    angle = float(rng.uniform(-4, 4))
    m = cv2.getRotationMatrix2D((card_w / 2, card_h / 2), angle, 1.0)
    m[:, 2] += np.array([480 - card_w / 2 + rng.uniform(-20, 20), 360 - card_h / 2 + rng.uniform(-15, 15)])
    warped = cv2.warpAffine(page, m, (960, 720), borderMode=cv2.BORDER_CONSTANT, borderValue=(48, 48, 48))
    mask = cv2.warpAffine(np.full((card_h, card_w), 255, np.uint8), m, (960, 720))
    out = np.where(mask[..., None] > 127, warped, surface)
    noise = rng.normal(0, 2.5, out.shape)
    return np.clip(out.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _on_canvas(image: np.ndarray, x: int = 0, y: int = 0) -> np.ndarray:
    """``image`` placed on a 640 x 480 grey-blue wall at (x, y), cropped to fit."""
    canvas = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    canvas[:] = (128, 134, 138)
    h, w = min(image.shape[0], HEIGHT - y), min(image.shape[1], WIDTH - x)
    canvas[y:y + h, x:x + w] = image[:h, :w]
    return canvas


def _wall_frames(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    wall = _on_canvas(np.zeros((0, 0, 3), np.uint8))
    return [np.clip(wall + rng.normal(0, 2, wall.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def capture_frames(scenario: str, n: int, seed: int) -> list[np.ndarray]:
    """The face camera's ``n`` frames (640 x 480 BGR) of one passage."""
    rng = np.random.default_rng([seed, 11])
    if scenario in ("printed",):
        return fr.printed_photo_sequence(n, seed=seed)
    if scenario == "replay":
        return fr.replay_sequence(n, seed=seed)
    if scenario == "no_face":
        return _wall_frames(n, rng)
    if scenario == "listed_face":
        return fr.other_face_sequence(OTHER_FACES[0], n, seed=seed)
    live = fr.live_sequence(n, seed=seed)
    if scenario == "two_faces":
        return [_on_canvas(np.hstack([f[:, 75:375], f[:, 75:375]]), 20, 0) for f in live]
    return [_on_canvas(f, 64, 0) for f in live]


def simulate_passengers(out_dir: Path, passengers: int, seed: int, *, scenarios: list[str] | None = None,
                        start_time: float = DEFAULT_START, gate: str = "VNMCI", overwrite: bool = False
                        ) -> PassengerSimulation:
    """Render ``passengers`` passages (``scenarios`` in order, else the default mix shuffled by ``seed``)."""
    if passengers < 1:
        raise SimulationError("passengers must be at least 1")
    chosen = list(scenarios) if scenarios is not None else _mix(passengers, seed)
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        raise SimulationError(f"unknown passenger scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    if len(chosen) != passengers:
        raise SimulationError(f"{passengers} passengers but {len(chosen)} scenarios")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise SimulationError(f"{out_dir} is not empty (use overwrite)")
        for name in ("cameras", "kiosk", "enrol", "docreader", "docreader.src"):
            shutil.rmtree(out_dir / name, ignore_errors=True)
    for name in ("cameras", "kiosk", "enrol/watchlist", "docreader.src", "docreader"):
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 2026])
    per_passage = round((CAPTURE_S + GAP_S) * FPS)
    capture_n = round(CAPTURE_S * FPS) - 1
    video = out_dir / "cameras" / "face.mp4"
    writer = cv2.VideoWriter(str(video), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SimulationError(f"cannot open an mp4v video writer for {video}; is opencv-python built with FFmpeg?")
    truths: list[PassengerTruth] = []
    frames = 0
    watch_written = False
    try:
        for i, scenario in enumerate(chosen):
            pid = f"P{i:04d}"
            payload, id_number = cccd_payload(rng, valid=scenario != "invalid_document")
            t0 = start_time + i * per_passage / FPS
            kiosk_ms = round((t0 + 0.05) * 1000)
            card = render_card(payload, rng, unreadable=scenario == "unreadable_document")
            cv2.imwrite(str(out_dir / "kiosk" / f"{kiosk_ms}_{pid}.png"), card)
            _write_references(out_dir, scenario, id_number, i)
            if scenario == "listed_face" and not watch_written:
                cv2.imwrite(str(out_dir / "enrol" / "watchlist" / "listed-0.jpg"), fr.other_face(OTHER_FACES[0]))
                watch_written = True
            # frame 0 of the passage is the empty lane as the card goes down; the capture follows.
            shots = [*_wall_frames(1, rng), *capture_frames(scenario, capture_n, seed * 1000 + i)]
            shots += _wall_frames(per_passage - len(shots), rng)
            for frame in shots:
                writer.write(frame)
            frames += len(shots)
            decision, reasons = EXPECTED[scenario]
            truths.append(PassengerTruth(pid, scenario, id_number, payload.split("|")[2], kiosk_ms, t0 + 1 / FPS,
                                         t0 + CAPTURE_S, decision, reasons))
    finally:
        writer.release()
    lane_path = out_dir / "lane.yaml"
    lane_path.write_text(passenger_lane_yaml(start_time, gate, seed), encoding="utf-8")
    truth_path = out_dir / "truth.json"
    truth_path.write_text(json.dumps({"seed": seed, "passengers": [asdict(t) for t in truths]}, ensure_ascii=False,
                                     indent=1) + "\n", encoding="utf-8")
    reset_document_reader(out_dir)
    log.info("simulated %d passengers into %s", passengers, out_dir)
    return PassengerSimulation(out_dir, lane_path, truth_path, tuple(truths), frames)


def _write_references(out_dir: Path, scenario: str, id_number: str, index: int) -> None:
    enrol = out_dir / "enrol" / f"{id_number}.jpg"
    if scenario in ("genuine", "printed", "replay", "no_face", "two_faces", "unreadable_document"):
        cv2.imwrite(str(enrol), fr.astronaut_bgr())
    elif scenario == "impostor":
        cv2.imwrite(str(enrol), fr.other_face(OTHER_FACES[1 + index % (len(OTHER_FACES) - 1)]))
    elif scenario == "listed_face":
        cv2.imwrite(str(enrol), fr.other_face(OTHER_FACES[0]))
    elif scenario == "document_reader":
        cv2.imwrite(str(out_dir / "docreader.src" / f"{id_number}.jpg"), fr.astronaut_bgr())
    elif scenario == "corrupt_reference":
        (out_dir / "docreader.src" / f"{id_number}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")


def reset_document_reader(out_dir: Path) -> None:
    """Put the document reader's drops back (the reader deletes each photo once read)."""
    target = out_dir / "docreader"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(out_dir / "docreader.src", target)


def passenger_lane_yaml(start_time: float, gate: str, seed: int) -> str:
    doc: dict[str, Any] = {
        "site": {"gate": gate, "name": f"Simulated passenger lane (seed {seed})", "box_id": "sim-box"},
        "lanes": [{
            "id": "passenger-1",
            "kind": "passenger",
            "sources": [
                {"id": "face", "role": "face", "type": "video_file", "path": "cameras/face.mp4",
                 "start_time": start_time, "realtime": False},
                {"id": "kiosk", "role": "kiosk", "type": "folder", "path": "kiosk", "follow": False,
                 "move_processed": False},
            ],
        }],
        "faces": {"key_file": "face.key", "store_path": "faces.db", "document_reader_dir": "docreader",
                  "capture_s": CAPTURE_S},
    }
    header = ("# Generated by `appliance simulate --passengers`: a passenger lane run from the files next to it.\n"
              "# Create the key and enrol first: appliance faces keygen --config lane.yaml; "
              "appliance faces enrol --config lane.yaml --folder enrol\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def read_truth(path: Path) -> list[PassengerTruth]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return [PassengerTruth(**{**p, "expected_reasons": tuple(p["expected_reasons"])}) for p in doc["passengers"]]


def _mix(passengers: int, seed: int) -> list[str]:
    rng = np.random.default_rng([seed, 7])
    out: list[str] = []
    while len(out) < passengers:
        block = list(MIX)
        rng.shuffle(block)
        out.extend(block)
    return out[:passengers]
