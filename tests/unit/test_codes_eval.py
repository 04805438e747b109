"""Label readers, EvalReport and evaluate_qr on tiny fixtures written to tmp_path.

Nothing here reads ../shared/eval: a fresh clone has no such folder.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import zxingcpp

from appliance.eval.labels import (
    LabelError,
    iso6346_check_digit_ok,
    read_container_labels,
    read_plate_labels,
    read_qr_labels,
    read_seal_labels,
    read_vn_silver_labels,
    read_zxing_pass_counts,
)
from appliance.eval.qr import evaluate_qr
from appliance.eval.report import EvalReport, GroupResult


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


QR_HEADER = ["file", "source_repo", "source_path", "label_path", "group", "format", "expected_text", "metadata"]


# -- QR labels ----------------------------------------------------------------------------


def test_qr_labels_keep_multiline_text_and_metadata(tmp_path: Path) -> None:
    text = "BEGIN:VCARD\r\nN:Kennedy;Steve\r\nEND:VCARD"
    meta = "symbologyIdentifier=]Q1\n# a comment\nsequenceSize=4\nsequenceIndex=-1\n"
    write_csv(
        tmp_path / "labels.csv",
        QR_HEADER,
        [
            ["images/a.png", "zxing/zxing", "a.png", "a.txt", "qrcode-1", "QR_CODE", text, ""],
            ["images/b.png", "zxing/zxing", "b.png", "b.txt", "qrcode-7", "QR_CODE", "part", meta],
        ],
    )
    labels = read_qr_labels(tmp_path)
    assert [label.file for label in labels] == ["images/a.png", "images/b.png"]
    assert labels[0].expected_text == text
    assert not labels[0].is_structured_append
    assert labels[1].meta("symbologyIdentifier") == "]Q1"
    assert labels[1].sequence_size == 4 and labels[1].is_structured_append
    assert labels[1].meta("sequenceIndex") == "-1"


def test_qr_label_errata_are_applied(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "labels.csv",
        QR_HEADER,
        [["images/a.png", "r", "p", "l", "qrcode-2", "QR_CODE", "aerial photograph of", ""]],
    )
    errata = [["images/a.png", "expected_text", "aerial photograph of", "aerial photography of", "three decoders"]]
    write_csv(tmp_path / "label_errata.csv", ["file", "field", "source_label", "suggested", "evidence"], errata)
    (label,) = read_qr_labels(tmp_path)
    assert label.expected_text == "aerial photography of"
    assert label.corrections == (
        "expected_text: aerial photograph of -> aerial photography of (label_errata.csv row 2)",
    )
    (raw,) = read_qr_labels(tmp_path, apply_errata=False)
    assert raw.expected_text == "aerial photograph of" and raw.corrections == ()
    write_csv(
        tmp_path / "label_errata.csv",
        ["file", "field", "source_label", "suggested"],
        [["images/a.png", "group", "x", "y"]],
    )
    with pytest.raises(LabelError, match="cannot be corrected"):
        read_qr_labels(tmp_path)


def test_qr_labels_malformed_row_names_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        ",".join(QR_HEADER) + "\n"
        'images/a.png,r,p,l,qrcode-1,QR_CODE,"two\nlines",\n'
        "images/b.png,r,p,l,qrcode-1,QR_CODE\n",
        encoding="utf-8",
    )
    with pytest.raises(LabelError, match=r"labels\.csv, row 3: expected 8 fields"):
        read_qr_labels(path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("file,group\nimages/a.png,g\n", "row 1: missing column"),
        (",".join(QR_HEADER) + "\n,r,p,l,g,QR_CODE,t,\n", "row 2: file is empty"),
        (",".join(QR_HEADER) + '\nimages/a.png,r,p,l,g,QR_CODE,"unterminated\n', "malformed CSV"),
        (",".join(QR_HEADER) + "\na.png,r,p,l,g,QR_CODE,t,\na.png,r,p,l,g,QR_CODE,t,\n", "labelled twice"),
    ],
)
def test_qr_labels_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LabelError, match=match):
        read_qr_labels(path)


def test_missing_label_file_is_a_label_error(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="not found"):
        read_qr_labels(tmp_path)


def test_not_utf8_is_a_label_error(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_bytes(b"file,group,format,expected_text\n\xff\xfe,g,QR_CODE,x\n")
    with pytest.raises(LabelError, match="not UTF-8"):
        read_qr_labels(tmp_path)


def test_zxing_pass_counts(tmp_path: Path) -> None:
    header = ["group", "test_class", "must_pass", "try_harder_must_pass", "rotation_deg", "images_in_zxing_folder"]
    write_csv(tmp_path / "zxing_expected_pass_counts.csv", header, [["qrcode-1", "T", "17", "17", "90.0", "20"]])
    (count,) = read_zxing_pass_counts(tmp_path)
    assert (count.group, count.must_pass, count.rotation_deg, count.images_in_zxing_folder) == (
        "qrcode-1",
        17,
        90.0,
        20,
    )
    write_csv(tmp_path / "bad.csv", header, [["qrcode-1", "T", "many", "17", "0", "20"]])
    with pytest.raises(LabelError, match=r"bad\.csv, row 2: must_pass must be an integer"):
        read_zxing_pass_counts(tmp_path / "bad.csv")


# -- plates -------------------------------------------------------------------------------


def test_plate_labels_jsonl(tmp_path: Path) -> None:
    rows = [
        {"file": "images/s.jpg", "kind": "scene", "country": "CN", "plate_text": "皖A0N718",
         "bbox": [208, 514, 222, 67], "polygon": [[440, 588], [205, 575], [185, 501], [420, 514]],
         "extra": {"blur": "19"}, "source_repo": "r", "source_path": "p", "label_path": "(file name)"},
        {"file": "images/c.jpg", "kind": "crop", "country": "CN", "plate_text": "京PL3N67",
         "bbox": None, "polygon": None, "extra": None},
    ]  # fmt: skip
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8")
    scene, crop = read_plate_labels(tmp_path)
    assert scene.bbox == (208, 514, 222, 67)
    assert scene.polygon is not None and scene.polygon[0] == (440, 588)
    assert scene.extra == (("blur", "19"),)
    assert crop.kind == "crop" and crop.bbox is None and crop.plate_text == "京PL3N67"


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "row 2: not JSON"),
        ('["a list"]', "row 2: each line must be a JSON object"),
        ('{"file": "b.jpg", "kind": "photo", "country": "EU", "plate_text": "X"}', "kind must be scene or crop"),
        ('{"file": "b.jpg", "kind": "scene", "country": "EU", "plate_text": "X", "bbox": [1, 2, 3]}', "bbox must be 4"),
        ('{"file": "b.jpg", "kind": "scene", "country": "EU", "plate_text": ""}', "plate_text must be"),
    ],
)
def test_plate_labels_jsonl_errors(tmp_path: Path, line: str, match: str) -> None:
    good = '{"file": "a.jpg", "kind": "crop", "country": "CN", "plate_text": "A"}'
    path = tmp_path / "labels.jsonl"
    path.write_text(good + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(LabelError, match=match):
        read_plate_labels(path)


def test_plate_labels_csv_matches_jsonl_fields(tmp_path: Path) -> None:
    header = ["file", "kind", "country", "plate_text", "x", "y", "w", "h", "polygon", "source_repo", "source_path"]
    write_csv(
        tmp_path / "labels.csv",
        header,
        [
            ["images/s.jpg", "scene", "EU", "GWAGEN", "141", "259", "139", "32", "", "r", "p"],
            ["images/c.jpg", "crop", "CN", "京PL3N67", "", "", "", "", "", "r", "p"],
            ["images/p.jpg", "scene", "CN", "皖A0N718", "1", "2", "3", "4", "[[1, 2], [3, 4]]", "r", "p"],
        ],
    )
    scene, crop, poly = read_plate_labels(tmp_path / "labels.csv")
    assert scene.bbox == (141, 259, 139, 32) and crop.bbox is None
    assert poly.polygon == ((1, 2), (3, 4))


def test_vn_silver_labels(tmp_path: Path) -> None:
    header = [
        "file",
        "kind",
        "country",
        "subset",
        "plate_text_ocr",
        "label_quality",
        "source_repo",
        "source_path",
        "label_path",
    ]
    write_csv(
        tmp_path / "labels.csv",
        header,
        [["images/a.jpg", "crop", "VN", "CarLongPlate", "51A-691.72", "silver", "r", "p", "l"]],
    )
    (label,) = read_vn_silver_labels(tmp_path)
    assert label.plate_text_ocr == "51A-691.72" and label.label_quality == "silver"


# -- containers ---------------------------------------------------------------------------

CONTAINER_HEADER = [
    "file",
    "event_id",
    "view",
    "labelled",
    "container_number",
    "check_digit_valid",
    "size_type",
    "regions_json",
    "seals_json",
]
REGIONS = json.dumps([{"cls": 0, "text": "WEGU6047895", "bbox_xyxy": [886, 9, 989, 760]}])
SEALS = json.dumps([{"state": "unsealed", "bbox_xyxy": [886, 999, 929, 1048]}])


def _containers(tmp_path: Path, errata: list[list[str]] | None) -> Path:
    write_csv(
        tmp_path / "labels.csv",
        CONTAINER_HEADER,
        [
            ["images/1__LB.jpg", "1", "LB", "True", "WEGU6047895", "False", "45G1", REGIONS, ""],
            ["images/2__AS.jpg", "2", "AS", "True", "TEMU0524620", "True", "22G1", "[]", SEALS],
        ],
    )
    if errata is not None:
        write_csv(tmp_path / "label_errata.csv", ["file", "field", "source_label", "suggested", "evidence"], errata)
    return tmp_path


def test_container_errata_are_applied_and_said(tmp_path: Path) -> None:
    errata = [["images/1__LB.jpg", "container_number", "WEGU6047895", "SEGU6047895", "check digit"]]
    fixed, plain = read_container_labels(_containers(tmp_path, errata))
    assert fixed.container_number == "SEGU6047895"
    assert fixed.check_digit_valid is True
    assert fixed.corrections == ("container_number: WEGU6047895 -> SEGU6047895 (label_errata.csv row 2)",)
    assert fixed.regions[0].text == "WEGU6047895"  # the source's region text is left as it is
    assert plain.corrections == () and plain.seals[0].state == "unsealed"
    unfixed, _ = read_container_labels(tmp_path, apply_errata=False)
    assert unfixed.container_number == "WEGU6047895" and unfixed.check_digit_valid is False


@pytest.mark.parametrize(
    ("errata", "match"),
    [
        ([["images/1__LB.jpg", "container_number", "XXXU0000000", "SEGU6047895", "e"]], "row 2: erratum for"),
        ([["images/9.jpg", "container_number", "A", "B", "e"]], "not in labels.csv"),
        ([["images/1__LB.jpg", "view", "LB", "AS", "e"]], "cannot be corrected"),
    ],
)
def test_container_errata_errors(tmp_path: Path, errata: list[list[str]], match: str) -> None:
    with pytest.raises(LabelError, match=match):
        read_container_labels(_containers(tmp_path, errata))


def test_container_bad_regions_json(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "labels.csv", CONTAINER_HEADER, [["a.jpg", "1", "AS", "True", "TEMU0524620", "True", "", "[{", ""]]
    )
    with pytest.raises(LabelError, match="row 2: regions_json is not JSON"):
        read_container_labels(tmp_path)


@pytest.mark.parametrize(
    ("number", "ok"),
    [
        ("MWCU6059784", True),
        ("CSQU3054383", True),
        ("SEGU6047895", True),
        ("WEGU6047895", False),
        ("HALU2O89976", False),
    ],
)
def test_iso6346_check_digit(number: str, ok: bool) -> None:
    assert iso6346_check_digit_ok(number) is ok


def test_seal_labels(tmp_path: Path) -> None:
    header = ["file", "state", "event_id", "view", "source_path"]
    write_csv(
        tmp_path / "labels.csv", header, [["a.jpg", "sealed", "1", "AS", "p"], ["b.jpg", "unsealed", "1", "AH", "p"]]
    )
    assert [s.state for s in read_seal_labels(tmp_path)] == ["sealed", "unsealed"]
    write_csv(tmp_path / "labels.csv", header, [["a.jpg", "open", "1", "AS", "p"]])
    with pytest.raises(LabelError, match="row 2: state must be sealed or unsealed"):
        read_seal_labels(tmp_path)


# -- report -------------------------------------------------------------------------------


def _report() -> EvalReport:
    group = GroupResult(
        "qrcode-1",
        n=4,
        passed=3,
        misreads=1,
        ms_per_item=2.5,
        baselines={"zxing-cpp": 2},
        baseline_misreads={"zxing-cpp": 0},
        baseline_ms={"zxing-cpp": 1.0},
        reference={"zxing min": 0.85},
    )
    return EvalReport("qr", "exact match", 0.75, 4, 1, 2.5, {"zxing-cpp": 0.5}, [group], ["a note"])


def test_report_json_has_exactly_the_agreed_keys() -> None:
    data = _report().to_json()
    assert list(data) == ["task", "metric", "score", "n", "misreads", "ms_per_item", "baselines", "groups", "notes"]
    bare = EvalReport("qr", "m", 1.0, 1, 0, 1.0).to_json()
    assert set(bare) == {"task", "metric", "score", "n", "misreads", "ms_per_item", "baselines"}
    json.dumps(data)


def test_report_table_lists_groups_readers_and_notes() -> None:
    table = _report().format_table()
    assert "qrcode-1" in table and "3 (75%)" in table and "2 (50%) /0" in table and "85%" in table
    assert "zxing-cpp" in table and "- a note" in table


def test_report_rejects_out_of_range_scores() -> None:
    with pytest.raises(ValueError, match=r"0\.\.1"):
        EvalReport("qr", "m", 1.5, 1, 0, 1.0)
    with pytest.raises(ValueError, match="baseline"):
        EvalReport("qr", "m", 0.5, 1, 0, 1.0, {"x": -0.1})


# -- evaluate_qr end to end ---------------------------------------------------------------


def _code_png(path: Path, text: str, fmt: zxingcpp.BarcodeFormat, scale: int = 4) -> None:
    image = np.asarray(zxingcpp.write_barcode_to_image(zxingcpp.create_barcode(text, fmt), scale=scale))
    canvas = np.full((image.shape[0] + 80, image.shape[1] + 80), 200, np.uint8)
    canvas[40 : 40 + image.shape[0], 40 : 40 + image.shape[1]] = image
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), canvas)


def test_evaluate_qr_on_a_tiny_synthetic_set(tmp_path: Path) -> None:
    _code_png(tmp_path / "images/q1.png", "Line one\r\nLine two", zxingcpp.BarcodeFormat.QRCode)
    _code_png(tmp_path / "images/c1.png", "SEAL0012345", zxingcpp.BarcodeFormat.Code128, 3)
    _code_png(tmp_path / "images/e1.png", "5901234123457", zxingcpp.BarcodeFormat.EAN13, 3)
    _code_png(tmp_path / "images/q2.png", "what the image holds", zxingcpp.BarcodeFormat.QRCode)
    cv2.imwrite(str(tmp_path / "images/blank.png"), np.full((120, 120), 255, np.uint8))
    write_csv(
        tmp_path / "labels.csv",
        QR_HEADER,
        [
            ["images/q1.png", "r", "p", "l", "qrcode-1", "QR_CODE", "Line one\r\nLine two", ""],
            ["images/c1.png", "r", "p", "l", "code128-1", "CODE_128", "SEAL0012345", ""],
            ["images/e1.png", "r", "p", "l", "ean13-1", "EAN_13", "5901234123457", ""],
            ["images/q2.png", "r", "p", "l", "qrcode-1", "QR_CODE", "a wrong label", ""],
            ["images/blank.png", "r", "p", "l", "qrcode-1", "QR_CODE", "nothing here", ""],
            ["images/missing.png", "r", "p", "l", "qrcode-1", "QR_CODE", "no file", ""],
        ],
    )
    report = evaluate_qr(tmp_path)
    assert report.n == 6
    assert report.score == pytest.approx(3 / 6)
    assert report.misreads == 1  # q2: a QR was read, not the labelled text
    assert set(report.baselines) == {"zxing-cpp", "zxing-cpp (TextMode.Plain)", "pyzbar", "opencv QRCodeDetector"}
    assert report.baselines["zxing-cpp"] == pytest.approx(3 / 6)
    assert report.baselines["opencv QRCodeDetector"] <= 1 / 6  # non-QR items count as fails
    groups = {g.name: g for g in report.groups}
    assert (groups["qrcode-1"].n, groups["qrcode-1"].passed, groups["qrcode-1"].misreads) == (4, 1, 1)
    assert any("unreadable" in note and "missing.png" in note for note in report.notes)
    assert any("control characters" in note for note in report.notes)
    assert "qrcode-1" in report.format_table()
    json.dumps(report.to_json())
