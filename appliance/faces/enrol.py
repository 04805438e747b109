"""Enrolment: reference photos and face-watchlist photos -> sealed templates in the face store.

A reference photo is stored under the keyed reference of its document number
(``FaceKey.person_ref``); a watchlist photo under the reference of its label (a case number, never
a name in the clear). The photo itself is not kept: only the descriptor, sealed. A photo with no
face, or with several, is refused with the reason, and nothing is stored for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from appliance.errors import ApplianceError
from appliance.faces.crypto import FaceKey
from appliance.faces.detect import FaceFinder, face_chip
from appliance.faces.embed import FaceEmbedder
from appliance.faces.templates import TemplateKind, TemplateStore

log = logging.getLogger(__name__)

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


class EnrolError(ApplianceError):
    """A photo that cannot be enrolled (unreadable, no face, several faces)."""


@dataclass(frozen=True)
class Enrolled:
    source: str  # the file name (never the document number in logs: see below)
    kind: TemplateKind
    template_id: int


class Enroller:
    """Photos -> descriptors -> sealed templates. Enrolment photos are searched at upsample 1 (faces
    from about 40 px wide), unlike the lane's live frames."""

    def __init__(self, embedder: FaceEmbedder, templates: TemplateStore, key: FaceKey,
                 finder: FaceFinder | None = None):
        self.embedder = embedder
        self.templates = templates
        self.key = key
        self.finder = finder or FaceFinder(upsample=1)

    def descriptor(self, image: np.ndarray, where: str) -> np.ndarray:
        faces = self.finder.find(image)
        if not faces:
            raise EnrolError(f"{where}: no face found in the photo")
        if len(faces) > 1:
            raise EnrolError(f"{where}: {len(faces)} faces in the photo; an enrolment photo shows one person")
        chip = face_chip(image, faces[0], self.embedder.chip_size, self.embedder.padding)
        return self.embedder.embed([chip])[0]

    def enrol(self, photo: Path, subject: str, kind: TemplateKind, ttl_s: float) -> Enrolled:
        """Enrol ``photo`` for ``subject`` (a document number, or a watchlist label)."""
        image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
        if image is None:
            raise EnrolError(f"{photo}: not a readable image")
        descriptor = self.descriptor(image, str(photo))
        template_id = self.templates.enroll(self.key.person_ref(subject), descriptor, kind, ttl_s)
        log.debug("enrolled %s as %s template %d", photo.name, kind, template_id)
        return Enrolled(photo.name, kind, template_id)

    def enrol_folder(self, folder: Path, ttl_s: float) -> tuple[list[Enrolled], list[str]]:
        """``<document number>.jpg`` files as references and ``watchlist/<label>.jpg`` as watchlist
        entries; returns (enrolled, problems). One bad photo does not stop the others."""
        if not folder.is_dir():
            raise EnrolError(f"{folder}: enrolment folder not found")
        done: list[Enrolled] = []
        problems: list[str] = []
        jobs: list[tuple[Path, TemplateKind]] = [(p, "reference") for p in sorted(folder.iterdir())]
        if (folder / "watchlist").is_dir():
            jobs += [(p, "watchlist") for p in sorted((folder / "watchlist").iterdir())]
        for path, kind in jobs:
            if not path.is_file() or path.suffix.lower() not in PHOTO_SUFFIXES:
                continue
            try:
                done.append(self.enrol(path, path.stem, kind, ttl_s))
            except (EnrolError, ValueError) as exc:
                problems.append(str(exc))
        return done, problems
