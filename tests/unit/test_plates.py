"""PlateReader on plates rendered here with Pillow, placed in a larger scene."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from appliance.analyzers.ocr import OcrEngine
from appliance.analyzers.plates import PlateReader, estimate_colour
from appliance.errors import FrameError, ModelError
from appliance.reads import BBox, TextLine

LATIN = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf")
CJK = Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc")

RGB = tuple[int, int, int]
WHITE: RGB = (245, 245, 240)
YELLOW: RGB = (245, 200, 30)
BLUE: RGB = (20, 60, 190)
GREEN: RGB = (110, 215, 130)
INK: RGB = (20, 20, 20)
PAPER: RGB = (250, 250, 250)


def _font(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"font {path} not installed")
    return path


def render_plate(lines: Sequence[str], bg: RGB, fg: RGB, size: tuple[int, int], font: Path = LATIN) -> np.ndarray:
    """A plate: a coloured rectangle with a border and one or two centred text rows (BGR)."""
    w, h = size
    image = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(image)
    draw.rectangle((2, 2, w - 3, h - 3), outline=fg, width=3)
    row_h = (h - 12) / len(lines)
    face = ImageFont.truetype(str(_font(font)), int(row_h * 0.8))
    for i, text in enumerate(lines):
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=face)
        draw.text(((w - (x1 - x0)) / 2 - x0, 6 + i * row_h + (row_h - (y1 - y0)) / 2 - y0), text, fill=fg, font=face)
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def render_scene(
    plates: Sequence[tuple[np.ndarray, tuple[int, int]]], size: tuple[int, int] = (1280, 720)
) -> np.ndarray:
    """A grey lane with a dark vehicle body, a timestamp overlay and a sign, plates pasted in."""
    w, h = size
    ramp = np.tile(np.linspace(60, 140, w, dtype=np.uint8), (h, 1))
    scene = cv2.merge([ramp, ramp, ramp])
    noise = np.random.default_rng(0).integers(0, 12, scene.shape, dtype=np.uint8)
    scene = np.clip(scene.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    cv2.rectangle(scene, (200, 150), (1000, 600), (90, 70, 50), -1)
    cv2.putText(scene, "2024-05-12 06:12:32", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    cv2.putText(scene, "CUSTOMS EXIT", (260, 230), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (230, 230, 230), 3)
    for plate, (x, y) in plates:
        scene[y : y + plate.shape[0], x : x + plate.shape[1]] = plate
    return scene


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    try:
        return OcrEngine.from_store()
    except ModelError as exc:  # a checkout without the PP-OCR models prepared
        pytest.skip(f"OCR models unavailable: {exc}")


@pytest.fixture(scope="module")
def reader(engine: OcrEngine) -> PlateReader:
    return PlateReader(engine)


CASES = [
    pytest.param(["29C-123.45"], WHITE, INK, (260, 60), LATIN, "29C-123.45", "VN", "one_line", "white", False,
                 id="vn-1"),
    pytest.param(["51R", "141.39"], YELLOW, INK, (190, 140), LATIN, "51R-141.39", "VN", "two_line", "yellow", True,
                 id="vn-2-trailer"),
    pytest.param(["桂A·12345"], BLUE, PAPER, (260, 60), CJK, "桂A12345", "CN", "one_line", "blue", False, id="cn-1"),
    pytest.param(["桂A", "1234挂"], YELLOW, INK, (220, 140), CJK, "桂A1234挂", "CN", "two_line", "yellow", True,
                 id="cn-2-trailer"),
    pytest.param(["桂AD12345"], GREEN, INK, (300, 60), CJK, "桂AD12345", "CN", "one_line", "green", False,
                 id="cn-new-energy"),
]  # fmt: skip


@pytest.mark.parametrize(("lines", "bg", "fg", "size", "font", "text", "country", "layout", "colour", "trailer"), CASES)
def test_reads_plates_in_a_scene(
    reader: PlateReader,
    lines: list[str],
    bg: RGB,
    fg: RGB,
    size: tuple[int, int],
    font: Path,
    text: str,
    country: str,
    layout: str,
    colour: str,
    trailer: bool,
) -> None:
    plate = render_plate(lines, bg, fg, size, font)
    reads = reader.read(render_scene([(plate, (500, 400))]))
    assert [r.text for r in reads] == [text]  # the timestamp and the sign are not plates
    read = reads[0]
    assert (read.country, read.layout, read.colour, read.is_trailer) == (country, layout, colour, trailer)
    assert read.confidence > 0.5
    box = read.bbox  # the text on the plate, in frame coordinates
    assert box is not None
    assert box.x >= 490 and box.x + box.w <= 500 + size[0] + 10
    assert box.y >= 390 and box.y + box.h <= 400 + size[1] + 10
    assert box.w >= size[0] // 2


@pytest.mark.parametrize(("lines", "bg", "fg", "size", "font", "text", "country", "layout", "colour", "trailer"), CASES)
def test_reads_cropped_plates(
    reader: PlateReader,
    lines: list[str],
    bg: RGB,
    fg: RGB,
    size: tuple[int, int],
    font: Path,
    text: str,
    country: str,
    layout: str,
    colour: str,
    trailer: bool,
) -> None:
    reads = reader.read_crop(render_plate(lines, bg, fg, size, font))
    assert len(reads) == 1
    assert (reads[0].text, reads[0].layout, reads[0].colour, reads[0].is_trailer) == (text, layout, colour, trailer)


def test_two_plates_in_one_scene_are_both_read(reader: PlateReader) -> None:
    vn = render_plate(["29C-123.45"], WHITE, INK, (260, 60))
    cn = render_plate(["桂A", "1234挂"], YELLOW, INK, (220, 140), CJK)
    reads = reader.read(render_scene([(vn, (260, 420)), (cn, (700, 380))]))
    assert sorted(r.text for r in reads) == ["29C-123.45", "桂A1234挂"]


def test_small_plate_is_read_through_the_crop_reread(engine: OcrEngine) -> None:
    plate = render_plate(["51F-678.90"], WHITE, INK, (130, 30))
    scene = render_scene([(plate, (560, 450))], size=(1920, 1080))
    assert [r.text for r in PlateReader(engine, max_side=960).read(scene)] == ["51F-678.90"]


def test_crop_and_reread_fixes_a_poor_first_reading(engine: OcrEngine) -> None:
    plate = render_plate(["51F-678.90"], WHITE, INK, (200, 46))
    scene = render_scene([(plate, (600, 420))], size=(1920, 1080))
    # What a small, blurred detection gives: a box clipping the plate text, a garbled reading.
    poor = [TextLine("5IF-67B.9", 0.6, BBox(608, 430, 184, 28))]
    assert [r.text for r in PlateReader(engine).read(scene, lines=poor)] == ["51F-678.90"]
    assert "51F-678.90" not in [r.text for r in PlateReader(engine, reread=False).read(scene, lines=poor)]


def test_scene_without_plates_gives_nothing(reader: PlateReader) -> None:
    assert reader.read(render_scene([])) == ()


def test_region_of_interest_limits_the_search_and_keeps_frame_coordinates(reader: PlateReader) -> None:
    plate = render_plate(["29C-123.45"], WHITE, INK, (260, 60))
    scene = render_scene([(plate, (500, 400))])
    inside = reader.read(scene, roi=BBox(400, 300, 500, 250))
    assert [r.text for r in inside] == ["29C-123.45"]
    assert inside[0].bbox is not None and 490 <= inside[0].bbox.x <= 530 and 390 <= inside[0].bbox.y <= 420
    assert reader.read(scene, roi=BBox(0, 500, 400, 220)) == ()


def test_lines_from_a_shared_ocr_pass_give_the_same_plates(engine: OcrEngine, reader: PlateReader) -> None:
    plate = render_plate(["51R", "141.39"], YELLOW, INK, (190, 140))
    scene = render_scene([(plate, (500, 400))])
    lines = engine.read(scene, max_side=reader.max_side)
    assert [r.text for r in reader.read(scene, lines=lines)] == [r.text for r in reader.read(scene)]


def test_foreign_plates_only_from_find_when_asked(engine: OcrEngine) -> None:
    plate = render_plate(["RK-896AL"], WHITE, INK, (260, 60))
    scene = render_scene([(plate, (500, 400))])
    assert PlateReader(engine).read(scene) == ()
    found = PlateReader(engine, countries=("VN", "CN", "FOREIGN")).find(scene)
    assert [f.text for f in found] == ["RK896AL"]
    assert found[0].to_read() is None  # PlateRead carries VN/CN only


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "image.jpg",
        np.zeros((2, 2, 3), np.uint8),
        np.zeros((50, 50, 3), np.float32),
        np.zeros((5, 5, 5), np.uint8),
    ],
)
def test_bad_input_raises_frame_error(reader: PlateReader, bad: object) -> None:
    with pytest.raises(FrameError):
        reader.read(bad)  # type: ignore[arg-type]
    with pytest.raises(FrameError):
        reader.read_crop(bad)  # type: ignore[arg-type]


def test_region_of_interest_outside_the_frame_raises_frame_error(reader: PlateReader) -> None:
    with pytest.raises(FrameError):
        reader.read(render_scene([]), roi=BBox(5000, 5000, 100, 100))


@pytest.mark.parametrize(
    ("bg", "fg", "colour"),
    [(WHITE, INK, "white"), (YELLOW, INK, "yellow"), (BLUE, PAPER, "blue"), (GREEN, INK, "green"),
     ((200, 30, 30), PAPER, "red")],
)  # fmt: skip
def test_colour_is_the_plate_background(bg: RGB, fg: RGB, colour: str) -> None:
    plate = render_plate(["29C-123.45"], bg, fg, (260, 60))
    assert estimate_colour(plate, (0.0, 0.0, 260.0, 60.0)) == colour


def test_lane_hints_stop_the_second_look(engine: OcrEngine) -> None:
    """In the lane: no re-read of text explained otherwise, nor when asked for none this frame."""
    plate = render_plate(["51F-678.90"], WHITE, INK, (200, 46))
    scene = render_scene([(plate, (600, 420))], size=(1920, 1080))
    poor = [TextLine("5IF-67B.9", 0.6, BBox(608, 430, 184, 28))]
    reader = PlateReader(engine)
    assert [r.text for r in reader.read(scene, lines=poor)] == ["51F-678.90"]
    explained = [BBox(600, 425, 200, 40)]  # e.g. the box of a seal serial the lane already read
    assert "51F-678.90" not in [r.text for r in reader.read(scene, lines=poor, exclude=explained)]
    assert "51F-678.90" not in [r.text for r in reader.read(scene, lines=poor, reread=False)]
    # An exclusion elsewhere in the frame changes nothing.
    assert [r.text for r in reader.read(scene, lines=poor, exclude=[BBox(0, 0, 100, 100)])] == ["51F-678.90"]


def test_rows_of_a_plate_read_cleanly_get_no_second_look(engine: OcrEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane's frame OCR read both rows of a two-line plate well: neither the plate nor a row of
    it is cropped and read again (a row alone can never read as more than its plate)."""
    plate = render_plate(["51R", "141.39"], YELLOW, INK, (190, 140))
    scene = render_scene([(plate, (600, 420))], size=(1920, 1080))
    rows = [TextLine("51R", 0.97, BBox(650, 430, 90, 55)), TextLine("141.39", 0.96, BBox(612, 492, 166, 58))]
    ocr_calls: list[str] = []
    monkeypatch.setattr(engine, "read", lambda *a, **k: ocr_calls.append("detector") or [])
    monkeypatch.setattr(engine.recognizer, "recognize", lambda *a, **k: ocr_calls.append("recogniser") or [])
    reader = PlateReader(engine, skip_confident=0.9)
    scan = reader.scan(rows)
    assert [r.text for r in reader.read(scene, lines=rows, scan=scan)] == ["51R-141.39"]
    assert ocr_calls == []
    # What the lane tells the container reader: this text is a plate, no number to look for there.
    (box,) = scan.clean_boxes(0.9)
    assert (box.x, box.y, box.x + box.w, box.y + box.h) == (612, 430, 778, 550)
    with pytest.raises(ValueError, match="scan"):
        reader.read(scene, lines=list(rows), scan=scan)  # a scan of other lines
