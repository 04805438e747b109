"""Vehicle faces as the lane cameras see them, laid out in millimetres.

* front of a tractor: cab, windscreen, grille, headlights, bumper with the front plate;
* front of an IGV: low chassis with its fleet ID painted large (no plate), container on top;
* rear of a container trailer: container doors with the ISO marking top-right
  (``MWCU 605978 [4]`` on one line, check digit boxed, size/type ``42G1`` below), locking
  bars, a bolt seal with a Code 128 or QR tag of its serial, rear plate on the light bar;
* rear of a box truck (doors, seal, its own plate) and of an IGV (doors, painted fleet ID).

A face is rendered once per vehicle and camera (BGRA, alpha = vehicle) and then warped
into every frame by :mod:`appliance.sim.scene`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from appliance.errors import SimulationError
from appliance.sim.codes_render import code128_image, code_size_modules, qr_image
from appliance.sim.draw import BGR, U8, Box, draw_text, text_mask
from appliance.sim.identities import format_container
from appliance.sim.model import Camera, Container, Plate, Seal, Vehicle
from appliance.sim.painter import Painter
from appliance.sim.plates_render import plate_size_mm, render_plate

log = logging.getLogger(__name__)

FACE_WIDTH_MM = 2600.0
FRONT_HEIGHT_MM = 4000.0
REAR_HEIGHT_MM = 4300.0

CONTAINER_WIDTH_MM = 2438.0
STANDARD_HEIGHT_MM = 2591.0
HIGH_CUBE_HEIGHT_MM = 2896.0
TRAILER_DECK_MM = 1150.0
IGV_DECK_MM = 1250.0

# Character heights (mm) of the door marking: large enough for a gate OCR (see scene.py).
NUMBER_CHAR_MM = 125.0
SIZE_TYPE_CHAR_MM = 100.0
FLEET_ID_CHAR_MM = 330.0

# The seal tag is sized so its modules keep about this many output pixels in the closest
# frame (see scene.REAR_NEAR_SCALE); capped so the tag fits on a door.
SEAL_MODULE_TARGET_PX = 2.2
SEAL_TAG_MAX_WIDTH_MM = 900.0

DARK: BGR = (28, 28, 28)
TYRE: BGR = (22, 22, 24)
STEEL: BGR = (70, 72, 75)
WHITE: BGR = (240, 240, 240)


@dataclass
class Face:
    """A rendered vehicle face: BGR image + alpha mask, its scale, named regions (pixel boxes).

    ``lights`` lists lamps as (x px, y px, radius px, BGR) for the night glow;
    ``protected`` the text/code boxes an occluder may not hide.
    """

    bgr: U8
    alpha: U8
    px_per_mm: float
    regions: dict[str, Box] = field(default_factory=dict)
    lights: list[tuple[int, int, int, BGR]] = field(default_factory=list)
    protected: list[tuple[Box, bool]] = field(default_factory=list)  # (box, is_code)

    @property
    def height_mm(self) -> float:
        return self.bgr.shape[0] / self.px_per_mm

    @property
    def width_mm(self) -> float:
        return self.bgr.shape[1] / self.px_per_mm

    def bgra(self) -> U8:
        """The face as one BGRA image."""
        return np.asarray(cv2.merge([*cv2.split(self.bgr), self.alpha]), np.uint8)

    def composite(self, background: BGR = (128, 128, 128)) -> U8:
        """The face over a flat ``background`` (BGR), e.g. for looking at it."""
        a = self.alpha.astype(np.float32)[..., None] / 255.0
        out = self.bgr.astype(np.float32) * a + np.asarray(background, np.float32) * (1.0 - a)
        return out.astype(np.uint8)


# --- public entry points ---------------------------------------------------------------


def render_face(vehicle: Vehicle, camera: Camera, px_per_mm: float, *, seal_module_px: int | None = None) -> Face:
    """The face of ``vehicle`` seen by ``camera`` at ``px_per_mm`` (day light, no weather).

    Dirt and occlusion from ``vehicle.conditions`` are painted in; light, weather, blur and
    noise are the scene's business.
    """
    if px_per_mm <= 0:
        raise SimulationError(f"px_per_mm must be > 0, got {px_per_mm}")
    rng = np.random.default_rng([vehicle.look.seed, 0 if camera == "front" else 1])
    if camera == "front":
        face = _igv_front(vehicle, px_per_mm) if vehicle.body == "igv" else _tractor_front(vehicle, px_per_mm)
    else:
        face = _rear(vehicle, px_per_mm, seal_module_px)
    if vehicle.conditions.occlusion > 0:
        _occlude(face, vehicle.conditions.occlusion, rng)
    return face


def seal_module_px(px_per_mm: float, near_scale_px_per_mm: float, modules_wide: int) -> int:
    """Pixels per module on a face drawn at ``px_per_mm`` so that the closest frame
    (``near_scale_px_per_mm``) keeps ~``SEAL_MODULE_TARGET_PX`` per module, within the cap."""
    target_mm = SEAL_MODULE_TARGET_PX / max(near_scale_px_per_mm, 1e-6)
    want = math.ceil(target_mm * px_per_mm - 1e-6)
    cap = int(SEAL_TAG_MAX_WIDTH_MM * px_per_mm / max(1, modules_wide))
    return max(1, min(want, max(1, cap)))


def render_seal_tag(serial: str, symbology: str, module_px: int) -> U8:
    """A seal tag: white plastic label with the code of ``serial`` and the serial printed below."""
    return _seal_tag(serial, symbology, module_px)[0]


def _seal_tag(serial: str, symbology: str, module_px: int) -> tuple[U8, Box]:
    """The seal tag and the box (tag pixels) of its printed serial."""
    if symbology == "QRCode":
        code = qr_image(serial, module_px)
    elif symbology == "Code128":
        width_modules, _ = code_size_modules(serial, "Code128")
        code = code128_image(serial, module_px, height_px=max(12 * module_px, int(width_modules * module_px * 0.28)))
    else:
        raise SimulationError(f"unknown seal symbology {symbology!r}")
    ch, cw = code.shape
    text_h = max(6, round(5 * module_px))
    pad = max(2, module_px)
    tag = np.full((ch + text_h + 3 * pad, cw + 2 * pad, 3), 250, np.uint8)
    tag[pad : pad + ch, pad : pad + cw] = code[..., None]
    text_box = draw_text(
        tag, serial, (pad, pad + ch + pad // 2, cw, text_h), DARK, "latin_condensed_bold", fit="contain"
    )
    cv2.rectangle(tag, (0, 0), (tag.shape[1] - 1, tag.shape[0] - 1), (150, 150, 150), 1)
    return tag, text_box


# --- helpers -----------------------------------------------------------------------------


def _scaled(colour: BGR, k: float) -> BGR:
    return (min(255, int(colour[0] * k)), min(255, int(colour[1] * k)), min(255, int(colour[2] * k)))


def _luma(colour: BGR) -> float:
    b, g, r = colour
    return 0.114 * b + 0.587 * g + 0.299 * r


def _place_plate(p: Painter, face: Face, plate: Plate, cx: float, ch: float, dirt: bool, seed: int, name: str) -> None:
    rendered = render_plate(plate, p.r, dirt_seed=seed if dirt else None)
    w_mm, h_mm = plate_size_mm(plate)
    # Dark holder behind the plate.
    p.rect(cx - w_mm / 2 - 25, ch - h_mm / 2 - 25, w_mm + 50, h_mm + 50, (35, 35, 38))
    x0, y0, pw, ph = p.paste_centered(rendered.image, cx, ch)
    face.regions[name] = (x0, y0, pw, ph)
    for i, (lx, ly, lw, lh) in enumerate(rendered.lines):
        box = (x0 + lx, y0 + ly, lw, lh)
        face.regions[f"{name}_line{i}"] = box
        face.protected.append((box, False))


def _tyre(p: Painter, x: float, w: float, h: float) -> None:
    p.rect(x, 0, w, h, TYRE)
    p.rect(x + w * 0.08, h * 0.55, w * 0.84, h * 0.06, (45, 45, 48), solid=False)


# --- tractor front ----------------------------------------------------------------------


def _tractor_front(vehicle: Vehicle, r: float) -> Face:
    p = Painter(FACE_WIDTH_MM, FRONT_HEIGHT_MM, r)
    face = Face(p.img, p.alpha, r)
    cab = vehicle.look.cab_colour
    # Wheels behind the bumper, mirrors on arms.
    _tyre(p, 180, 360, 1050)
    _tyre(p, 2060, 360, 1050)
    for x in (0.0, 2480.0):
        p.rect(x + 40, 2500, 40, 300, DARK)
        p.rect(x, 2050, 120, 700, (40, 40, 44))
    # Cab body, roof fairing.
    p.poly([(110, 700), (2490, 700), (2490, 3350), (2400, 3500), (200, 3500), (110, 3350)], cab)
    p.shade_vertical(p.box(110, 700, 2380, 2800), 1.05, 0.85)
    p.poly([(260, 3500), (2340, 3500), (2200, 3950), (400, 3950)], _scaled(cab, 0.9))
    # Windscreen with sky reflection and a sun visor.
    wx, wb, ww, wh = 240.0, 2050.0, 2120.0, 950.0
    screen = p.box(wx, wb, ww, wh)
    x, y, w, h = screen
    top, bottom = np.array([150, 140, 120], np.float32), np.array([60, 55, 50], np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    p.img[y : y + h, x : x + w] = (top + (bottom - top) * t).astype(np.uint8)
    p.alpha[y : y + h, x : x + w] = 255
    refl = np.array(
        [
            p.point(wx + ww * 0.15, wb + wh),
            p.point(wx + ww * 0.35, wb + wh),
            p.point(wx + ww * 0.2, wb),
            p.point(wx, wb),
        ],
        np.int32,
    )
    cv2.fillPoly(p.img, [refl], (150, 150, 140), cv2.LINE_AA)
    p.rect(wx, wb + wh, ww, 110, (25, 25, 28))
    p.line((wx + 300, wb + 60), (wx + 1000, wb + 260), (20, 20, 20), 20)
    p.line((wx + 1200, wb + 60), (wx + 1900, wb + 260), (20, 20, 20), 20)
    # Grille, badge, headlights, bumper.
    p.rect(700, 1150, 1200, 800, (45, 45, 48))
    for i in range(9):
        p.rect(720, 1190 + i * 85, 1160, 35, (80, 80, 84), solid=False)
    p.outline(700, 1150, 1200, 800, (190, 190, 195), 25)
    p.rect(1200, 1520, 200, 70, (200, 200, 205))
    lights: list[tuple[float, float]] = []
    for lx in (170.0, 1950.0):
        p.rect(lx, 1000, 480, 250, (60, 60, 62))
        p.rect(lx + 30, 1030, 200, 190, (225, 230, 235))
        p.rect(lx + 250, 1030, 200, 190, (205, 210, 215))
        lights.append((lx + 240, 1125))
    p.rect(80, 330, 2440, 670, (55, 55, 58))
    p.shade_vertical(p.box(80, 330, 2440, 670), 1.25, 0.8)
    for fx in (330.0, 2270.0):
        p.ellipse(fx, 560, 70, 45, (170, 175, 180))
    plate = vehicle.tractor_plate
    if plate is None:
        raise SimulationError(f"{vehicle.id}: a tractor needs a front plate")
    _place_plate(p, face, plate, 1300, 620, vehicle.conditions.dirt, vehicle.look.seed + 11, "plate")
    face.lights = [(p.px(x), p.y(h), p.px(160), (235, 245, 255)) for x, h in lights]
    return face


# --- IGV front ----------------------------------------------------------------------------


def _igv_chassis(p: Painter, face: Face, vehicle: Vehicle, rear: bool) -> None:
    body = vehicle.look.cab_colour
    text_colour: BGR = DARK if _luma(body) > 120 else WHITE
    for x in (120.0, 2080.0):
        _tyre(p, x, 400, 700)
    p.rect(60, 280, 2480, IGV_DECK_MM - 280, body)
    p.shade_vertical(p.box(60, 280, 2480, IGV_DECK_MM - 280), 1.1, 0.85)
    # Hazard stripes on the bumper strip.
    stripe = p.box(60, 280, 2480, 130)
    x, y, w, h = stripe
    yy, xx = np.mgrid[0:h, 0:w]
    band = ((xx + yy) // max(2, p.px(90))) % 2 == 0
    p.img[y : y + h, x : x + w][band] = (20, 180, 240)
    p.img[y : y + h, x : x + w][~band] = (25, 25, 25)
    # Amber light bar, lidar pucks at the corners.
    p.rect(300, IGV_DECK_MM - 120, 2000, 60, (40, 150, 235))
    for x in (120.0, 2380.0):
        p.rect(x, IGV_DECK_MM, 100, 140, (30, 30, 30))
    fleet = vehicle.fleet_id or "IGV-00"
    char_mm = FLEET_ID_CHAR_MM * (0.8 if rear else 1.0)
    box = p.text(fleet, 330, 460, 1940, char_mm, text_colour, "latin_bold", fit="condense")
    face.regions["fleet_id"] = box
    face.protected.append((box, False))
    lamp = (40, 40, 230) if rear else (235, 245, 255)
    face.lights.extend([(p.px(x), p.y(IGV_DECK_MM - 90), p.px(110), lamp) for x in (230.0, 2370.0)])


def _container_front(p: Painter, container: Container, colour: BGR, base: float) -> None:
    height = HIGH_CUBE_HEIGHT_MM if container.size_type[1] == "5" else STANDARD_HEIGHT_MM
    x0 = (FACE_WIDTH_MM - CONTAINER_WIDTH_MM) / 2
    p.rect(x0, base, CONTAINER_WIDTH_MM, height, colour)
    for i in range(14):  # corrugation
        p.rect(x0 + 140 + i * 155, base + 160, 70, height - 330, _scaled(colour, 0.82), solid=False)
    p.rect(x0, base, 140, height, _scaled(colour, 0.7))
    p.rect(x0 + CONTAINER_WIDTH_MM - 140, base, 140, height, _scaled(colour, 0.7))
    p.rect(x0, base + height - 160, CONTAINER_WIDTH_MM, 160, _scaled(colour, 0.75))
    p.rect(x0, base, CONTAINER_WIDTH_MM, 150, _scaled(colour, 0.6))


def _igv_front(vehicle: Vehicle, r: float) -> Face:
    p = Painter(FACE_WIDTH_MM, FRONT_HEIGHT_MM + 500, r)
    face = Face(p.img, p.alpha, r)
    if vehicle.containers:
        _container_front(p, vehicle.containers[0], vehicle.look.container_colour, IGV_DECK_MM)
    _igv_chassis(p, face, vehicle, rear=False)
    return face


# --- rear faces -----------------------------------------------------------------------------


def _rear(vehicle: Vehicle, r: float, module_px: int | None) -> Face:
    p = Painter(FACE_WIDTH_MM, REAR_HEIGHT_MM, r)
    face = Face(p.img, p.alpha, r)
    if vehicle.body == "igv":
        base = IGV_DECK_MM
        _igv_chassis(p, face, vehicle, rear=True)
    else:
        base = TRAILER_DECK_MM
        _trailer_chassis(p, face, vehicle)
    seal = vehicle.seals[0] if vehicle.seals else None
    if vehicle.body == "box":
        _box_body(p, face, base - 50, seal, module_px)
    elif vehicle.containers:
        _container_rear(p, face, vehicle.containers[0], vehicle.look.container_colour, base, seal, module_px)
    return face


def _trailer_chassis(p: Painter, face: Face, vehicle: Vehicle) -> None:
    for x in (180.0, 1900.0):
        _tyre(p, x, 520, 1060)
        p.rect(x + 60, 300, 400, 600, (18, 18, 18))  # mud flap
    p.rect(60, 1000, 2480, TRAILER_DECK_MM - 1000, (45, 45, 48))  # deck beam
    p.rect(60, 860, 2480, 140, STEEL)  # light bar
    lamps: list[tuple[float, BGR]] = []
    for x in (110.0, 2090.0):
        p.rect(x, 880, 400, 100, (30, 30, 30))
        p.rect(x + 10, 890, 180, 80, (40, 40, 200))
        p.rect(x + 200, 890, 90, 80, (40, 150, 235))
        p.rect(x + 300, 890, 90, 80, (225, 225, 225))
        lamps.append((x + 100, (60, 60, 255)))
    # Under-ride guard with red/white reflective stripes.
    x, y, w, h = p.rect(320, 430, 1960, 130, WHITE)
    step = max(2, p.px(140))
    for sx in range(0, w, 2 * step):
        cv2.rectangle(p.img, (x + sx, y), (x + min(w, sx + step) - 1, y + h - 1), (40, 40, 210), -1)
    for gx in (700.0, 1800.0):
        p.rect(gx, 560, 90, 300, STEEL)
    plate = vehicle.rear_plate
    if plate is not None:
        _, h_mm = plate_size_mm(plate)
        _place_plate(
            p, face, plate, 1300, 860 - h_mm / 2 - 20, vehicle.conditions.dirt, vehicle.look.seed + 23, "plate"
        )
    face.lights = [(p.px(cx), p.y(930), p.px(120), col) for cx, col in lamps]


def _door_panels(p: Painter, x0: float, base: float, width: float, height: float, colour: BGR) -> None:
    """Two doors with vertical corrugation and the centre seam."""
    half = width / 2
    for d in range(2):
        dx = x0 + d * half
        p.rect(dx, base, half, height, colour)
        n = 5
        for i in range(n):
            px0 = dx + 40 + i * (half - 80) / n
            p.rect(px0 + 25, base + 60, (half - 80) / n - 70, height - 120, _scaled(colour, 0.86), solid=False)
    p.line((x0 + half, base), (x0 + half, base + height), (20, 20, 20), 14)


def _locking_bars(p: Painter, xs: list[float], bottom: float, top: float, handle_h: float, colour: BGR) -> None:
    bar = _scaled(colour, 0.55)
    for i, x in enumerate(xs):
        p.rect(x - 22, bottom, 44, top - bottom, bar, solid=False)
        p.line((x - 22, bottom), (x - 22, top), _scaled(colour, 0.35), 6)
        for h in (bottom + 30, top - 60):  # cam keepers
            p.rect(x - 60, h, 120, 60, _scaled(colour, 0.45), solid=False)
        # Handle lever pointing to the seam side, held by its retainer.
        direction = 1 if i % 2 == 0 else -1
        hx1 = x + direction * 330
        p.line((x, handle_h), (hx1, handle_h), _scaled(colour, 0.4), 40)
        p.rect(min(x, hx1) + (40 if direction > 0 else 250), handle_h - 70, 40, 140, _scaled(colour, 0.5), solid=False)


def _bolt_seal(p: Painter, x: float, h: float, serial: str | None) -> None:
    """A small bolt seal through the handle retainer: yellow barrel, steel head."""
    p.rect(x - 16, h - 140, 32, 140, (30, 200, 240), solid=False)
    p.ellipse(x, h + 20, 34, 34, (190, 190, 195), solid=False)
    if serial:
        p.text(serial, x + 30, h - 120, 150, 22, DARK, "latin_condensed_bold", fit="contain", align="left")


def _seal_and_tag(
    p: Painter, face: Face, seal: Seal | None, bar_x: float, handle_h: float, module_px: int | None
) -> None:
    if seal is None or not seal.present or not seal.serial or not seal.symbology:
        face.regions.pop("seal", None)
        return
    seal_x = bar_x + 200
    _bolt_seal(p, seal_x, handle_h - 80, seal.serial)
    face.regions["seal"] = p.box(seal_x - 40, handle_h - 240, 80, 300)
    modules_wide, _ = code_size_modules(seal.serial, seal.symbology)
    if module_px is None:
        module_px = max(1, int(SEAL_TAG_MAX_WIDTH_MM * 0.35 * p.r / modules_wide))
    tag, (tx, ty, tw, th) = _seal_tag(seal.serial, seal.symbology, module_px)
    tag_w_mm = tag.shape[1] / p.r
    # The tag hangs from the seal's cable just below the handle.
    left = min(seal_x - 60, FACE_WIDTH_MM - 160 - tag_w_mm)
    box = p.paste_at(tag, left, handle_h - 300)
    p.line((seal_x, handle_h - 220), (left + tag_w_mm / 2, handle_h - 300), (60, 60, 60), 6)
    face.regions["seal_code"] = box
    face.regions["seal_serial"] = (box[0] + tx, box[1] + ty, tw, th)  # the serial printed under the code
    face.protected.append((box, True))


def _marking(p: Painter, face: Face, container: Container, right: float, top: float, colour: BGR) -> None:
    """ISO marking on the right door: ``MWCU 605978 [4]`` and the size/type code below."""
    owner, serial, check = format_container(container.number)
    ink: BGR = DARK if _luma(colour) > 135 else WHITE
    ch = NUMBER_CHAR_MM
    max_w = 1040.0
    head = f"{owner} {serial}"
    head_mask = text_mask(head, "latin_condensed_bold")
    digit_mask = text_mask(check, "latin_condensed_bold")
    head_w = head_mask.shape[1] * ch / head_mask.shape[0]
    digit_w = digit_mask.shape[1] * ch / digit_mask.shape[0]
    gap, pad = ch * 0.55, ch * 0.28
    total = head_w + gap + digit_w + 2 * pad
    squeeze = min(1.0, max_w / total)
    head_w, digit_w, gap, pad = head_w * squeeze, digit_w * squeeze, gap * squeeze, pad * squeeze
    x_digit = right - pad - digit_w
    x_head = x_digit - pad - gap - head_w
    hb = top - ch
    b1 = p.text(head, x_head, hb, head_w, ch, ink, "latin_condensed_bold", fit="stretch")
    b2 = p.text(check, x_digit, hb, digit_w, ch, ink, "latin_condensed_bold", fit="stretch")
    p.outline(x_digit - pad, hb - pad, digit_w + 2 * pad, ch + 2 * pad, ink, 8)
    number_box = (b1[0], b1[1], b2[0] + b2[2] - b1[0], max(b1[3], b2[3]))
    face.regions["container_number"] = number_box
    face.protected.append((number_box, False))
    st_w = SIZE_TYPE_CHAR_MM * 2.6
    b3 = p.text(
        container.size_type,
        right - pad - st_w,
        hb - 2 * pad - SIZE_TYPE_CHAR_MM - 40,
        st_w,
        SIZE_TYPE_CHAR_MM,
        ink,
        "latin_condensed_bold",
        fit="condense",
        align="right",
    )
    face.regions["size_type"] = b3
    face.protected.append((b3, False))


def _operational_data(p: Painter, x: float, top: float, colour: BGR, rng: np.random.Generator, forty: bool) -> None:
    """The small weight panel on the left door (clutter a real OCR has to ignore)."""
    ink: BGR = DARK if _luma(colour) > 135 else (225, 225, 225)
    gross = 30480  # ISO 668 rating of both 20' and 40' boxes
    tare = int(rng.integers(3650, 3950)) if forty else int(rng.integers(2150, 2350))
    lines = [
        f"MAX.GROSS {gross:,} KG",
        f"TARE {tare:,} KG",
        f"NET {gross - tare:,} KG",
        f"CU.CAP. {'67.7' if forty else '33.2'} CU.M",
    ]
    for i, line in enumerate(lines):
        p.text(line, x, top - (i + 1) * 70, 560, 44, ink, "latin_condensed_bold", fit="condense", align="left")


def _container_rear(
    p: Painter, face: Face, container: Container, colour: BGR, base: float, seal: Seal | None, module_px: int | None
) -> None:
    high_cube = container.size_type[1] == "5"
    forty = container.size_type[0] == "4"
    height = HIGH_CUBE_HEIGHT_MM if high_cube else STANDARD_HEIGHT_MM
    if container.size_type[2] == "R":
        colour = (222, 224, 226)
    x0 = (FACE_WIDTH_MM - CONTAINER_WIDTH_MM) / 2
    post, header, sill = 130.0, 190.0, 140.0
    p.rect(x0, base, CONTAINER_WIDTH_MM, height, _scaled(colour, 0.72))  # frame
    door_x, door_w = x0 + post, CONTAINER_WIDTH_MM - 2 * post
    door_b, door_h = base + sill, height - header - sill
    _door_panels(p, door_x, door_b, door_w, door_h, colour)
    top = base + height
    if high_cube:  # hazard stripes on the top corners mark a high cube
        for cx in (x0, x0 + CONTAINER_WIDTH_MM - post):
            p.rect(cx, top - 420, post, 420, (20, 190, 235))
            for k in range(4):
                p.line((cx, top - 420 + k * 110), (cx + post, top - 320 + k * 110), DARK, 30)
    for side in (x0, x0 + CONTAINER_WIDTH_MM - post):  # hinges
        for k in range(4):
            p.rect(
                side + (post - 70 if side == x0 else 0),
                door_b + 150 + k * (door_h - 300) / 3,
                70,
                90,
                _scaled(colour, 0.5),
                solid=False,
            )
    number_top = top - header - 250
    marking_bottom = number_top - NUMBER_CHAR_MM - SIZE_TYPE_CHAR_MM - 180
    bars = [door_x + door_w * f for f in (0.12, 0.36, 0.64, 0.88)]
    handle_h = base + 1050
    _locking_bars(p, bars, door_b, marking_bottom - 40, handle_h, colour)
    _operational_data(
        p, door_x + 80, number_top - 40, colour, np.random.default_rng(int(container.number[4:10])), forty
    )
    _marking(p, face, container, door_x + door_w - 60, number_top, colour)
    _seal_and_tag(p, face, seal, bars[2], handle_h, module_px)


def _box_body(p: Painter, face: Face, base: float, seal: Seal | None, module_px: int | None) -> None:
    colour: BGR = (205, 208, 212)
    x0, width, height = 80.0, 2440.0, 2700.0
    p.rect(x0, base, width, height, _scaled(colour, 0.75))
    _door_panels(p, x0 + 80, base + 100, width - 160, height - 250, colour)
    bars = [x0 + 80 + (width - 160) * f for f in (0.15, 0.4, 0.6, 0.85)]
    handle_h = base + 1000
    _locking_bars(p, bars, base + 120, base + height - 200, handle_h, colour)
    _seal_and_tag(p, face, seal, bars[2], handle_h, module_px)


# --- occlusion -----------------------------------------------------------------------------


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def _occluder_allowed(face: Face, box: Box) -> bool:
    """A bar may hide at most 25 % of a text line's height and never touch a code."""
    bx, by, bw, bh = box
    for (x, y, w, h), is_code in face.protected:
        ox = _overlap(bx, bx + bw, x, x + w)
        oy = _overlap(by, by + bh, y, y + h)
        if ox == 0 or oy == 0:
            continue
        if is_code:
            return False
        full_width = ox >= 0.98 * w
        if not full_width or oy > 0.25 * h:
            return False
    return True


def _occlude(face: Face, share: float, rng: np.random.Generator) -> None:
    """Paint a pole or bar in front of the vehicle hiding about ``share`` of its face."""
    h, w = face.alpha.shape
    horizontal = bool(rng.random() < 0.5)
    for attempt in range(400):
        k = share * (0.985**attempt)
        if horizontal:
            thick = max(2, int(h * k))
            box = (0, int(rng.integers(0, max(1, h - thick))), w, thick)
        else:
            thick = max(2, int(w * k))
            box = (int(rng.integers(0, max(1, w - thick))), 0, thick, h)
        if _occluder_allowed(face, box):
            break
    else:
        log.debug("no place for an occluder of share %.2f; skipped", share)
        return
    x, y, bw, bh = box
    yy, xx = np.mgrid[0:bh, 0:bw]
    step = max(2, int(0.4 * face.px_per_mm * 250))
    stripes = ((xx if horizontal else yy) // step) % 2 == 0
    bar = np.where(stripes[..., None], np.array([235, 235, 235], np.uint8), np.array([30, 40, 200], np.uint8))
    across = np.linspace(-1, 1, bh if horizontal else bw, dtype=np.float32)
    light = 1.0 - 0.35 * across**2
    bar = (bar * (light[:, None, None] if horizontal else light[None, :, None])).astype(np.uint8)
    face.bgr[y : y + bh, x : x + bw] = bar
    face.alpha[y : y + bh, x : x + bw] = 255
    face.regions["occluder"] = box
