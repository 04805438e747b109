"""Rendered images: codes decode, plates and faces have the geometry the scene relies on."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import zxingcpp

from appliance.sim.codes_render import code128_image, qr_image
from appliance.sim.kiosk import render_kiosk
from appliance.sim.model import Conditions, Plate, Seal
from appliance.sim.plates_render import plate_size_mm, render_plate
from appliance.sim.scene import NEAR_SCALE, face_resolution, render_vehicle_frames, scale_at
from appliance.sim.traffic import plan_lane
from appliance.sim.vehicles_render import render_face, render_seal_tag


def _decode(image: np.ndarray) -> list[tuple[str, str]]:
    return [(r.text, r.format.name) for r in zxingcpp.read_barcodes(image)]


def test_plain_codes_decode() -> None:
    assert _decode(qr_image("VNACCS|301234567890|20261118|0101234567", 3)) == [
        ("VNACCS|301234567890|20261118|0101234567", "QRCode")
    ]
    assert _decode(code128_image("VNH1234567", 2, 40)) == [("VNH1234567", "Code128")]


@pytest.mark.parametrize("symbology", ["Code128", "QRCode"])
def test_seal_tag_close_up_decodes_to_its_serial(symbology: str) -> None:
    tag = render_seal_tag("GXS0868593", symbology, module_px=2)
    assert _decode(tag) == [("GXS0868593", symbology)]


def test_seal_code_on_a_rendered_rear_face_decodes() -> None:
    plan = plan_lane(40, 21, mismatch_share=0.0)
    checked = 0
    for v in plan.vehicles:
        if not v.containers or v.body == "igv":
            continue
        face = render_face(v, "rear", face_resolution(1080), seal_module_px=3)
        x, y, w, h = face.regions["seal_code"]
        crop = face.composite()[y - 20 : y + h + 20, x - 20 : x + w + 20]
        serial = v.seals[0].serial
        assert (serial, v.seals[0].symbology) in _decode(crop)
        checked += 1
        if checked == 4:
            break
    assert checked == 4


def test_missing_seal_draws_no_code() -> None:
    plan = plan_lane(10, 22, mismatch_share=0.0)
    v = next(v for v in plan.vehicles if v.body == "tractor")
    v.seals = [Seal(None, False, None)]
    face = render_face(v, "rear", face_resolution(1080), seal_module_px=3)
    assert "seal_code" not in face.regions and "seal" not in face.regions
    assert _decode(face.composite()) == []


def test_kiosk_qr_decodes_to_the_declaration_payload() -> None:
    plan = plan_lane(30, 23)
    forms = set()
    for v in plan.vehicles:
        if v.declaration_payload is None or v.kiosk_ms is None:
            continue
        image = render_kiosk(v, v.kiosk_ms / 1000)
        assert image.shape == (960, 1280, 3)
        assert [t for t, f in _decode(image) if f == "QRCode"] == [v.declaration_payload]
        forms.add("url" if "so_tk=" in v.declaration_payload else "pipe" if "|" in v.declaration_payload else "bare")
        if len(forms) == 3:
            break
    assert forms == {"bare", "pipe", "url"}


@pytest.mark.parametrize(
    "plate",
    [
        Plate("29C-123.45", "VN", "one_line", "yellow"),
        Plate("12R-014.39", "VN", "two_line", "white", "trailer"),
        Plate("桂A12345", "CN", "one_line", "yellow"),
        Plate("桂A1234挂", "CN", "two_line", "yellow", "trailer"),
        Plate("桂AD12345", "CN", "one_line", "green", "nev_small"),
    ],
)
def test_plate_geometry(plate: Plate) -> None:
    r = 2.0
    rendered = render_plate(plate, r)
    w_mm, h_mm = plate_size_mm(plate)
    assert rendered.image.shape[:2] == (round(h_mm * r), round(w_mm * r))
    assert len(rendered.lines) == (2 if plate.layout == "two_line" else 1)
    for x, y, w, h in rendered.lines:  # text lines inside the plate, tall enough to read
        assert x >= 0 and y >= 0 and x + w <= rendered.image.shape[1] and y + h <= rendered.image.shape[0]
        assert h >= 55 * r
    # Black characters on a bright plate: the text line holds both extremes.
    x, y, w, h = rendered.lines[-1]
    brightest_channel = rendered.image[y : y + h, x : x + w].max(axis=2)
    assert brightest_channel.min() < 60 and brightest_channel.max() > 200


def test_plate_characters_are_tall_enough_in_the_closest_frame() -> None:
    # VN 2-line plate characters are the smallest (68 mm): >= ~30 px at 1080p up close.
    assert 68 * scale_at("rear", 0.0, 1080) >= 29
    assert 82 * scale_at("front", 1.0, 1080) >= 36
    assert scale_at("front", 0.0, 1080) < scale_at("front", 1.0, 1080)  # approaching
    assert scale_at("rear", 0.0, 1080) > scale_at("rear", 1.0, 1080)  # leaving
    assert scale_at("rear", 0.0, 1080) == pytest.approx(NEAR_SCALE["rear"])


def test_occluder_spares_codes_and_most_of_each_text_line() -> None:
    plan = plan_lane(30, 24, mismatch_share=0.0)
    tested = 0
    for v in plan.vehicles:
        if v.body != "tractor":
            continue
        v.conditions = dataclasses.replace(v.conditions, occlusion=0.12)
        for camera in ("front", "rear"):
            face = render_face(v, camera, 0.3, seal_module_px=2)
            if "occluder" not in face.regions:
                continue
            ox, oy, ow, oh = face.regions["occluder"]
            for (x, y, w, h), is_code in face.protected:
                ix = max(0, min(ox + ow, x + w) - max(ox, x))
                iy = max(0, min(oy + oh, y + h) - max(oy, y))
                if is_code:
                    assert ix * iy == 0
                elif ix and iy:
                    assert iy <= 0.25 * h + 1
            tested += 1
    assert tested >= 10


def test_vehicle_frames_have_the_frame_size_and_change_over_the_passage() -> None:
    plan = plan_lane(5, 25)
    v = plan.vehicles[0]
    v.conditions = Conditions("night", "rain", 3, True, 0.0)
    frames = render_vehicle_frames(v, "front", width=640, height=360, frames=6)
    assert len(frames) == 6 and all(f.shape == (360, 640, 3) and f.dtype == np.uint8 for f in frames)
    assert float(np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean()) > 5
    again = render_vehicle_frames(v, "front", width=640, height=360, frames=6)
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))  # deterministic


def test_closest_frames_are_legible_to_pp_ocr() -> None:
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    engine = rapidocr.RapidOCR(det_limit_type="max", det_limit_side_len=960)  # no upscaling of crops
    plan = plan_lane(10, 11, mismatch_share=0.0)
    v = next(v for v in plan.vehicles if v.body == "tractor" and v.conditions.blur_px == 0)
    v.conditions = dataclasses.replace(v.conditions, light="night", weather="rain")
    assert v.tractor_plate is not None and v.rear_plate is not None

    def texts(image: np.ndarray) -> str:
        result, _ = engine(image, use_cls=False)
        return "".join(re.sub(r"[\s.\-·]", "", r[1]) for r in sorted(result or [], key=lambda r: r[0][0][1]))

    front = render_vehicle_frames(v, "front", frames=10)[-1]
    assert re.sub(r"[.\-]", "", v.tractor_plate.text) in texts(front[900:, 640:1280])
    # The lane reads each field on its best frame: the rear plate close up, the door
    # marking a little later when the whole door is in view.
    rear = render_vehicle_frames(v, "rear", frames=10)
    assert any(re.sub(r"[.\-]", "", v.rear_plate.text) in texts(rear[i][900:, 640:1280]) for i in (1, 0, 2))
    assert any(v.containers[0].number[:10] in texts(rear[i][:360, 840:1480]) for i in (4, 5, 6))
