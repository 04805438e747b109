"""Draws Vietnamese and Chinese licence plates as BGR images at a given resolution.

Vietnam: white or yellow, black characters, thin black border; a 1-line long plate
(520 x 110 mm, ``29C-123.45``) or a 2-line plate (330 x 165 mm, ``29C`` over ``123.45``).

China: blue plates with white characters, yellow truck plates with black characters,
new-energy plates on a green gradient (small: white-to-green, large: yellow/green split).
1-line plates (440 x 140 mm, 480 x 140 mm for new energy) print a dot ``·`` after the
authority letter; 2-line rear truck and trailer plates (440 x 220 mm) carry ``桂A`` on top
and ``12345`` / ``1234挂`` below.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from appliance.errors import SimulationError
from appliance.sim.draw import (
    BGR,
    U8,
    Box,
    draw_text,
    horizontal_gradient,
    rounded_rect,
    soft_blobs,
    vertical_gradient,
)
from appliance.sim.model import Plate

log = logging.getLogger(__name__)

BLACK: BGR = (22, 22, 22)
WHITE: BGR = (245, 245, 245)
VN_WHITE: BGR = (238, 240, 240)
VN_YELLOW: BGR = (20, 196, 246)
CN_BLUE: BGR = (165, 62, 12)
CN_YELLOW: BGR = (0, 186, 244)
NEV_LIGHT: BGR = (232, 246, 236)
NEV_GREEN: BGR = (96, 196, 104)
DIRT: BGR = (38, 64, 92)

# Physical sizes in millimetres (width, height).
PLATE_SIZES_MM: dict[tuple[str, str, str], tuple[float, float]] = {
    ("VN", "one_line", "standard"): (520.0, 110.0),
    ("VN", "two_line", "standard"): (330.0, 165.0),
    ("VN", "two_line", "trailer"): (330.0, 165.0),
    ("VN", "one_line", "trailer"): (520.0, 110.0),
    ("CN", "one_line", "standard"): (440.0, 140.0),
    ("CN", "one_line", "nev_small"): (480.0, 140.0),
    ("CN", "one_line", "nev_large"): (480.0, 140.0),
    ("CN", "two_line", "standard"): (440.0, 220.0),
    ("CN", "two_line", "trailer"): (440.0, 220.0),
}


@dataclass(frozen=True)
class RenderedPlate:
    """A plate image plus the boxes (plate pixels) of its character lines."""

    image: U8
    lines: tuple[Box, ...]
    px_per_mm: float


def plate_size_mm(plate: Plate) -> tuple[float, float]:
    """Physical (width, height) of ``plate`` in millimetres."""
    key = (plate.country, plate.layout, plate.style)
    try:
        return PLATE_SIZES_MM[key]
    except KeyError as exc:
        raise SimulationError(f"no plate geometry for {key}") from exc


def plate_line_texts(plate: Plate) -> list[str]:
    """The text of each line :func:`render_plate` draws, top first (the canonical text, no ``·``).

    VN 2-line ``29C-123.45`` -> ``29C`` / ``123.45``; CN 2-line ``桂A1234挂`` -> ``桂A`` / ``1234挂``.
    """
    if plate.layout == "one_line":
        return [plate.text]
    if plate.country == "VN":
        return plate.text.split("-", 1)
    return [plate.text[:2], plate.text[2:]]


def render_plate(plate: Plate, px_per_mm: float, *, dirt_seed: int | None = None) -> RenderedPlate:
    """Draw ``plate`` at ``px_per_mm``; ``dirt_seed`` adds reproducible dirt blotches."""
    if px_per_mm <= 0:
        raise SimulationError(f"px_per_mm must be > 0, got {px_per_mm}")
    if plate.country == "VN":
        image, lines = _vietnamese(plate, px_per_mm)
    else:
        image, lines = _chinese(plate, px_per_mm)
    if dirt_seed is not None:
        _add_dirt(image, np.random.default_rng(dirt_seed))
    return RenderedPlate(image, tuple(lines), px_per_mm)


def _mm(r: float, x: float, y: float, w: float, h: float) -> Box:
    """A box given in millimetres, in pixels at ``r`` px/mm."""
    return (round(x * r), round(y * r), round(w * r), round(h * r))


def _px(r: float, *values: float) -> tuple[int, ...]:
    return tuple(round(v * r) for v in values)


def _canvas(w: int, h: int, colour: BGR) -> U8:
    return np.full((h, w, 3), colour, np.uint8)


def _frame(img: U8, r: float, colour: BGR, inset_mm: float = 3.0, line_mm: float = 1.8) -> None:
    h, w = img.shape[:2]
    inset, thick, radius = _px(r, inset_mm, line_mm, 7.0)
    rounded_rect(img, (inset, inset, w - 2 * inset, h - 2 * inset), radius, colour, max(1, thick))
    # Plate edge and the two fixing screws.
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), (90, 90, 90), max(1, int(r * 1.2)))


def _screws(img: U8, r: float, xs_mm: tuple[float, float], y_mm: float) -> None:
    rad = max(1, round(4.5 * r))
    for x_mm in xs_mm:
        centre = (int(x_mm * r), int(y_mm * r))
        cv2.circle(img, centre, rad, (170, 170, 170), -1, cv2.LINE_AA)
        cv2.circle(img, centre, rad, (110, 110, 110), max(1, rad // 3), cv2.LINE_AA)


def _vietnamese(plate: Plate, r: float) -> tuple[U8, list[Box]]:
    w_mm, h_mm = plate_size_mm(plate)
    w, h = _px(r, w_mm, h_mm)
    img = _canvas(w, h, VN_YELLOW if plate.colour == "yellow" else VN_WHITE)
    _frame(img, r, BLACK)
    lines: list[Box] = []
    if plate.layout == "one_line":
        _screws(img, r, (9.0, w_mm - 9.0), h_mm / 2)
        box = _mm(r, 16, 14, w_mm - 32, 82)
        lines.append(draw_text(img, plate.text, box, BLACK, "latin_condensed_bold", fit="condense"))
    else:
        top, bottom = plate_line_texts(plate)
        _screws(img, r, (40.0, w_mm - 40.0), 44.0)
        lines.append(draw_text(img, top, _mm(r, 70, 11, w_mm - 140, 68), BLACK, "latin_condensed_bold", fit="condense"))
        lines.append(
            draw_text(img, bottom, _mm(r, 14, 88, w_mm - 28, 68), BLACK, "latin_condensed_bold", fit="condense")
        )
    return img, lines


def _cn_background(plate: Plate, w: int, h: int, split_x: int) -> tuple[U8, BGR, BGR]:
    """Background, text colour and border colour of a Chinese plate."""
    if plate.style == "nev_small":
        return vertical_gradient(h, w, NEV_LIGHT, NEV_GREEN), BLACK, BLACK
    if plate.style == "nev_large":
        img = _canvas(w, h, CN_YELLOW)
        img[:, split_x:] = horizontal_gradient(h, w - split_x, (80, 200, 140), NEV_GREEN)
        return img, BLACK, BLACK
    if plate.colour == "blue":
        return _canvas(w, h, CN_BLUE), WHITE, WHITE
    return _canvas(w, h, CN_YELLOW), BLACK, BLACK


def _cn_char(img: U8, ch: str, box: Box, colour: BGR) -> Box:
    if ord(ch) > 0x2E80:  # CJK: a narrow, tall glyph filling its cell
        return draw_text(img, ch, box, colour, "cjk", fit="stretch")
    return draw_text(img, ch, box, colour, "latin_condensed_bold", fit="condense")


def _union(boxes: list[Box]) -> Box:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return (x0, y0, x1 - x0, y1 - y0)


def _chinese(plate: Plate, r: float) -> tuple[U8, list[Box]]:
    w_mm, h_mm = plate_size_mm(plate)
    w, h = _px(r, w_mm, h_mm)
    text = plate.text
    if plate.layout == "two_line":
        img, fg, border = _cn_background(plate, w, h, 0)
        _frame(img, r, border, inset_mm=4.0, line_mm=2.0)
        _screws(img, r, (55.0, w_mm - 55.0), 45.0)
        top = [_cn_char(img, text[0], _mm(r, 110, 14, 80, 62), fg), _cn_char(img, text[1], _mm(r, 250, 14, 80, 62), fg)]
        rest = plate_line_texts(plate)[1]
        bottom = [_cn_char(img, ch, _mm(r, 27.5 + i * 80, 94, 65, 110), fg) for i, ch in enumerate(rest)]
        return img, [_union(top), _union(bottom)]
    eight = len(text) == 8
    cell_w, spacing, dot_gap, margin = (43.0, 9.0, 49.0, 16.5) if eight else (45.0, 12.0, 34.0, 15.5)
    split_x = round((margin + 2 * cell_w + spacing + dot_gap / 2) * r)
    img, fg, border = _cn_background(plate, w, h, split_x)
    _frame(img, r, border, inset_mm=3.0, line_mm=1.6)
    _screws(img, r, (margin + cell_w / 2 + 40, w_mm - margin - cell_w / 2 - 40), 12.0)
    boxes: list[Box] = []
    x = margin
    for i, ch in enumerate(text):
        boxes.append(_cn_char(img, ch, _mm(r, x, 25, cell_w, 90), fg))
        x += cell_w
        if i == 1:
            cx, cy = _px(r, x + dot_gap / 2, 70)
            cv2.circle(img, (cx, cy), max(1, round(5 * r)), fg, -1, cv2.LINE_AA)
            x += dot_gap
        else:
            x += spacing
    return img, [_union(boxes)]


def _add_dirt(img: U8, rng: np.random.Generator) -> None:
    """Mud splashes: soft brown blotches, strong enough to notice, weak enough to read through."""
    h, w = img.shape[:2]
    alpha = soft_blobs((h, w), rng, count=int(rng.integers(3, 8)), radius=(0.06, 0.22)) * 0.5
    grime = img.astype(np.float32) * 0.92
    out = grime + (np.asarray(DIRT, np.float32) - grime) * alpha[..., None]
    img[:] = np.clip(out, 0, 255).astype(np.uint8)
