"""Small raster helpers shared by the renderers: text masks, blending, gradients, shapes.

Images are BGR ``uint8`` arrays (OpenCV order); masks are single-channel ``uint8`` (0..255).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from appliance.errors import SimulationError
from appliance.sim.fonts import FontRole, font

log = logging.getLogger(__name__)

U8 = NDArray[np.uint8]
BGR = tuple[int, int, int]
Box = tuple[int, int, int, int]  # x, y, w, h

# Text is drawn large once and resized to its box, which keeps strokes clean at any scale.
_MASTER_PX = 96


@lru_cache(maxsize=4096)
def text_mask(text: str, role: FontRole = "latin_bold", px: int = _MASTER_PX) -> U8:
    """A tight (ink-bounded) mask of ``text`` drawn at font size ``px``; 255 = ink.

    The result is cached and must not be modified in place.
    """
    if not text:
        raise SimulationError("cannot draw empty text")
    fnt = font(role, px)
    left, top, right, bottom = (int(v) for v in fnt.getbbox(text))
    w, h = max(1, right - left), max(1, bottom - top)
    img = Image.new("L", (w + 4, h + 4), 0)
    ImageDraw.Draw(img).text((2 - left, 2 - top), text, font=fnt, fill=255)
    mask = np.asarray(img, dtype=np.uint8)
    ys, xs = np.nonzero(mask > 8)
    if len(xs) == 0:  # whitespace only
        return np.zeros((h, w), np.uint8)
    out = np.ascontiguousarray(mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    out.setflags(write=False)
    return out


def resize_mask(mask: U8, w: int, h: int) -> U8:
    """``mask`` resized to exactly ``w`` x ``h`` (area filter when shrinking)."""
    w, h = max(1, w), max(1, h)
    shrinking = w < mask.shape[1] or h < mask.shape[0]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(mask, (w, h), interpolation=interp), dtype=np.uint8)


def blend_mask(img: U8, mask: U8, x: int, y: int, colour: BGR, opacity: float = 1.0) -> None:
    """Paint ``colour`` into ``img`` through ``mask`` placed at (x, y), clipped to the image."""
    h, w = mask.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(img.shape[1], x + w), min(img.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return
    m = mask[y0 - y : y1 - y, x0 - x : x1 - x].astype(np.float32) * (opacity / 255.0)
    roi = img[y0:y1, x0:x1].astype(np.float32)
    col = np.asarray(colour, np.float32)
    roi += (col - roi) * m[..., None]
    img[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)


def draw_text(
    img: U8,
    text: str,
    box: Box,
    colour: BGR,
    role: FontRole = "latin_bold",
    *,
    fit: Literal["stretch", "height", "contain", "condense"] = "contain",
    align: Literal["left", "center", "right"] = "center",
    opacity: float = 1.0,
) -> Box:
    """Draw ``text`` into ``box`` and return the box its ink occupies.

    ``stretch`` fills the box exactly; ``height`` matches the box height (width follows the
    font, may overflow); ``contain`` keeps the aspect ratio and fits inside the box;
    ``condense`` matches the height and squeezes the width only when it would overflow.
    """
    x, y, w, h = box
    mask = text_mask(text, role)
    mh, mw = mask.shape
    if fit == "stretch":
        tw, th = w, h
    elif fit in ("height", "condense"):
        th = h
        tw = round(mw * h / mh)
        if fit == "condense":
            tw = min(tw, w)
    else:
        k = min(w / mw, h / mh)
        tw, th = round(mw * k), round(mh * k)
    if align == "left":
        tx = x
    elif align == "right":
        tx = x + w - tw
    else:
        tx = x + (w - tw) // 2
    ty = y + (h - th) // 2
    blend_mask(img, resize_mask(mask, tw, th), tx, ty, colour, opacity)
    return (tx, ty, max(1, tw), max(1, th))


def vertical_gradient(h: int, w: int, top: BGR, bottom: BGR) -> U8:
    """An ``h`` x ``w`` BGR image fading from ``top`` to ``bottom``."""
    t = np.linspace(0.0, 1.0, max(1, h), dtype=np.float32)[:, None, None]
    a, b = np.asarray(top, np.float32), np.asarray(bottom, np.float32)
    col = a + (b - a) * t
    return np.ascontiguousarray(np.broadcast_to(col, (h, w, 3)).astype(np.uint8))


def horizontal_gradient(h: int, w: int, left: BGR, right: BGR) -> U8:
    """An ``h`` x ``w`` BGR image fading from ``left`` to ``right``."""
    t = np.linspace(0.0, 1.0, max(1, w), dtype=np.float32)[None, :, None]
    a, b = np.asarray(left, np.float32), np.asarray(right, np.float32)
    col = a + (b - a) * t
    return np.ascontiguousarray(np.broadcast_to(col, (h, w, 3)).astype(np.uint8))


def rounded_rect(img: U8, box: Box, radius: int, colour: BGR, thickness: int = -1) -> None:
    """A rectangle with rounded corners; ``thickness`` -1 fills it."""
    x, y, w, h = box
    r = max(0, min(radius, w // 2, h // 2))
    if thickness < 0:
        cv2.rectangle(img, (x + r, y), (x + w - 1 - r, y + h - 1), colour, -1)
        cv2.rectangle(img, (x, y + r), (x + w - 1, y + h - 1 - r), colour, -1)
        for cx, cy in ((x + r, y + r), (x + w - 1 - r, y + r), (x + r, y + h - 1 - r), (x + w - 1 - r, y + h - 1 - r)):
            cv2.circle(img, (cx, cy), r, colour, -1, cv2.LINE_AA)
        return
    t = thickness
    cv2.line(img, (x + r, y), (x + w - 1 - r, y), colour, t, cv2.LINE_AA)
    cv2.line(img, (x + r, y + h - 1), (x + w - 1 - r, y + h - 1), colour, t, cv2.LINE_AA)
    cv2.line(img, (x, y + r), (x, y + h - 1 - r), colour, t, cv2.LINE_AA)
    cv2.line(img, (x + w - 1, y + r), (x + w - 1, y + h - 1 - r), colour, t, cv2.LINE_AA)
    if r > 0:
        cv2.ellipse(img, (x + r, y + r), (r, r), 180, 0, 90, colour, t, cv2.LINE_AA)
        cv2.ellipse(img, (x + w - 1 - r, y + r), (r, r), 270, 0, 90, colour, t, cv2.LINE_AA)
        cv2.ellipse(img, (x + r, y + h - 1 - r), (r, r), 90, 0, 90, colour, t, cv2.LINE_AA)
        cv2.ellipse(img, (x + w - 1 - r, y + h - 1 - r), (r, r), 0, 0, 90, colour, t, cv2.LINE_AA)


def paste(img: U8, patch: U8, x: int, y: int, alpha: NDArray[np.float32] | None = None) -> None:
    """Copy ``patch`` (BGR) into ``img`` at (x, y), optionally through ``alpha`` (0..1), clipped."""
    h, w = patch.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(img.shape[1], x + w), min(img.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return
    src = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    if alpha is None:
        img[y0:y1, x0:x1] = src
        return
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    dst = img[y0:y1, x0:x1].astype(np.float32)
    img[y0:y1, x0:x1] = (dst + (src.astype(np.float32) - dst) * a).astype(np.uint8)


def soft_blobs(
    shape: tuple[int, int], rng: np.random.Generator, count: int, radius: tuple[float, float]
) -> NDArray[np.float32]:
    """A float mask (0..1) of ``count`` soft elliptical blobs, for dirt and stains."""
    h, w = shape
    mask = np.zeros((h, w), np.float32)
    for _ in range(count):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx = rng.uniform(*radius) * min(h, w)
        ry = rx * rng.uniform(0.4, 1.0)
        cv2.ellipse(
            mask, (int(cx), int(cy)), (max(1, int(rx)), max(1, int(ry))), rng.uniform(0, 180), 0, 360,
            float(rng.uniform(0.5, 1.0)), -1, cv2.LINE_AA,
        )  # fmt: skip
    k = max(3, int(min(h, w) * 0.08) | 1)
    blurred = cv2.GaussianBlur(mask, (k, k), 0)
    return np.clip(np.asarray(blurred, np.float32), 0.0, 1.0)
