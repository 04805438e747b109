"""Where a passenger's reference photo comes from: a document reader, or the enrolment store.

A document reader (an ePassport / CCCD chip reader at the kiosk) hands over the photo stored on
the presented document's chip. The appliance talks to one through ``DocumentReader``; the
``FileDropReader`` is the simplest such device: it writes ``<document number>.jpg`` (or .png)
into a folder when a document is presented. The file is read once and deleted at once, so no
clear face image stays on the box's disk (what the lane keeps is encrypted: templates.py).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

log = logging.getLogger(__name__)

_DOCUMENT_NUMBER = re.compile(r"^[0-9A-Z]{6,20}$")  # CCCD: 12 digits; passports: letters and digits
MAX_PHOTO_BYTES = 8 * 1024 * 1024


class DocumentReader(Protocol):
    def reference_photo(self, document_number: str) -> bytes | None:
        """The encoded photo (JPEG/PNG bytes) from the presented document's chip, or None."""
        ...


class FileDropReader:
    """A document reader that drops ``<document number>.jpg|.png`` into ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder

    def reference_photo(self, document_number: str) -> bytes | None:
        if not _DOCUMENT_NUMBER.fullmatch(document_number):
            raise ValueError("document number must be 6-20 upper-case letters or digits")  # never a path
        for suffix in (".jpg", ".jpeg", ".png"):
            path = self.folder / f"{document_number}{suffix}"
            if not path.is_file():
                continue
            try:
                size = path.stat().st_size
                data = path.read_bytes() if size <= MAX_PHOTO_BYTES else None
            finally:
                path.unlink(missing_ok=True)  # read once, never kept in the clear
            if data is None:
                log.warning("document reader: a reference photo of %d bytes was refused (limit %d)",
                            size, MAX_PHOTO_BYTES)
            return data
        return None


def decode_photo(data: bytes) -> np.ndarray | None:
    """The photo as a BGR image, or None when the bytes are not a decodable image."""
    if not data:
        return None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[0] < 32 or image.shape[1] < 32:
        return None
    return image
