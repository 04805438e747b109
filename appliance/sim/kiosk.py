"""The declaration document a driver shows at the kiosk scanner, as the kiosk camera sees it.

A paper sheet headed "TỜ KHAI HẢI QUAN" with a few typed lines and the declaration QR,
photographed with a slight perspective, a lighting gradient, mild blur and sensor noise
(1280 x 960 by default). The QR text is ``vehicle.declaration_payload``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import cv2
import numpy as np
from PIL import Image, ImageDraw

from appliance.errors import SimulationError
from appliance.sim.background import noise_bank
from appliance.sim.codes_render import qr_image
from appliance.sim.draw import BGR, U8, draw_text
from appliance.sim.fonts import FontRole, font
from appliance.sim.model import Vehicle

log = logging.getLogger(__name__)

PAPER_PX_PER_MM = 4.0
PAPER_MM = (210.0, 240.0)  # the upper part of an A4 sheet lies on the scanner glass
INK: BGR = (40, 30, 25)
COMPANIES = (
    "Công ty TNHH Thương mại Hoàng Long",
    "Công ty CP Logistics Đông Bắc",
    "Công ty TNHH Nông sản Kim Thành",
    "Công ty TNHH Xuất nhập khẩu Biên Mậu",
    "Công ty CP Linh kiện Điện tử Bắc Giang",
)
GOODS_VN = (
    "Thanh long tươi",
    "Sầu riêng tươi",
    "Vải tươi",
    "Linh kiện điện tử",
    "Tôm đông lạnh",
    "Phân bón urê",
    "Than cốc",
    "Hàng thương mại điện tử",
)


def _page(vehicle: Vehicle, when: float, rng: np.random.Generator, qr_module_px: int) -> U8:
    """The flat document page (BGR) at PAPER_PX_PER_MM."""
    if not vehicle.declaration or not vehicle.declaration_payload:
        raise SimulationError(f"{vehicle.id} has no declaration to show at the kiosk")
    r = PAPER_PX_PER_MM
    w, h = int(PAPER_MM[0] * r), int(PAPER_MM[1] * r)
    sheet = Image.new("RGB", (w, h), (242, 240, 236))
    pen = ImageDraw.Draw(sheet)
    ink = (INK[2], INK[1], INK[0])

    def text(
        x_mm: float,
        y_mm: float,
        value: str,
        size_mm: float,
        role: FontRole = "latin_regular",
        fill: tuple[int, int, int] = ink,
        centre: bool = False,
    ) -> None:
        fnt = font(role, max(6, round(size_mm * r)))
        x = x_mm * r
        if centre:
            x -= pen.textlength(value, font=fnt) / 2
        pen.text((x, y_mm * r), value, font=fnt, fill=fill)

    text(105, 9, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", 5.2, "latin_bold", centre=True)
    text(105, 16, "Độc lập - Tự do - Hạnh phúc", 4.8, centre=True)
    text(12, 30, "TỜ KHAI HẢI QUAN", 10.0, "latin_bold", fill=(140, 30, 30))
    export = vehicle.declaration.startswith("3")
    text(12, 44, "HÀNG HÓA XUẤT KHẨU" if export else "HÀNG HÓA NHẬP KHẨU", 5.5, "latin_bold")
    day = datetime.fromtimestamp(when, tz=UTC)
    goods = GOODS_VN[int(rng.integers(len(GOODS_VN)))]
    lines = [
        f"Số tờ khai: {vehicle.declaration}",
        f"Mã loại hình: {'B11' if export else 'A11'}      Mã hải quan: 15E1",
        f"Ngày đăng ký: {day:%d/%m/%Y %H:%M}",
        f"Người khai: {COMPANIES[int(rng.integers(len(COMPANIES)))]}",
        f"Mã số thuế: {vehicle.tax_code or '0100000000'}",
        f"Mô tả hàng hóa: {goods}",
        "Phân luồng: Xanh",
    ]
    for i, line in enumerate(lines):
        text(12, 60 + i * 9.5, line, 5.0)
    grey = (120, 120, 120)
    labels = ("Số hiệu container", "Số chì hải quan", "Trọng lượng", "Số kiện", "Ghi chú")
    for k in range(6):  # ruled table below the header block
        yy = (132 + k * 16) * r
        pen.line([(12 * r, yy), (198 * r, yy)], fill=grey, width=2)
        if k < len(labels):
            text(14, 134 + k * 16, labels[k], 4.4, fill=(90, 90, 90))
    for x in (12.0, 80.0, 198.0):
        pen.line([(x * r, 132 * r), (x * r, 212 * r)], fill=grey, width=2)
    page = np.ascontiguousarray(np.asarray(sheet, np.uint8)[..., ::-1])
    qr = qr_image(vehicle.declaration_payload, qr_module_px)
    qh, qw = qr.shape
    qx, qy = w - qw - int(10 * r), int(26 * r)
    page[qy : qy + qh, qx : qx + qw] = qr[..., None]
    draw_text(page, "Mã QR tờ khai", (qx, qy + qh + 4, qw, int(4 * r)), INK, "latin_regular")
    return page


def render_kiosk(vehicle: Vehicle, when: float, *, width: int = 1280, height: int = 960) -> U8:
    """The kiosk camera's photo of ``vehicle``'s declaration (BGR ``height`` x ``width``)."""
    rng = np.random.default_rng([vehicle.look.seed, 77])
    page = _page(vehicle, when, rng, qr_module_px=6)
    ph, pw = page.shape[:2]
    # Scanner surface: dark, slightly textured.
    base = rng.normal(52, 3, (height // 8, width // 8)).astype(np.float32)
    surface = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    photo = cv2.merge([surface, surface * 1.02, surface * 1.05])
    # The sheet fills most of the frame, slightly rotated and in perspective.
    k = 0.92 * min(height / ph, width / pw)
    cx, cy = width / 2 + rng.uniform(-40, 40), height / 2 + rng.uniform(-20, 20)
    hw, hh = pw * k / 2, ph * k / 2
    dst = np.array([[cx - hw, cy - hh], [cx + hw, cy - hh], [cx + hw, cy + hh], [cx - hw, cy + hh]], np.float32)
    dst += rng.uniform(-0.035, 0.035, (4, 2)).astype(np.float32) * np.array([pw * k, ph * k], np.float32)
    angle = np.deg2rad(rng.uniform(-3, 3))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    centre = dst.mean(axis=0)
    dst = (dst - centre) @ rot.T + centre
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    # Shrink the page once (area filter) so the warp itself only resamples ~1:1.
    small = cv2.resize(page, (int(pw * k), int(ph * k)), interpolation=cv2.INTER_AREA)
    m = m @ np.diag([pw / small.shape[1], ph / small.shape[0], 1.0])
    sheet = cv2.warpPerspective(small.astype(np.float32), m, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones(small.shape[:2], np.float32), m, (width, height), flags=cv2.INTER_LINEAR)
    photo = cv2.blendLinear(sheet, photo, mask, 1.0 - mask)
    # Lighting gradient (one side brighter), mild defocus, sensor noise.
    gx, gy = rng.uniform(-0.25, 0.25), rng.uniform(-0.2, 0.2)
    xs = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    ys = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    light = (1.0 + gx * xs + gy * ys) * float(rng.uniform(0.85, 1.0))
    photo = cv2.multiply(photo, cv2.merge([light, light, light]))
    photo = cv2.GaussianBlur(photo, (0, 0), float(rng.uniform(0.5, 0.9)))
    noise = noise_bank(width, height)[int(rng.integers(len(noise_bank(width, height))))]
    crop = noise[:height, :width]
    out = cv2.addWeighted(photo.clip(0, 255).astype(np.uint8), 1.0, crop, 0.15, -19.2)
    return np.asarray(out, np.uint8)
