"""X-ray scanner ingest: sidecar + PNG/TIFF, DICOM/DICOS, clear refusals, and the drop folder."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
import tifffile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from appliance.sim.xray import simulate_xray
from appliance.xray import ingest
from appliance.xray.ingest import (
    XrayDropFolder,
    parse_scan_time,
    read_calibration,
    read_dicom_scan,
    read_image,
    read_scan,
    read_sidecar_scan,
)
from appliance.xray.scan import ScanError

DX = "1.2.840.10008.5.1.4.1.1.1.1"
DICOS_DX = "1.2.840.10008.5.1.4.1.1.501.2.1"
MR = "1.2.840.10008.5.1.4.1.1.4"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
WHEN = "2026-11-20T08:15:30+07:00"
WHEN_EPOCH = dt.datetime(2026, 11, 20, 1, 15, 30, tzinfo=dt.UTC).timestamp()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("xsim")
    simulate_xray(out, 3, 8, scale=0.12, anomaly_share=0.5, mismatch_share=0.5)
    return out


def _u16(h: int = 40, w: int = 60, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(100, 60000, (h, w), dtype=np.uint16)


def _png(path: Path, img: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), img)
    return path


def _sidecar(folder: Path, name: str = "scan", *, high: np.ndarray | None = None, low: np.ndarray | None = None,
             **fields) -> Path:
    """A sidecar plus 16-bit PNGs (unless the images are given in fields)."""
    images = fields.pop("images", None)
    if images is None:
        images = {"high": f"{name}_high.png"}
        _png(folder / images["high"], _u16() if high is None else high)
        if low is not False:
            images["low"] = f"{name}_low.png"
            _png(folder / images["low"], _u16(seed=1) if low is None else low)
    doc = {"scanner_id": "XR-7", "scanned_at": WHEN, "images": images, **fields}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _dicom(path: Path, frames: list[np.ndarray], *, sop: str = DX, modality: str | None = "DX",
           photometric: str = "MONOCHROME2", bits: int = 16, when: str | None = "20261120081530+0700",
           serial: str | None = "XR-9", pixels: bool = True, spp: int = 1, kvp: float | None = 450.0,
           tz: str | None = None, rows: int | None = None) -> Path:
    """A DICOM X-ray image built with pydicom (no downloaded files)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    if modality:
        ds.Modality = modality
    if serial:
        ds.DeviceSerialNumber = serial
    if when:
        with warnings.catch_warnings():  # an invalid date-time on purpose (pydicom warns on assignment)
            warnings.simplefilter("ignore")
            ds.AcquisitionDateTime = when
    if tz:
        ds.TimezoneOffsetFromUTC = tz
    if kvp:
        ds.KVP = kvp
    if pixels:
        arr = np.stack(frames)
        ds.SamplesPerPixel = spp
        ds.PhotometricInterpretation = photometric
        ds.Rows = rows or arr.shape[1]
        ds.Columns = arr.shape[2] // spp if spp > 1 else arr.shape[2]
        ds.BitsAllocated = bits
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 0
        if spp > 1:
            ds.PlanarConfiguration = 0
        if len(frames) > 1:
            ds.NumberOfFrames = len(frames)
        ds.PixelData = arr.astype(np.uint16 if bits == 16 else np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


# -- round trip from the simulator ----------------------------------------------------------------------


def test_round_trip_sim_files_to_scans(sim: Path) -> None:
    truth = json.loads((sim / "truth.json").read_text(encoding="utf-8"))
    for t in truth["scans"]:
        scan = read_scan(sim / t["files"]["sidecar"])
        high_bytes = (sim / t["files"]["high"]).read_bytes()
        low_bytes = (sim / t["files"]["low"]).read_bytes()
        assert scan.scan_id == hashlib.sha256(high_bytes + low_bytes).hexdigest()
        assert scan.dual_energy and list(scan.shape) == t["shape"]
        assert scan.high.dtype == np.uint16
        assert np.array_equal(scan.high, cv2.imread(str(sim / t["files"]["high"]), cv2.IMREAD_UNCHANGED))
        m = scan.meta
        assert m.scanner_id == truth["scanner"]["scanner_id"] and m.lane_id == "L1"
        assert m.scanned_at == pytest.approx(t["scanned_at"], abs=0.002)
        assert m.declared_goods == t["manifest"]["declared_goods"]
        assert m.declared_quantity == t["manifest"]["declared_quantity"]
        assert m.plate == t["vehicle"]["plate"]
        assert list(m.containers) == [c["number"] for c in t["vehicle"]["containers"]]
        assert m.energies_kv == (450.0, 160.0) and not m.normalised
        assert m.extra["declared_unit"] == t["manifest"]["declared_unit"]
    cal = read_calibration(sim / "calibration")
    assert cal.scanner_id == truth["scanner"]["scanner_id"]
    assert cal.dark["high"].shape == (truth["scans"][0]["shape"][0], 64)
    assert (cal.air["low"].astype(float).mean() > cal.dark["low"].astype(float).mean() + 1000)


def test_drop_folder_delivers_sim_scans_in_name_order(sim: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    shutil.copytree(sim / "scans", drop)
    scans = list(XrayDropFolder(drop, settle_s=0))
    assert [Path(s.source).name for s in scans] == ["XR00001.json", "XR00002.json", "XR00003.json"]
    assert sorted(p.name for p in drop.iterdir()) == ["done"]
    assert len(list((drop / "done").iterdir())) == 9


# -- sidecar refusals -------------------------------------------------------------------------------------


def test_good_sidecar_variants(tmp_path: Path) -> None:
    p = _sidecar(tmp_path, "single", low=False, scanned_at=1795000000, energy_kv=6000,
                 containers="MSKU1234565", declared_quantity=12, vendor_field="x")
    scan = read_sidecar_scan(p)
    assert scan.low is None and scan.meta.scanned_at == 1795000000.0 and scan.meta.energies_kv == (6000.0,)
    assert scan.meta.containers == ("MSKU1234565",) and scan.meta.extra["vendor_field"] == "x"
    p = _sidecar(tmp_path, "naive", scanned_at="2026-11-20T08:15:30")
    assert read_sidecar_scan(p, default_utc_offset_h=7).meta.scanned_at == WHEN_EPOCH
    assert read_sidecar_scan(_sidecar(tmp_path, "z", scanned_at="2026-11-20T01:15:30Z")).meta.scanned_at == WHEN_EPOCH
    eight = _u16() // 256
    p = _sidecar(tmp_path, "eight", high=eight.astype(np.uint8), low=(eight // 2).astype(np.uint8), bit_depth=8)
    scan = read_sidecar_scan(p)
    assert scan.high.dtype == np.uint16 and np.array_equal(scan.high, eight) and scan.meta.extra["bit_depth"] == 8


BAD_SIDECARS = [
    ({"scanned_at": "yesterday"}, "scanned_at 'yesterday' is not an ISO-8601 time"),
    ({"scanned_at": "2026-11-20T08:15:30"}, "has no UTC offset"),
    ({"scanned_at": 1795000000000}, "looks like epoch milliseconds"),
    ({"scanned_at": True}, "scanned_at must be an ISO-8601 time or epoch seconds"),
    ({"scanned_at": "2026-13-45T08:15:30+07:00"}, "is not an ISO-8601 time"),
    ({"scanner_id": ""}, "scanner_id must be a non-empty string"),
    ({"declared_quantity": -3}, "declared_quantity must be a number >= 0"),
    ({"energy_kv": {"high": "hot"}}, "energy_kv values must be positive numbers"),
    ({"bit_depth": 12}, "bit_depth must be 8 or 16"),
    ({"normalised": "yes"}, "normalised must be true or false"),
    ({"format": "other/2"}, "unsupported sidecar format"),
    ({"images": {"high": "../etc/passwd"}}, "must be a plain file name"),
    ({"images": {"high": "a.png", "low": "a.png"}}, "name the same file"),
    ({"images": {"high": "nothere.png"}}, "the sidecar names high image 'nothere.png', which does not exist"),
    ({"images": {"hi": "a.png"}}, "the sidecar must name its images"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_SIDECARS)
def test_bad_sidecar_fields_are_refused_with_the_reason(tmp_path: Path, fields: dict, message: str) -> None:
    _png(tmp_path / "a.png", _u16())
    p = _sidecar(tmp_path, "bad", **fields)
    with pytest.raises(ScanError) as err:
        read_sidecar_scan(p)
    assert message in str(err.value) and "bad.json" in str(err.value)


def test_malformed_and_non_object_json(tmp_path: Path) -> None:
    p = tmp_path / "broken.json"
    p.write_text('{"scanner_id": "XR-7", "scanned_at": ', encoding="utf-8")
    with pytest.raises(ScanError, match=r"broken.json: the sidecar is not valid JSON \(line 1 column"):
        read_sidecar_scan(p)
    p.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ScanError, match="must be a JSON object"):
        read_sidecar_scan(p)
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ScanError, match="not UTF-8"):
        read_sidecar_scan(p)


def test_image_problems_are_refused_with_the_file_named(tmp_path: Path) -> None:
    cases: list[tuple[str, dict, str]] = []
    # truncated PNG
    good = cv2.imencode(".png", _u16())[1].tobytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    cases.append(("cut", {"images": {"high": "cut.png"}}, "cut.png: truncated PNG"))
    # 8-bit where 16 is declared
    _png(tmp_path / "eight.png", (_u16() // 256).astype(np.uint8))
    cases.append(("eight", {"images": {"high": "eight.png"}}, "eight.png: 8-bit PNG where 16-bit is declared"))
    # colour
    _png(tmp_path / "colour.png", np.zeros((20, 30, 3), np.uint16))
    cases.append(("colour", {"images": {"high": "colour.png"}}, "colour.png: RGB colour PNG"))
    tifffile.imwrite(tmp_path / "colour.tif", np.zeros((20, 30, 3), np.uint16), photometric="rgb")
    cases.append(("colourtif", {"images": {"high": "colour.tif"}}, "colour.tif: TIFF has 3 samples per pixel"))
    # dual-energy sizes differ
    _png(tmp_path / "h.png", _u16(40, 60))
    _png(tmp_path / "l.png", _u16(40, 61))
    cases.append(("sizes", {"images": {"high": "h.png", "low": "l.png"}}, "dual-energy images differ in size"))
    # not an image at all
    (tmp_path / "notes.png").write_text("hello", encoding="utf-8")
    cases.append(("notes", {"images": {"high": "notes.png"}}, "notes.png: not a PNG, TIFF or DICOM file"))
    # float without normalised, normalised without float, NaN
    tifffile.imwrite(tmp_path / "float.tif", np.full((20, 30), 0.5, np.float32))
    cases.append(("float", {"images": {"high": "float.tif"}}, "but the sidecar does not say normalised: true"))
    tifffile.imwrite(tmp_path / "int.tif", _u16())
    cases.append(("intnorm", {"images": {"high": "int.tif"}, "normalised": True}, "not float transmission"))
    cases.append(("pngnorm", {"images": {"high": "h.png"}, "normalised": True}, "a PNG cannot hold float"))
    nan = np.full((20, 30), 0.5, np.float32)
    nan[3, 4] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    cases.append(("nan", {"images": {"high": "nan.tif"}, "normalised": True}, "NaN or infinite"))
    tifffile.imwrite(tmp_path / "counts.tif", np.full((20, 30), 900.0, np.float32))
    cases.append(("counts", {"images": {"high": "counts.tif"}, "normalised": True}, "should lie within 0..1"))
    # truncated TIFF
    tifffile.imwrite(tmp_path / "whole.tif", _u16(200, 300))
    data = (tmp_path / "whole.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    cases.append(("cuttif", {"images": {"high": "cut.tif"}}, "cut.tif: "))
    # too large: refused from the header, before decoding
    tifffile.imwrite(tmp_path / "long.tif", np.zeros((2, 20_001), np.uint16))
    cases.append(("long", {"images": {"high": "long.tif"}}, "long.tif: image is 20001 x 2 pixels, over the limit"))
    for name, fields, message in cases:
        p = _sidecar(tmp_path, name, **fields)
        with pytest.raises(ScanError) as err:
            read_sidecar_scan(p)
        assert message in str(err.value), (name, str(err.value))
    # the truncated TIFF names the cause
    with pytest.raises(ScanError, match=r"truncated|not a readable TIFF"):
        read_image(tmp_path / "cut.tif")


def test_size_limit_is_checked_before_any_pixel_buffer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a PNG whose header claims 30,000 x 30,000 pixels but holds (almost) nothing
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 16, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))
    (tmp_path / "bomb.png").write_bytes(data)

    def no_decode(*_a, **_k):
        raise AssertionError("decoded before the size check")

    monkeypatch.setattr(ingest.cv2, "imdecode", no_decode)
    with pytest.raises(ScanError, match=r"bomb.png: image is 30000 x 30000 pixels, over the limit"):
        read_image(tmp_path / "bomb.png")
    monkeypatch.undo()
    _png(tmp_path / "small.png", _u16(40, 60))
    with pytest.raises(ScanError, match="over the limit"):
        read_image(tmp_path / "small.png", max_side=50)
    with pytest.raises(ScanError, match="over the limit"):
        read_image(tmp_path / "small.png", max_pixels=1000)


def test_tiff_reading_falls_back_to_tifffile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = _u16(30, 50)
    tifffile.imwrite(tmp_path / "h.tif", img, compression="zlib")
    tifffile.imwrite(tmp_path / "l.tif", img // 2, compression="zlib")
    p = _sidecar(tmp_path, "t", images={"high": "h.tif", "low": "l.tif"})
    assert np.array_equal(read_sidecar_scan(p).high, img)
    monkeypatch.setattr(ingest.cv2, "imdecode", lambda *_a, **_k: None)  # a TIFF OpenCV cannot read
    scan = read_sidecar_scan(p)
    assert np.array_equal(scan.high, img) and np.array_equal(scan.low, img // 2)
    norm = np.linspace(0, 1, 600, dtype=np.float32).reshape(20, 30)
    tifffile.imwrite(tmp_path / "n.tif", norm)
    scan = read_sidecar_scan(_sidecar(tmp_path, "n", images={"high": "n.tif"}, normalised=True))
    assert scan.meta.normalised and scan.high.dtype == np.float32 and np.array_equal(scan.high, norm)


def test_parse_scan_time_forms() -> None:
    assert parse_scan_time(WHEN, "x") == WHEN_EPOCH
    assert parse_scan_time("2026-11-20T08:15:30", "x", default_utc_offset_h=7) == WHEN_EPOCH
    with pytest.raises(ScanError, match="between 2000 and 2100"):
        parse_scan_time(12, "x")
    with pytest.raises(ScanError, match="x: scanned_at"):
        parse_scan_time(float("nan"), "x")


# -- DICOM / DICOS -----------------------------------------------------------------------------------------


def test_dicom_single_two_frames_two_files_and_dicos(tmp_path: Path) -> None:
    hi, lo = _u16(30, 50), _u16(30, 50, seed=2)
    p = _dicom(tmp_path / "one.dcm", [hi])
    scan = read_dicom_scan(p)
    assert np.array_equal(scan.high, hi) and scan.low is None
    assert scan.meta.scanner_id == "XR-9" and scan.meta.scanned_at == WHEN_EPOCH
    assert scan.meta.energies_kv == (450.0,) and scan.meta.extra["modality"] == "DX"
    assert scan.scan_id == hashlib.sha256(p.read_bytes()).hexdigest()
    two = read_dicom_scan(_dicom(tmp_path / "two.dcm", [hi, lo]))
    assert np.array_equal(two.high, hi) and np.array_equal(two.low, lo)
    files = read_dicom_scan(_dicom(tmp_path / "h.dcm", [hi]), _dicom(tmp_path / "l.dcm", [lo], kvp=160.0))
    assert np.array_equal(files.low, lo) and files.meta.energies_kv == (450.0, 160.0)
    assert files.scan_id == hashlib.sha256((tmp_path / "h.dcm").read_bytes() + (tmp_path / "l.dcm").read_bytes()
                                           ).hexdigest()
    dicos = read_scan(_dicom(tmp_path / "dicos.dcs", [hi], sop=DICOS_DX))
    assert "DICOS" in dicos.meta.extra["sop_class"]
    inv = read_dicom_scan(_dicom(tmp_path / "inv.dcm", [hi], photometric="MONOCHROME1"))
    assert np.array_equal(inv.high, 65535 - hi)
    eight = (hi // 256).astype(np.uint8)
    e = read_dicom_scan(_dicom(tmp_path / "eight.dcm", [eight], bits=8))
    assert e.high.dtype == np.uint16 and np.array_equal(e.high, eight)
    tz = read_dicom_scan(_dicom(tmp_path / "tz.dcm", [hi], when="20261120081530", tz="+0700"))
    assert tz.meta.scanned_at == WHEN_EPOCH
    naive = _dicom(tmp_path / "naive.dcm", [hi], when="20261120081530")
    assert read_dicom_scan(naive, default_utc_offset_h=7).meta.scanned_at == WHEN_EPOCH
    assert read_dicom_scan(_dicom(tmp_path / "noid.dcm", [hi], serial=None), scanner_id="LANE-3").meta.scanner_id \
        == "LANE-3"
    # a sidecar may name DICOM images; its metadata wins
    p = _sidecar(tmp_path, "withdicom", images={"high": "h.dcm", "low": "l.dcm"}, scanner_id="XR-SIDE")
    s = read_sidecar_scan(p)
    assert s.meta.scanner_id == "XR-SIDE" and np.array_equal(s.low, lo)


def test_dicom_refusals(tmp_path: Path) -> None:
    hi = _u16(30, 50)
    cases = [
        (_dicom(tmp_path / "mr.dcm", [hi], sop=MR, modality="MR"), "MR Image Storage (1.2.840.10008.5.1.4.1.1.4), "
                                                                   "not an X-ray image"),
        (_dicom(tmp_path / "sr.dcm", [hi], sop=BASIC_TEXT_SR, modality="SR", pixels=False), "not an X-ray image"),
        (_dicom(tmp_path / "nopix.dcm", [hi], pixels=False), "no pixel data (7FE0,0010)"),
        (_dicom(tmp_path / "mod.dcm", [hi], modality="MR"), "modality is 'MR', not an X-ray projection"),
        (_dicom(tmp_path / "rgb.dcm", [np.zeros((30, 150), np.uint16)], photometric="RGB", spp=3),
         "RGB DICOM with 3 samples per pixel"),
        (_dicom(tmp_path / "three.dcm", [hi, hi, hi]), "3 frames; expected 1"),
        (_dicom(tmp_path / "notime.dcm", [hi], when=None), "no acquisition time"),
        (_dicom(tmp_path / "naive.dcm", [hi], when="20261120081530"), "has no UTC offset"),
        (_dicom(tmp_path / "badtime.dcm", [hi], when="20261345081530+0700"), "is not a DICOM date-time"),
        (_dicom(tmp_path / "noid.dcm", [hi], serial=None), "no scanner id"),
        (_dicom(tmp_path / "huge.dcm", [hi], rows=30_000), "over the limit"),
    ]
    data = (tmp_path / "mr.dcm").read_bytes()
    ok = _dicom(tmp_path / "ok.dcm", [hi]).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(ok[: len(ok) - 1500])
    cases.append((tmp_path / "cut.dcm", "truncated pixel data"))
    (tmp_path / "junk.dcm").write_bytes(b"\x00" * 200 + data[:10])
    cases.append((tmp_path / "junk.dcm", "not a DICOM file (no 'DICM' marker"))
    (tmp_path / "header.dcm").write_bytes(ok[:140])
    cases.append((tmp_path / "header.dcm", "could not be parsed"))
    for path, message in cases:
        with pytest.raises(ScanError) as err:
            read_dicom_scan(path)
        assert message in str(err.value) and path.name in str(err.value), (path.name, str(err.value))
    with pytest.raises(ScanError, match="differ in size"):
        read_dicom_scan(_dicom(tmp_path / "a.dcm", [hi]), _dicom(tmp_path / "b.dcm", [_u16(31, 50)]))
    with pytest.raises(ScanError, match="comes from scanner 'XR-OTHER'"):
        read_dicom_scan(_dicom(tmp_path / "a.dcm", [hi]), _dicom(tmp_path / "c.dcm", [hi], serial="XR-OTHER"))
    assert pydicom.__version__ == "3.0.2"


# -- drop folder -------------------------------------------------------------------------------------------


def test_drop_folder_moves_bad_drops_to_rejected_with_a_reason(tmp_path: Path) -> None:
    _sidecar(tmp_path, "a_good")
    (tmp_path / "b_broken.json").write_text("{not json", encoding="utf-8")
    _sidecar(tmp_path, "c_missing", images={"high": "c_missing_high.png", "low": "gone.png"})
    _png(tmp_path / "c_missing_high.png", _u16())
    _sidecar(tmp_path, "d_eight", high=(_u16() // 256).astype(np.uint8), low=False)
    _dicom(tmp_path / "e_good.dcm", [_u16()])
    _dicom(tmp_path / "f_mr.dcm", [_u16()], sop=MR, modality="MR")
    _sidecar(tmp_path, "g_good", low=False)
    (tmp_path / "orphan_notes.txt").write_text("not a drop", encoding="utf-8")
    before = {p.name for p in tmp_path.iterdir()}
    folder = XrayDropFolder(tmp_path, settle_s=0)
    got = [Path(s.source).name for s in folder]
    assert got == ["a_good.json", "e_good.dcm", "g_good.json"]
    assert folder.status()["delivered"] == 3 and folder.status()["rejected"] == 4
    done = {p.name for p in (tmp_path / "done").iterdir()}
    assert done == {"a_good.json", "a_good_high.png", "a_good_low.png", "e_good.dcm", "g_good.json",
                    "g_good_high.png"}
    rejected = tmp_path / "rejected"
    reasons = {p.name: p.read_text(encoding="utf-8") for p in rejected.glob("*.reason.txt")}
    assert "not valid JSON" in reasons["b_broken.json.reason.txt"]
    assert "'gone.png', which does not exist" in reasons["c_missing.json.reason.txt"]
    assert "8-bit PNG where 16-bit is declared" in reasons["d_eight.json.reason.txt"]
    assert "not an X-ray image" in reasons["f_mr.dcm.reason.txt"]
    # nothing deleted: every file is in done/, rejected/ or still here
    after = ({p.name for p in tmp_path.iterdir() if p.is_file()} | done
             | {p.name for p in rejected.iterdir() if not p.name.endswith(".reason.txt")})
    assert before <= after
    assert (rejected / "c_missing_high.png").exists() and (rejected / "d_eight_high.png").exists()
    assert (tmp_path / "orphan_notes.txt").exists()


def test_drop_folder_waits_for_an_incomplete_drop_in_follow_mode(tmp_path: Path) -> None:
    _sidecar(tmp_path, "a", images={"high": "a_high.png"})  # the image is not there yet
    _sidecar(tmp_path, "b", low=False)  # complete, but named after the incomplete one
    clock = [1e10]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock[0] += s
        if len(sleeps) == 2:
            _png(tmp_path / "a_high.png", _u16())

    folder = XrayDropFolder(tmp_path, follow=True, settle_s=0, poll_interval_s=1.0, clock=lambda: clock[0],
                            sleep=sleep)
    first = folder.read()
    assert first is not None and Path(first.source).name == "a.json" and len(sleeps) == 2  # name order kept
    second = folder.read()
    assert second is not None and Path(second.source).name == "b.json"


def test_drop_folder_gives_up_on_a_drop_that_never_completes(tmp_path: Path) -> None:
    _sidecar(tmp_path, "a", images={"high": "never.png"})
    clock = [1e10]
    folder = XrayDropFolder(tmp_path, follow=True, settle_s=0, poll_interval_s=5.0, incomplete_timeout_s=12.0,
                            clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))

    def stop_after_reject(s: float) -> None:
        clock[0] += s
        if (tmp_path / "rejected").exists():
            folder.close()

    folder._sleep = stop_after_reject
    assert folder.read() is None
    assert "never.png" in (tmp_path / "rejected" / "a.json.reason.txt").read_text(encoding="utf-8")


def test_drop_folder_waits_until_files_settle(tmp_path: Path) -> None:
    _sidecar(tmp_path, "a", low=False)
    clock = [__import__("time").time()]
    folder = XrayDropFolder(tmp_path, settle_s=5.0, poll_interval_s=1.0, clock=lambda: clock[0],
                            sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    scan = folder.read()
    assert scan is not None and clock[0] > 0
    with pytest.raises(ScanError, match="does not exist or is not a directory"):
        XrayDropFolder(tmp_path / "nope")
