"""``POST /api/scanner/xray``: a scanner posts a scan over HTTP instead of dropping it into the folder.

The request is multipart: ``sidecar`` (the JSON sidecar of docs/XRAY.md), ``high`` and optionally
``low`` (the 16-bit PNG/TIFF images, or DICOM files). The box writes them into the X-ray drop
folder under a fresh name, the images first and the sidecar last (written aside, then renamed), so
the drop folder picks the scan up exactly as if the scanner had dropped it: one path for both, one
set of checks, nothing processed twice. Answer: 202 with the drop's name.

Machines do not log in: the scanner sends ``Authorization: Bearer <token>``, compared in constant
time with ``xray.upload_token_file`` (owner-only). The path is outside the login wall and the CSRF
check because no cookie is used (``auth.MACHINE_PREFIXES``); without a configured token the endpoint
answers 404. Bodies are limited (``MAX_IMAGE_BYTES`` per image, ``MAX_SIDECAR_BYTES``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse

from appliance.errors import ConfigError

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 256 * 1024 * 1024
MAX_SIDECAR_BYTES = 64 * 1024
_SUFFIXES = {b"\x89PNG": ".png", b"II*\x00": ".tiff", b"MM\x00*": ".tiff"}


@dataclass(frozen=True)
class ScannerUpload:
    drop_dir: Path
    token: bytes

    @classmethod
    def from_files(cls, drop_dir: Path, token_file: Path) -> ScannerUpload:
        try:
            st = token_file.stat()
            token = token_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{token_file}: cannot read the scanner upload token: {exc.strerror or exc}") from None
        if st.st_mode & 0o077:
            raise ConfigError(f"{token_file}: the scanner upload token is readable by group or others (mode "
                              f"{stat.S_IMODE(st.st_mode):04o}); run `chmod 600 {token_file}`")
        if len(token) < 16:
            raise ConfigError(f"{token_file}: the scanner upload token must be at least 16 characters")
        return cls(drop_dir, token)


def _suffix(head: bytes, field: str) -> str:
    for magic, suffix in _SUFFIXES.items():
        if head.startswith(magic):
            return suffix
    if len(head) >= 132 and head[128:132] == b"DICM":
        return ".dcm"
    raise HTTPException(422, f"{field}: not a PNG, TIFF or DICOM file")


async def _read(upload: UploadFile, limit: int, field: str) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{field}: larger than {limit} bytes")
    if not data:
        raise HTTPException(422, f"{field}: empty")
    return data


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # hidden: the drop folder ignores it until the rename
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def router(upload: ScannerUpload | None) -> APIRouter:
    api = APIRouter()

    @api.post("/api/scanner/xray", status_code=202)
    async def post_scan(request: Request, sidecar: UploadFile, high: UploadFile,
                        low: UploadFile | None = None) -> JSONResponse:
        if upload is None:
            raise HTTPException(404, "scanner uploads are not enabled on this box (xray.upload_token_file)")
        given = request.headers.get("authorization", "")
        if not (given.startswith("Bearer ") and secrets.compare_digest(given[7:].strip().encode(), upload.token)):
            log.warning("scanner upload refused from %s: missing or wrong token",
                        request.client.host if request.client else "?")
            raise HTTPException(401, "missing or wrong scanner token")
        try:
            doc = json.loads(await _read(sidecar, MAX_SIDECAR_BYTES, "sidecar"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HTTPException(422, f"sidecar: not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise HTTPException(422, "sidecar: must be a JSON object")
        images = {"high": await _read(high, MAX_IMAGE_BYTES, "high")}
        if low is not None:
            images["low"] = await _read(low, MAX_IMAGE_BYTES, "low")
        name = f"up{time.time_ns() // 1_000_000}-{secrets.token_hex(4)}"
        names = {energy: f"{name}_{energy}{_suffix(data[:132], energy)}" for energy, data in images.items()}
        doc["images"] = names  # the uploaded files, under the names written here
        for energy, data in images.items():
            _write(upload.drop_dir / names[energy], data)
        _write(upload.drop_dir / f"{name}.json", json.dumps(doc, ensure_ascii=False).encode("utf-8"))  # last
        log.info("scanner upload %s: %d image(s) into %s", name, len(images), upload.drop_dir)
        return JSONResponse({"drop": name, "files": [f"{name}.json", *names.values()]}, status_code=202)

    return api
