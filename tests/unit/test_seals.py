"""SealReader on seal scenes rendered here (Pillow text + zxing-cpp Code128), no ../shared data."""

from __future__ import annotations

import numpy as np
import pytest
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

from appliance.analyzers.codes import CodeReader
from appliance.analyzers.ocr import OcrEngine
from appliance.analyzers.seals import SealReader, SealSettings, seal_colour_score, seal_present_visual
from appliance.errors import ConfigError
from appliance.reads import BBox

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf"


@pytest.fixture(scope="module")
def reader() -> SealReader:
    return SealReader(OcrEngine.from_store(), CodeReader())


def door(w: int = 640, h: int = 400, colour: tuple[int, int, int] = (140, 40, 40)) -> Image.Image:
    img = Image.new("RGB", (w, h), colour)
    draw = ImageDraw.Draw(img)
    for x in range(0, w, 50):
        draw.rectangle((x, 0, x + 20, h), fill=(int(colour[0] * 0.8), int(colour[1] * 0.8), int(colour[2] * 0.8)))
    draw.rectangle((0, 300, w, 320), fill=(90, 90, 95))  # a locking-bar handle
    return img


def code128(payload: str, scale: int = 3) -> Image.Image:
    barcode = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.Code128)
    image = zxingcpp.write_barcode_to_image(barcode, scale=scale, add_hrt=False, add_quiet_zones=True)
    return Image.fromarray(np.array(image)).convert("RGB")


def seal_tag(printed: str | None, coded: str | None) -> Image.Image:
    """A white seal tag: the Code128 of ``coded`` with ``printed`` below it."""
    code = code128(coded) if coded else Image.new("RGB", (300, 90), (250, 250, 250))
    tag = Image.new("RGB", (code.width + 20, code.height + 60), (250, 250, 250))
    tag.paste(code, (10, 10))
    if printed:
        ImageDraw.Draw(tag).text((10, code.height + 14), printed, font=ImageFont.truetype(FONT, 30), fill=(20, 20, 20))
    return tag


def scene(printed: str | None, coded: str | None, at: tuple[int, int] = (150, 120)) -> np.ndarray:
    img = door()
    img.paste(seal_tag(printed, coded), at)
    return np.ascontiguousarray(np.array(img)[:, :, ::-1])


def test_printed_serial_and_barcode_agree(reader: SealReader) -> None:
    reads = reader.read(scene("VNH1234567", "VNH1234567"))
    assert len(reads) == 1
    seal = reads[0]
    assert (seal.serial, seal.present, seal.source) == ("VNH1234567", True, "both")
    assert seal.confidence >= 0.9
    assert seal.bbox is not None and 140 <= seal.bbox.x <= 220


def test_disagreement_prefers_the_barcode_with_lower_confidence(reader: SealReader) -> None:
    agreed = reader.read(scene("VNH1234567", "VNH1234567"))[0]
    seal = reader.read(scene("VNH1234567", "VNH1234568"))[0]
    assert (seal.serial, seal.present, seal.source) == ("VNH1234568", True, "barcode")
    assert seal.confidence < agreed.confidence


def test_barcode_only(reader: SealReader) -> None:
    seal = reader.read(scene(None, "VNH7654321"))[0]
    assert (seal.serial, seal.present, seal.source) == ("VNH7654321", True, "barcode")


def test_printed_serial_only(reader: SealReader) -> None:
    seal = reader.read(scene("CNS2468013", None))[0]
    assert (seal.serial, seal.present, seal.source) == ("CNS2468013", True, "ocr")


def test_no_seal_means_absent(reader: SealReader) -> None:
    reads = reader.read(np.ascontiguousarray(np.array(door())[:, :, ::-1]))
    assert len(reads) == 1
    assert reads[0].serial is None and reads[0].present is False and reads[0].source == "none"


def test_region_limits_the_search_and_boxes_are_in_frame_pixels(reader: SealReader) -> None:
    image = scene("VNH1234567", "VNH1234567", at=(180, 180))
    inside = reader.read(image, region=BBox(150, 150, 490, 250))[0]
    assert (inside.serial, inside.source) == ("VNH1234567", "both")
    assert inside.bbox is not None and inside.bbox.x >= 180 and inside.bbox.y >= 180
    outside = reader.read(image, region=BBox(0, 0, 170, 170))[0]
    assert outside.serial is None and not outside.present


def test_container_number_is_not_a_seal_serial(reader: SealReader) -> None:
    assert reader.is_serial("VNH1234567")
    assert not reader.is_serial("MWCU6059784")  # a valid ISO 6346 number
    assert not reader.is_serial("TGHU887153")  # ... read without its check digit
    assert not reader.is_serial("GHU8871530")  # ... or without its first letter
    assert not reader.is_serial("HELLO")


def test_serial_pattern_is_configurable(reader: SealReader) -> None:
    for custom in (
        SealReader(reader.engine, None, SealSettings(serial_pattern=r"[0-9]{8}")),
        SealReader(reader.engine, None, serial_pattern=r"[0-9]{8}"),
    ):
        assert custom.is_serial("12345678")
        assert not custom.is_serial("VNH1234567")
    with pytest.raises(ConfigError):
        SealReader(reader.engine, None, serial_pattern="[A-Z")


def seal_crop(plastic: tuple[int, int, int] | None) -> np.ndarray:
    """A 40x70 hasp crop on a red door, with a coloured bolt-seal head or without."""
    img = Image.new("RGB", (40, 70), (120, 35, 35))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((8, 4, 32, 66), radius=6, fill=(150, 150, 150))  # the hasp
    draw.ellipse((15, 14, 25, 24), fill=(40, 40, 40))  # its hole
    if plastic is not None:
        draw.rectangle((12, 36, 28, 56), fill=plastic)
    return np.ascontiguousarray(np.array(img)[:, :, ::-1])


def test_colour_check_tells_a_seal_head_from_a_bare_hasp(reader: SealReader) -> None:
    for colour in [(240, 210, 30), (40, 180, 60), (30, 80, 220)]:
        assert seal_present_visual(seal_crop(colour)), colour
    assert not seal_present_visual(seal_crop(None))
    assert seal_colour_score(seal_crop((240, 210, 30))) > seal_colour_score(seal_crop(None))
    present = reader.read(seal_crop((240, 210, 30)))[0]
    absent = reader.read(seal_crop(None))[0]
    assert present.present and present.serial is None
    assert not absent.present


def labelled_scene(label: str) -> np.ndarray:
    img = door()
    draw = ImageDraw.Draw(img)
    draw.rectangle((60, 100, 600, 170), fill=(250, 250, 250))
    draw.text((70, 110), label, font=ImageFont.truetype(FONT, 44), fill=(20, 20, 20))
    return np.ascontiguousarray(np.array(img)[:, :, ::-1])


def test_serial_is_picked_out_of_a_labelled_line(reader: SealReader) -> None:
    seal = reader.read(labelled_scene("SEAL NO: VNH1234567"))[0]
    assert (seal.serial, seal.source) == ("VNH1234567", "ocr")


def test_plate_text_is_not_a_seal(reader: SealReader) -> None:
    seal = reader.read(labelled_scene("51R-141.39"))[0]
    assert seal.serial is None and not seal.present


def test_shared_ocr_lines_give_the_same_read(reader: SealReader) -> None:
    image = scene("VNH1234567", "VNH1234567", at=(180, 180))
    region = BBox(150, 150, 490, 250)
    lines = reader.engine.read(image, max_side=960)
    shared = reader.read(image, region=region, lines=lines)[0]
    own = reader.read(image, region=region)[0]
    assert (shared.serial, shared.source) == (own.serial, own.source) == ("VNH1234567", "both")
