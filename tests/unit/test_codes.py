"""CodeReader on synthetic 1920x1080 frames: codes are generated here, never loaded."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import segno
import zxingcpp

from appliance.analyzers import codes
from appliance.analyzers.codes import CodeReader, CodeReaderConfig, bytes_to_text, qr_structured_append
from appliance.errors import ConfigError, FrameError

FULL_HD = (1080, 1920)
DECLARATION = "VNACCS|305123456789|20260115|0101234567"


# -- helpers ------------------------------------------------------------------------------


def make_frame(seed: int = 0, noise: float = 4.0) -> np.ndarray:
    """A grey 1920x1080 BGR frame with sensor noise and some printed text as clutter."""
    rng = np.random.default_rng(seed)
    gray = np.clip(rng.normal(150.0, noise, FULL_HD), 0, 255).astype(np.uint8)
    for i in range(6):
        cv2.putText(gray, "LANE 3 29C-123.45", (60, 80 + 60 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 40, 2)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def code_image(text: str | bytes, fmt: zxingcpp.BarcodeFormat, scale: int, **options: str) -> np.ndarray:
    barcode = zxingcpp.create_barcode(text, fmt, **options)
    return np.array(zxingcpp.write_barcode_to_image(barcode, scale=scale), dtype=np.uint8)


def qr_image(text: str, scale: int = 4, ec_level: str = "M") -> np.ndarray:
    return code_image(text, zxingcpp.BarcodeFormat.QRCode, scale, ec_level=ec_level)


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """``image`` rotated by ``angle`` degrees on a white canvas big enough to hold it."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    out_w, out_h = int(w * cos + h * sin) + 2, int(w * sin + h * cos) + 2
    matrix[0, 2] += out_w / 2 - w / 2
    matrix[1, 2] += out_h / 2 - h / 2
    return cv2.warpAffine(image, matrix, (out_w, out_h), borderValue=255)


def place(frame: np.ndarray, patch: np.ndarray, x: int, y: int) -> np.ndarray:
    h, w = patch.shape[:2]
    frame[y : y + h, x : x + w] = patch[:, :, None] if frame.ndim == 3 else patch
    return frame


def texts(reads: tuple[codes.CodeRead, ...]) -> set[str]:
    return {r.text for r in reads}


@pytest.fixture(scope="module")
def reader() -> CodeReader:
    return CodeReader()


# -- decoding -----------------------------------------------------------------------------


def test_reads_rotated_blurred_noisy_qr_in_full_hd_frame(reader: CodeReader) -> None:
    patch = cv2.GaussianBlur(rotate(qr_image(DECLARATION), 17.0), (0, 0), 0.8)
    frame = place(make_frame(noise=6.0), patch, 1200, 500)
    reads = reader.read(frame)
    assert len(reads) == 1
    read = reads[0]
    assert read.text == DECLARATION
    assert read.raw == DECLARATION.encode()
    assert read.format == "QRCode"
    assert read.decoder in ("zxing", "both")
    assert read.sequence is None
    assert read.bbox is not None
    assert 1200 <= read.bbox.x <= 1200 + patch.shape[1]
    assert 500 <= read.bbox.y <= 500 + patch.shape[0]


def test_two_qr_codes_in_one_frame(reader: CodeReader) -> None:
    frame = make_frame(seed=1)
    place(frame, qr_image("305123456789"), 300, 600)
    place(frame, qr_image("https://example.vn/tk?so_tk=305987654321"), 1400, 300)
    reads = reader.read(frame)
    assert texts(reads) == {"305123456789", "https://example.vn/tk?so_tk=305987654321"}
    boxes = [r.bbox for r in reads]
    assert all(b is not None for b in boxes)
    assert len({(b.x // 100, b.y // 100) for b in boxes if b}) == 2


def test_code128_and_qr_in_one_frame(reader: CodeReader) -> None:
    frame = make_frame(seed=2)
    place(frame, code_image("SEAL0012345", zxingcpp.BarcodeFormat.Code128, 3), 200, 700)
    place(frame, qr_image(DECLARATION), 1300, 200)
    reads = reader.read(frame)
    by_format = {r.format: r.text for r in reads}
    assert by_format == {"Code128": "SEAL0012345", "QRCode": DECLARATION}


def test_ean13_is_read_with_its_check_digit(reader: CodeReader) -> None:
    frame = place(make_frame(seed=3), code_image("590123412345", zxingcpp.BarcodeFormat.EAN13, 3), 800, 400)
    assert [(r.format, r.text) for r in reader.read(frame)] == [("EAN13", "5901234123457")]


def test_inverted_qr_light_on_dark(reader: CodeReader) -> None:
    patch = 255 - qr_image(DECLARATION)
    frame = place(make_frame(seed=4), patch, 900, 400)
    assert texts(reader.read(frame)) == {DECLARATION}


def test_grayscale_and_bgra_inputs_give_the_same_reads(reader: CodeReader) -> None:
    frame = place(make_frame(seed=5), qr_image("305123456789"), 700, 300)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
    assert texts(reader.read(gray)) == texts(reader.read(bgra)) == texts(reader.read(frame)) == {"305123456789"}
    assert texts(reader.read(gray[:, :, None])) == {"305123456789"}


@pytest.mark.parametrize("second_opinion", [True, False])
def test_code128_at_an_oblique_angle_is_deskewed_and_read(second_opinion: bool) -> None:
    patch = rotate(code_image("SEAL0012345", zxingcpp.BarcodeFormat.Code128, 2), 35.0)
    frame = place(make_frame(seed=6), patch, 1000, 450)
    if zxingcpp.read_barcodes(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)):
        pytest.skip("this zxing-cpp build reads the oblique code on its own")
    scan = CodeReader(CodeReaderConfig(second_opinion=second_opinion)).scan(frame)
    assert texts(scan.codes) == {"SEAL0012345"}
    assert any(stage.startswith("texture:") for stage in scan.stages)


def test_blurred_qr_is_recovered_by_the_retry_pass() -> None:
    patch = cv2.GaussianBlur(qr_image(DECLARATION, scale=3), (0, 0), 1.7)
    frame = place(make_frame(seed=7), patch, 1100, 500)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if zxingcpp.read_barcodes(gray):
        pytest.skip("this zxing-cpp build reads the blurred code on its own")
    scan = CodeReader().scan(frame)
    assert texts(scan.codes) == {DECLARATION}
    assert not any(stage == "zxing:frame" for stage in scan.stages)


def test_located_but_undecoded_symbol_is_retried() -> None:
    """zxing-cpp locates a blurred QR (checksum error) but cannot decode it at once."""
    patch = cv2.GaussianBlur(qr_image(DECLARATION, scale=4), (0, 0), 2.0)
    frame = place(make_frame(seed=7), patch, 1100, 500)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    found = zxingcpp.read_barcodes(gray, return_errors=True)
    if not any(b.error is not None for b in found) or any(b.error is None for b in found):
        pytest.skip("precondition: zxing-cpp locates the symbol but fails to decode it")
    scan = CodeReader(CodeReaderConfig(texture_search=False)).scan(frame)
    assert texts(scan.codes) == {DECLARATION}
    assert scan.stages[0].startswith("located:")


def test_nested_qr_codes_are_both_kept(reader: CodeReader) -> None:
    """A small QR printed inside a larger one is another symbol, not a second opinion."""
    outer = qr_image("OUTER " + "o" * 60, scale=8, ec_level="H")
    inner = qr_image("INNER", scale=3)
    cy, cx = outer.shape[0] // 2, outer.shape[1] // 2
    h, w = inner.shape
    outer[cy - h // 2 : cy - h // 2 + h, cx - w // 2 : cx - w // 2 + w] = inner
    assert texts(reader.read(outer)) == {"OUTER " + "o" * 60, "INNER"}


def test_same_place_needs_similar_size() -> None:
    big = np.asarray([[0, 0], [200, 0], [200, 200], [0, 200]], dtype=np.float64)
    small = big / 4 + 75
    line = np.asarray([[5, 100], [195, 100], [195, 104], [5, 104]], dtype=np.float64)
    assert not codes._same_place(big, small)
    assert codes._same_place(big, line)
    assert not codes._same_place(big, big + 500)


def test_small_crop_is_retried_whole() -> None:
    """A small frame (e.g. a seal crop) where nothing was decoded is retried as a whole."""
    patch = cv2.GaussianBlur(qr_image("305123456789", scale=3), (0, 0), 1.7)
    crop = np.full((patch.shape[0] + 40, patch.shape[1] + 60), 150, np.uint8)
    place(crop, patch, 30, 20)
    if zxingcpp.read_barcodes(crop):
        pytest.skip("this zxing-cpp build reads the blurred code on its own")
    scan = CodeReader().scan(crop)
    assert texts(scan.codes) == {"305123456789"}
    assert scan.stages and not scan.stages[0].startswith("zxing:frame")


def test_empty_frame_reads_nothing_quickly(reader: CodeReader) -> None:
    scan = reader.scan(np.full(FULL_HD, 128, np.uint8))
    assert scan.codes == ()
    assert scan.candidates_tried == 0


# -- merging and the second opinion -------------------------------------------------------


def test_second_opinion_always_marks_agreeing_reads_both() -> None:
    frame = place(make_frame(seed=8), qr_image("305123456789"), 600, 300)
    reads = CodeReader(CodeReaderConfig(second_opinion_always=True)).read(frame)
    assert [(r.text, r.decoder) for r in reads] == [("305123456789", "both")]


def _fake_zbar(monkeypatch: pytest.MonkeyPatch, raw: bytes, offset: tuple[float, float] = (0.0, 0.0)) -> None:
    """Make pyzbar 'see' ``raw`` where zxing-cpp saw the first symbol of the frame."""

    def fake(_wrapper: object, gray: np.ndarray, _formats: object, stage: str) -> list[codes._Hit]:
        found = zxingcpp.read_barcodes(gray)
        if not found:
            return []
        points = codes._position_points(found[0].position) + np.asarray(offset)
        return [
            codes._Hit(raw=raw, text=bytes_to_text(raw), format="QRCode", points=points, decoder="pyzbar", stage=stage)
        ]

    monkeypatch.setattr(codes, "_zbar_decode", fake)


def test_disagreement_keeps_zxing_and_is_logged_without_payload(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_zbar(monkeypatch, b"DIFFERENT-PAYLOAD-XYZ")
    frame = place(make_frame(seed=9), qr_image("305123456789"), 600, 300)
    with caplog.at_level(logging.DEBUG, logger="appliance.analyzers.codes"):
        scan = CodeReader(CodeReaderConfig(second_opinion_always=True)).scan(frame)
    assert [(r.text, r.decoder) for r in scan.codes] == [("305123456789", "zxing")]
    assert len(scan.disagreements) == 1
    assert scan.disagreements[0].kept.text == "305123456789"
    assert scan.disagreements[0].dropped.text == "DIFFERENT-PAYLOAD-XYZ"
    assert "disagree" in caplog.text
    assert "DIFFERENT-PAYLOAD" not in caplog.text
    assert "305123456789" not in caplog.text


def test_empty_second_opinion_read_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_zbar(monkeypatch, b"", offset=(0.0, 400.0))
    frame = place(make_frame(seed=10), qr_image("305123456789"), 600, 100)
    reads = CodeReader(CodeReaderConfig(second_opinion_always=True)).read(frame)
    assert [r.text for r in reads] == ["305123456789"]


def test_reader_works_without_pyzbar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codes, "_load_zbar", lambda: None)
    frame = place(make_frame(seed=11), qr_image("305123456789"), 600, 300)
    assert texts(CodeReader().read(frame)) == {"305123456789"}


# -- structured append --------------------------------------------------------------------


def test_structured_append_parts_report_index_and_count(reader: CodeReader) -> None:
    message = "Declaration bundle " + "0123456789" * 40
    sequence = segno.make_sequence(message, symbol_count=3, error="M")
    frame = make_frame(seed=12)
    for i, symbol in enumerate(sequence):
        matrix = np.asarray(symbol.matrix, dtype=np.uint8)
        modules = np.where(matrix > 0, 0, 255).astype(np.uint8)
        bordered = cv2.copyMakeBorder(modules, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=255)
        place(
            frame,
            np.asarray(cv2.resize(bordered, None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST)),
            150 + 560 * i,
            500,
        )
    reads = sorted(reader.read(frame), key=lambda r: r.bbox.x if r.bbox else 0)
    assert [r.sequence for r in reads] == [(0, 3), (1, 3), (2, 3)]
    assert "".join(r.text for r in reads) == message


@pytest.mark.parametrize("error", ["L", "M", "Q", "H"])
@pytest.mark.parametrize("count", [2, 5, 16])
def test_structured_append_header_from_module_matrix(error: str, count: int) -> None:
    sequence = segno.make_sequence("x" * 40 * count, symbol_count=count, error=error, boost_error=False)
    for index, symbol in enumerate(sequence):
        matrix = np.asarray(symbol.matrix, dtype=bool)
        assert qr_structured_append(matrix) == (index, count)
        assert qr_structured_append(matrix.T) == (index, count)  # mirrored symbol


@pytest.mark.parametrize("version", [1, 2, 7, 14, 25, 40])
def test_plain_qr_has_no_sequence(version: int) -> None:
    matrix = np.asarray(segno.make_qr("1", version=version, boost_error=False).matrix, dtype=bool)
    assert qr_structured_append(matrix) is None
    assert codes._read_header(matrix, version) == (-1, -1)


def test_damaged_header_block_is_not_trusted() -> None:
    symbol = segno.make_sequence("y" * 80, symbol_count=2, error="L", boost_error=False)[0]
    matrix = np.asarray(symbol.matrix, dtype=bool)
    size = matrix.shape[0]
    damaged = matrix.copy()
    damaged[size - 1, size - 1] = not damaged[size - 1, size - 1]  # first data module
    assert qr_structured_append(damaged) is None


def test_format_codes_match_the_standard_table() -> None:
    # ISO/IEC 18004 Annex C examples: EC level M (00), mask 5 -> 100000011001110 after masking.
    assert codes._FORMAT_CODES[0b00101] == 0b100000011001110
    assert len(set(codes._FORMAT_CODES)) == 32


# -- hostile payloads ---------------------------------------------------------------------


def test_oversized_payload_is_dropped_with_a_warning_without_payload(caplog: pytest.LogCaptureFixture) -> None:
    big = "B" * 150 + "SECRET-MARKER"
    frame = make_frame(seed=13)
    place(frame, qr_image(big, scale=3), 300, 300)
    place(frame, qr_image("305123456789"), 1300, 300)
    with caplog.at_level(logging.DEBUG, logger="appliance.analyzers.codes"):
        scan = CodeReader(CodeReaderConfig(max_payload_bytes=100)).scan(frame)
    assert texts(scan.codes) == {"305123456789"}
    assert scan.oversized == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "163 bytes" in warnings[0].getMessage()
    assert "100-byte cap" in warnings[0].getMessage()
    assert "SECRET-MARKER" not in caplog.text
    assert "BBBB" not in caplog.text


def test_default_cap_keeps_large_qr_payloads(reader: CodeReader) -> None:
    payload = "D" * 1500
    frame = place(make_frame(seed=14), qr_image(payload, scale=2), 500, 100)
    assert texts(reader.read(frame)) == {payload}


def test_control_characters_are_kept_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    hostile = "\x1b[31mEVIL\x1b[0m\r\nDROP TABLE;\x07\x00tail"
    frame = place(make_frame(seed=15), qr_image(hostile), 800, 300)
    with caplog.at_level(logging.DEBUG):
        scan = CodeReader(CodeReaderConfig(second_opinion_always=True)).scan(frame)
    assert [r.text for r in scan.codes] == [hostile]
    assert scan.codes[0].raw == hostile.encode()
    for record in caplog.records:
        message = record.getMessage()
        assert "EVIL" not in message and "\x1b" not in message and "DROP TABLE" not in message
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_bytes_to_text_never_invents_characters() -> None:
    assert bytes_to_text("Nữ".encode()) == "Nữ"
    shift_jis = "ﾃﾞｻﾞｲﾝ".encode("shift_jis")
    text = bytes_to_text(shift_jis)
    assert len(text) == len(shift_jis)
    assert text.encode("latin-1") == shift_jis


# -- bad input and configuration ----------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (None, "None"),
        ([[0, 1], [1, 0]], "numpy array"),
        (np.zeros((0, 0), np.uint8), "empty"),
        (np.zeros((100, 100), np.float32), "dtype uint8"),
        (np.zeros((100, 100), np.uint16), "dtype uint8"),
        (np.zeros((100, 100), object), "dtype uint8"),
        (np.zeros(10_000, np.uint8), "shape"),
        (np.zeros((100, 100, 2), np.uint8), "shape"),
        (np.zeros((2, 100, 100, 3), np.uint8), "shape"),
        (np.zeros((4, 4), np.uint8), "too small"),
    ],
)
def test_bad_frames_raise_frame_error(reader: CodeReader, image: object, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        reader.read(image)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"formats": ()},
        {"formats": ("QRCode", "NoSuchCode")},
        {"max_payload_bytes": 0},
        {"retry_scale": 0.5},
        {"max_candidates": -1},
    ],
)
def test_bad_configuration_raises_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        CodeReaderConfig(**kwargs)  # type: ignore[arg-type]


def test_formats_are_honoured() -> None:
    frame = make_frame(seed=16)
    place(frame, code_image("SEAL0012345", zxingcpp.BarcodeFormat.Code128, 3), 200, 700)
    place(frame, qr_image(DECLARATION), 1300, 200)
    reads = CodeReader(CodeReaderConfig(formats=("QRCode",))).read(frame)
    assert [r.format for r in reads] == ["QRCode"]
