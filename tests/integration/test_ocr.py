"""PP-OCRv4 through the project's own ONNX layer, on text rendered in the test."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from appliance.analyzers.ocr import OcrEngine
from appliance.errors import FrameError

LATIN = "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf"
CJK = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine.from_store()


def scene() -> np.ndarray:
    img = Image.new("RGB", (1280, 720), (90, 90, 90))
    d = ImageDraw.Draw(img)
    d.rectangle((100, 100, 420, 170), fill=(250, 220, 40))
    d.text((110, 108), "29C-123.45", font=ImageFont.truetype(LATIN, 48), fill=(0, 0, 0))
    d.rectangle((600, 300, 860, 370), fill=(250, 220, 40))
    d.text((610, 308), "桂A12345", font=ImageFont.truetype(CJK, 48), fill=(0, 0, 0))
    return np.array(img)[:, :, ::-1].copy()


def test_reads_latin_and_chinese_lines(engine: OcrEngine) -> None:
    lines = engine.read(scene(), max_side=960)
    texts = [line.text for line in lines]
    assert texts == ["29C-123.45", "桂A12345"]  # reading order: top to bottom
    first = lines[0]
    assert 90 <= first.bbox.x <= 130 and 95 <= first.bbox.y <= 125
    assert len(first.alternatives) == len(first.text)
    assert first.alternatives[0][0][0] == "2"


def test_blank_image_reads_nothing(engine: OcrEngine) -> None:
    assert engine.read(np.full((200, 300, 3), 128, np.uint8)) == []


@pytest.mark.parametrize("bad", [None, np.zeros((2, 2, 3), np.uint8), np.zeros((10, 10, 3), np.float32), "img"])
def test_bad_images_raise_frame_error(engine: OcrEngine, bad: object) -> None:
    with pytest.raises(FrameError):
        engine.read(bad)  # type: ignore[arg-type]


def test_region_detection_finds_the_same_lines_in_frame_pixels(engine: OcrEngine) -> None:
    from appliance.reads import BBox

    image = scene()
    whole = engine.read(image, max_side=960)
    inside = engine.read(image, max_side=960, roi=BBox(500, 250, 500, 200))
    assert [line.text for line in inside] == ["桂A12345"]  # the plate outside the region is not read
    same = next(line for line in whole if line.text == "桂A12345")
    # Same scale as the whole frame, boxes in frame pixels (not region pixels).
    assert abs(inside[0].bbox.x - same.bbox.x) <= 4 and abs(inside[0].bbox.y - same.bbox.y) <= 4
    assert abs(inside[0].bbox.w - same.bbox.w) <= 8


def test_region_outside_or_degenerate_reads_nothing(engine: OcrEngine) -> None:
    from appliance.reads import BBox

    assert engine.read(scene(), roi=BBox(2000, 2000, 50, 50)) == []
    assert engine.read(scene(), roi=BBox(10, 10, 2, 2)) == []


def test_line_memory_recalls_door_markings_instead_of_reading_them(
    engine: OcrEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.analyzers.containers import is_marking
    from appliance.analyzers.line_memory import LineMemory

    def frame(dy: int) -> np.ndarray:  # the vehicle moves dy pixels between frames
        img = Image.new("RGB", (1280, 720), (90, 90, 90))
        d = ImageDraw.Draw(img)
        d.rectangle((100, 100 + dy, 700, 170 + dy), fill=(235, 235, 235))
        d.text((110, 108 + dy), "MAX GROSS 30,480 KG", font=ImageFont.truetype(LATIN, 44), fill=(20, 20, 20))
        d.rectangle((100, 400 + dy, 420, 470 + dy), fill=(250, 220, 40))
        d.text((110, 408 + dy), "29C-123.45", font=ImageFont.truetype(LATIN, 48), fill=(0, 0, 0))
        return np.array(img)[:, :, ::-1].copy()

    read_crops: list[int] = []
    recognize = engine.recognizer.recognize

    def counting(crops: list[np.ndarray], batch: int = 8) -> list[object]:
        read_crops.append(len(crops))
        return recognize(crops, batch)  # type: ignore[return-value]

    monkeypatch.setattr(engine.recognizer, "recognize", counting)
    memory = LineMemory(keep=is_marking)
    first = engine.read(frame(0), max_side=960, memory=memory.link(0.0))
    second = engine.read(frame(30), max_side=960, memory=memory.link(0.2))
    assert is_marking(first[0].text) and first[1].text == "29C-123.45"
    assert read_crops == [2, 1]  # the plate is read on both frames, the marking only on the first
    assert [line.text for line in second] == [line.text for line in first]
    assert abs(second[0].bbox.y - first[0].bbox.y - 30) <= 4  # recalled text, this frame's box
