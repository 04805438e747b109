"""ContainerReader on container doors rendered here with Pillow (no ../shared data)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from appliance.analyzers.containers import (
    VERIFIED_CONFIDENCE,
    ContainerReader,
    assemble,
    column_characters,
    is_marking,
    is_verified,
)
from appliance.analyzers.iso6346 import is_valid
from appliance.analyzers.ocr import OcrEngine
from appliance.errors import FrameError
from appliance.eval.containers import baseline_number, fuse_views
from appliance.reads import BBox, ContainerRead, TextLine

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf"
WHITE = (245, 245, 245)
DARK = (25, 25, 25)


@pytest.fixture(scope="module")
def reader() -> ContainerReader:
    return ContainerReader(OcrEngine.from_store())


# -- rendering ----------------------------------------------------------------------------


def door(w: int = 960, h: int = 540, colour: tuple[int, int, int] = (40, 70, 150)) -> Image.Image:
    """A container door: flat paint with darker corrugation bands."""
    img = Image.new("RGB", (w, h), colour)
    draw = ImageDraw.Draw(img)
    band = (int(colour[0] * 0.8), int(colour[1] * 0.8), int(colour[2] * 0.8))
    for x in range(0, w, 60):
        draw.rectangle((x, 0, x + 24, h), fill=band)
    return img


def boxed(draw: ImageDraw.ImageDraw, x: int, y: int, char: str, size: int, ink: tuple[int, int, int]) -> None:
    """The check digit in its painted box."""
    font = ImageFont.truetype(FONT, size)
    left, top, right, bottom = draw.textbbox((x, y), char, font=font)
    pad = size // 6
    draw.text((x, y), char, font=font, fill=ink)
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), outline=ink, width=max(2, size // 14))


RGB = tuple[int, int, int]


def paint_line(img: Image.Image, number: str, x: int, y: int, size: int = 44, ink: RGB = WHITE) -> None:
    """``MWCU 605978 [4]`` on one line."""
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, size)
    head = f"{number[:4]} {number[4:10]}"
    draw.text((x, y), head, font=font, fill=ink)
    boxed(draw, int(draw.textbbox((x, y), head, font=font)[2]) + size // 2, y, number[10], size, ink)


def paint_vertical(img: Image.Image, number: str, x: int, y: int, size: int = 34, ink: RGB = WHITE) -> None:
    """One character per line down a door post, the check digit boxed at the bottom."""
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, size)
    step = int(size * 1.15)
    for i, char in enumerate(number[:10]):
        draw.text((x, y + i * step), char, font=font, fill=ink)
    boxed(draw, x, y + 10 * step + size // 5, number[10], size, ink)


def text(img: Image.Image, value: str, x: int, y: int, size: int = 40, ink: tuple[int, int, int] = WHITE) -> None:
    ImageDraw.Draw(img).text((x, y), value, font=ImageFont.truetype(FONT, size), fill=ink)


def bgr(img: Image.Image) -> np.ndarray:
    return np.ascontiguousarray(np.array(img)[:, :, ::-1])


# -- reader -------------------------------------------------------------------------------


def test_reads_number_on_one_line_with_boxed_check_digit_and_size_type(reader: ContainerReader) -> None:
    img = door()
    paint_line(img, "MWCU6059784", 420, 120)
    text(img, "42G1", 620, 185)
    reads = reader.read(bgr(img))
    assert len(reads) == 1
    read = reads[0]
    assert read.number == "MWCU6059784"
    assert is_verified(read)
    assert read.size_type == "42G1"
    assert read.bbox is not None and 380 <= read.bbox.x <= 440 and 100 <= read.bbox.y <= 140
    assert all(is_valid(c) for c in read.candidates)


def test_invalid_painted_number_gives_candidates_not_a_read(reader: ContainerReader) -> None:
    img = door()
    paint_line(img, "MWCU6059785", 420, 120)  # check digit should be 4
    reads = reader.read(bgr(img))
    assert reads, "a candidate set is expected"
    assert not any(is_verified(r) for r in reads)
    for read in reads:
        assert read.confidence < VERIFIED_CONFIDENCE
        numbers = (read.number, *read.candidates)
        assert all(is_valid(n) for n in numbers)
        assert "MWCU6059785" not in numbers
    assert "MWCU6059784" in (reads[0].number, *reads[0].candidates)


def test_reads_vertical_number_one_character_per_line(reader: ContainerReader) -> None:
    img = door()
    paint_vertical(img, "CSQU3054383", 700, 20)
    reads = reader.read(bgr(img))
    assert [r.number for r in reads if is_verified(r)] == ["CSQU3054383"]


def test_reads_dark_vertical_number_on_a_light_box(reader: ContainerReader) -> None:
    img = door(colour=(215, 215, 210))
    paint_vertical(img, "TGHU8765436", 300, 20, ink=DARK)
    reads = reader.read(bgr(img))
    assert [r.number for r in reads if is_verified(r)] == ["TGHU8765436"]


def test_reads_owner_code_stacked_over_serial(reader: ContainerReader) -> None:
    img = door()
    draw = ImageDraw.Draw(img)
    text(img, "PCIU", 400, 100, 44)
    text(img, "274312", 400, 152, 44)
    boxed(draw, 580, 152, "9", 44, WHITE)
    text(img, "22G1", 400, 204, 44)
    reads = reader.read(bgr(img))
    assert reads and reads[0].number == "PCIU2743129" and is_verified(reads[0])
    assert reads[0].size_type == "22G1"


def test_shared_ocr_lines_give_the_same_read(reader: ContainerReader) -> None:
    img = door()
    paint_line(img, "MWCU6059784", 420, 120)
    frame = bgr(img)
    lines = reader.engine.read(frame, max_side=960)
    assert [r.number for r in reader.read(frame, lines=lines)] == ["MWCU6059784"]
    assert reader.read(frame, lines=[]) == ()  # no text given, no finer pass of its own


def test_seal_serial_is_not_taken_for_a_number(reader: ContainerReader) -> None:
    img = door()
    text(img, "CNS5720161", 300, 300, 40)  # 3 letters + 7 digits: a number missing its U?
    assert reader.read(bgr(img)) == ()


def test_blank_door_gives_nothing(reader: ContainerReader) -> None:
    assert reader.read(bgr(door())) == ()


def test_rejects_what_is_not_an_image(reader: ContainerReader) -> None:
    with pytest.raises(FrameError):
        reader.read(np.zeros((10, 10), dtype=np.float32))


# -- pieces without OCR -------------------------------------------------------------------


def line(value: str, x: int, y: int, w: int, h: int, conf: float = 0.95) -> TextLine:
    return TextLine(value, conf, BBox(x, y, w, h))


def test_assemble_joins_tokens_on_one_line_and_down_a_column() -> None:
    horizontal = [line("MWCU", 100, 100, 120, 40), line("605978", 240, 100, 170, 40), line("4", 430, 100, 30, 40)]
    texts = {a.text for a in assemble(horizontal)}
    assert "MWCU6059784" in texts
    column = [line("SEGU", 500, 10, 40, 180), line("6047895", 500, 200, 42, 320)]
    assert any(a.layout == "vertical" and a.text == "SEGU6047895" for a in assemble(column))
    far = [line("MWCU", 100, 100, 120, 40), line("605978", 900, 100, 170, 40)]
    assert "MWCU605978" not in {a.text for a in assemble(far)}


def test_column_characters_finds_each_character() -> None:
    img = door(200, 540)
    paint_vertical(img, "CSQU3054383", 80, 20)
    crop = bgr(img)[:, 60:140]
    assert len(column_characters(crop, bright=True)) == 11


def test_fuse_views_votes_verified_reads_only() -> None:
    box = BBox(0, 0, 10, 10)
    views = [
        (ContainerRead("MWCU6059784", 0.9, box),),
        (ContainerRead("CSQU3054383", 0.95, box),),
        (ContainerRead("MWCU6059784", 0.8, box),),
        (ContainerRead("XINU1577214", 0.4, box, candidates=("XINU1577214",)),),  # candidate set
    ]
    assert fuse_views(views) == "MWCU6059784"
    assert fuse_views([views[3]]) is None


def test_baseline_takes_pattern_without_check_digit() -> None:
    lines = [line("MWCU 605978 5", 0, 0, 100, 20, 0.9), line("TOTAL 123", 0, 40, 100, 20, 0.99)]
    assert baseline_number(lines) == ("MWCU6059785", 0.9)


def _stacked_door() -> np.ndarray:
    img = door()
    draw = ImageDraw.Draw(img)
    text(img, "PCIU", 400, 100, 44)
    text(img, "274312", 400, 152, 44)
    boxed(draw, 580, 152, "9", 44, WHITE)
    text(img, "22G1", 400, 204, 44)
    return bgr(img)


class _CountingRecognizer:
    """The real recogniser, counting the crops it is asked to read."""

    def __init__(self, engine: OcrEngine):
        self.inner = engine.recognizer
        self.crops = 0

    def recognize(self, crops: list[np.ndarray], batch: int = 8) -> list[object]:
        self.crops += len(crops)
        return self.inner.recognize(crops, batch=batch)  # type: ignore[return-value]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_settled_number_and_excluded_text_get_no_reread() -> None:
    engine = OcrEngine.from_store()
    image = _stacked_door()
    lines = engine.read(image)
    counting = _CountingRecognizer(engine)
    engine.recognizer = counting  # type: ignore[assignment]
    reader = ContainerReader(engine)
    first = reader.read(image, lines=lines)
    assert first and first[0].number == "PCIU2743129" and is_verified(first[0])
    full = counting.crops
    assert full > 0  # the stacked rows needed a second look
    counting.crops = 0
    hinted = reader.read(image, lines=lines, known={"PCIU2743129"})
    # Only the assemblies that could not mean the settled number are read again.
    assert counting.crops < full
    assert hinted and hinted[0].number == "PCIU2743129"
    counting.crops = 0
    whole = BBox(0, 0, image.shape[1], image.shape[0])
    reader.read(image, lines=lines, exclude=[whole])
    assert counting.crops == 0


@pytest.mark.parametrize("line,marking", [
    ("MAX.GROSS 30,480 KG", True), ("TARE 2,227KG", True), ("NET28,253KG", True), ("CU.CAP.33.2 CU.M", True),
    ("67,200 LB", True), ("CAPU 123456 7", False), ("NETU1234565", False), ("22G1", False),
])
def test_weight_marking_is_never_a_number(line: str, marking: bool) -> None:
    assert is_marking(line) is marking
    lines = [TextLine(line, 0.95, BBox(10, 10, 300, 30))]
    assert (assemble(lines) == []) is (marking or len(line.replace(" ", "")) < 7)
