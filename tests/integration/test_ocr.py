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
