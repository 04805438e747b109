"""Font lookup for the simulator: a few candidate paths per role, cached Pillow fonts.

The simulator draws plate, container and document text with TrueType fonts (Pillow
``ImageFont``). Only Debian font packages are assumed; a missing font raises
:class:`~appliance.errors.SimulationError` naming the package to install.
"""

from __future__ import annotations

import logging
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal

from PIL import ImageFont

from appliance.errors import SimulationError

log = logging.getLogger(__name__)

FontRole = Literal["latin_bold", "latin_condensed_bold", "latin_regular", "mono_bold", "cjk"]

# role -> (candidate paths, face index inside a .ttc, Debian package that provides the first)
_CANDIDATES: dict[FontRole, tuple[tuple[str, ...], int, str]] = {
    "latin_condensed_bold": (
        (
            "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
            "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        ),
        0,
        "fonts-dejavu-core",
    ),
    "latin_bold": (
        (
            "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
            "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
        ),
        0,
        "fonts-dejavu-core",
    ),
    "latin_regular": (
        (
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf",
        ),
        0,
        "fonts-dejavu-core",
    ),
    "mono_bold": (
        (
            "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
            "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        ),
        0,
        "fonts-dejavu-core",
    ),
    "cjk": (
        (
            "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
            "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
            "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
            "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
        ),
        0,
        "fonts-wqy-zenhei",
    ),
}


@cache
def font_path(role: FontRole) -> Path:
    """The first installed font file for ``role``; raises SimulationError if none is."""
    try:
        paths, _index, package = _CANDIDATES[role]
    except KeyError as exc:
        raise SimulationError(f"unknown font role {role!r}") from exc
    for candidate in paths:
        path = Path(candidate)
        if path.is_file():
            return path
    raise SimulationError(
        f"no font found for {role!r} (looked for {', '.join(paths)}); "
        f"install the Debian package {package} (apt-get install {package})"
    )


@lru_cache(maxsize=512)
def font(role: FontRole, size: int) -> ImageFont.FreeTypeFont:
    """A Pillow TrueType font of ``size`` pixels (em size) for ``role``, cached."""
    if size < 1:
        raise SimulationError(f"font size must be >= 1 px, got {size}")
    path = font_path(role)
    index = _CANDIDATES[role][1] if path.suffix.lower() == ".ttc" else 0
    log.debug("loading font %s size %d", path, size)
    return ImageFont.truetype(str(path), size=size, index=index)
