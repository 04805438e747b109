"""A canvas measured in millimetres: the vehicle faces are laid out in real-world units.

``x`` runs left to right from the left edge of the face, ``h`` is the height above the
ground; the canvas keeps a BGR image and an alpha mask (what belongs to the vehicle).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from appliance.sim.draw import BGR, U8, Box, draw_text, paste
from appliance.sim.fonts import FontRole

log = logging.getLogger(__name__)


class Painter:
    """Draws shapes given in millimetres onto a BGR image plus alpha mask."""

    def __init__(self, width_mm: float, height_mm: float, px_per_mm: float) -> None:
        self.width_mm = width_mm
        self.height_mm = height_mm
        self.r = px_per_mm
        self.w = round(width_mm * px_per_mm)
        self.h = round(height_mm * px_per_mm)
        self.img: U8 = np.zeros((self.h, self.w, 3), np.uint8)
        self.alpha: U8 = np.zeros((self.h, self.w), np.uint8)

    # --- coordinates -------------------------------------------------------------------
    def px(self, mm: float) -> int:
        return round(mm * self.r)

    def y(self, h_mm: float) -> int:
        """Image row of a height above the ground."""
        return round((self.height_mm - h_mm) * self.r)

    def box(self, x: float, hb: float, w: float, h: float) -> Box:
        """Pixel box of a rectangle whose bottom-left corner is (x, hb) mm, w x h mm."""
        x0, y0 = self.px(x), self.y(hb + h)
        return (x0, y0, max(1, self.px(x + w) - x0), max(1, self.y(hb) - y0))

    def point(self, x: float, h: float) -> tuple[int, int]:
        return (self.px(x), self.y(h))

    # --- drawing ---------------------------------------------------------------------
    def rect(self, x: float, hb: float, w: float, h: float, colour: BGR, *, solid: bool = True) -> Box:
        bx, by, bw, bh = self.box(x, hb, w, h)
        cv2.rectangle(self.img, (bx, by), (bx + bw - 1, by + bh - 1), colour, -1)
        if solid:
            cv2.rectangle(self.alpha, (bx, by), (bx + bw - 1, by + bh - 1), 255, -1)
        return (bx, by, bw, bh)

    def outline(self, x: float, hb: float, w: float, h: float, colour: BGR, thick_mm: float) -> None:
        bx, by, bw, bh = self.box(x, hb, w, h)
        cv2.rectangle(self.img, (bx, by), (bx + bw - 1, by + bh - 1), colour, max(1, self.px(thick_mm)))

    def poly(self, points_mm: list[tuple[float, float]], colour: BGR, *, solid: bool = True) -> None:
        pts = np.array([self.point(x, h) for x, h in points_mm], np.int32)
        cv2.fillPoly(self.img, [pts], colour, cv2.LINE_AA)
        if solid:
            cv2.fillPoly(self.alpha, [pts], 255, cv2.LINE_AA)

    def line(self, p0: tuple[float, float], p1: tuple[float, float], colour: BGR, thick_mm: float) -> None:
        cv2.line(self.img, self.point(*p0), self.point(*p1), colour, max(1, self.px(thick_mm)), cv2.LINE_AA)

    def ellipse(self, cx: float, ch: float, rx: float, ry: float, colour: BGR, *, solid: bool = True) -> None:
        centre, axes = self.point(cx, ch), (max(1, self.px(rx)), max(1, self.px(ry)))
        cv2.ellipse(self.img, centre, axes, 0, 0, 360, colour, -1, cv2.LINE_AA)
        if solid:
            cv2.ellipse(self.alpha, centre, axes, 0, 0, 360, 255, -1, cv2.LINE_AA)

    def text(
        self,
        text: str,
        x: float,
        hb: float,
        w: float,
        h: float,
        colour: BGR,
        role: FontRole = "latin_bold",
        *,
        fit: str = "contain",
        align: str = "center",
    ) -> Box:
        return draw_text(self.img, text, self.box(x, hb, w, h), colour, role, fit=fit, align=align)  # type: ignore[arg-type]

    def paste_centered(self, patch: U8, cx: float, ch: float) -> Box:
        """Paste a BGR patch (already at this canvas' resolution) centred on (cx, ch) mm."""
        ph, pw = patch.shape[:2]
        x0 = self.px(cx) - pw // 2
        y0 = self.y(ch) - ph // 2
        paste(self.img, patch, x0, y0)
        cv2.rectangle(self.alpha, (x0, y0), (x0 + pw - 1, y0 + ph - 1), 255, -1)
        return (x0, y0, pw, ph)

    def paste_at(self, patch: U8, x: float, top_h: float) -> Box:
        """Paste a BGR patch with its top-left corner at x mm, height ``top_h`` mm."""
        ph, pw = patch.shape[:2]
        x0, y0 = self.px(x), self.y(top_h)
        paste(self.img, patch, x0, y0)
        cv2.rectangle(self.alpha, (x0, y0), (x0 + pw - 1, y0 + ph - 1), 255, -1)
        return (x0, y0, pw, ph)

    def shade_vertical(self, box: Box, top: float, bottom: float, bands: int = 32) -> None:
        """Multiply ``box`` by a factor fading from ``top`` to ``bottom`` (simple lighting)."""
        x, y, w, h = box
        x0, y0, x1, y1 = max(0, x), max(0, y), min(self.w, x + w), min(self.h, y + h)
        if x1 <= x0 or y1 <= y0:
            return
        for i in range(bands):
            ya, yb = y + h * i // bands, y + h * (i + 1) // bands
            ya, yb = max(ya, y0), min(yb, y1)
            if yb > ya:
                roi = self.img[ya:yb, x0:x1]
                cv2.convertScaleAbs(roi, dst=roi, alpha=top + (bottom - top) * (i + 0.5) / bands)

    def bgra(self) -> U8:
        """The canvas as one BGRA image."""
        return np.ascontiguousarray(np.dstack([self.img, self.alpha]))
