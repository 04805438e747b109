"""Install a validated model package into the store, atomically.

``install_package`` validates the source folder, copies it into a staging folder inside the store
root (same file system), fsyncs it, renames it into ``<root>/<task>/<name>/<version>/`` in one step,
and validates it again where it now lives. A crash leaves either no version or the whole one
(plus, at worst, a ``.staging-*`` folder that nothing reads). Versions are immutable: installing
the same files again is a no-op; different files under an existing version are refused.
Installing never activates a model: the config says which model the lanes use.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from appliance.errors import ModelError
from appliance.inference.session import sha256_file
from appliance.inference.store import ModelRef, ModelStore
from appliance.inference.validation import ValidationPolicy, validate_package

log = logging.getLogger(__name__)

STAGING_PREFIX = ".staging-"


def package_files(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file of a package; refuses links and special files."""
    files: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            raise ModelError(f"{folder}: {rel} is a symbolic link; a model package holds plain files only")
        if path.is_dir():
            continue
        if not path.is_file():
            raise ModelError(f"{folder}: {rel} is not a regular file; a model package holds plain files only")
        files[rel] = sha256_file(path)
    return files


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_package(src: Path, dest: Path, files: dict[str, str]) -> None:
    dest.mkdir()
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)
        _fsync(target)
    for folder in sorted({(dest / rel).parent for rel in files}, key=lambda p: len(p.parts), reverse=True):
        _fsync(folder)


def _existing(dest: Path, src_files: dict[str, str], store: ModelStore) -> ModelRef:
    try:
        dest_files = package_files(dest)
    except ModelError as exc:
        raise ModelError(f"{dest}: version exists and is not a clean package ({exc}); bump the version") from exc
    if dest_files != src_files:
        changed = sorted(k for k in src_files.keys() | dest_files.keys() if src_files.get(k) != dest_files.get(k))
        raise ModelError(
            f"{dest}: version exists with different files ({', '.join(changed)}); versions are immutable: "
            "bump the version"
        )
    task, name, version = dest.parts[-3:]
    log.info("model %s/%s v%s already installed with identical files", task, name, version)
    return store.get(task, name, version)


def install_package(src: Path, store: ModelStore, policy: ValidationPolicy) -> ModelRef:
    """Validate ``src`` and install it as ``store.root/<task>/<name>/<version>/``; return its ref.

    Raises ModelError when the package fails validation (see ``validate_package``), when the
    version already exists with different files, or when the installed copy fails validation
    again (it is then removed).
    """
    validated = validate_package(src, policy)
    manifest = validated.manifest
    src_files = package_files(src)
    parent = store.root / manifest.task / manifest.name
    dest = parent / manifest.version
    if dest.exists():
        return _existing(dest, src_files, store)

    store.root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=store.root))
    try:
        staged = staging / manifest.version
        _copy_package(src, staged, src_files)
        if package_files(staged) != src_files:
            raise ModelError(f"{src}: the copy in {staging} differs from the source (changed while copying?)")
        parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staged, dest)  # atomic; fails when another install created dest meanwhile
        except OSError as exc:
            if dest.exists():
                return _existing(dest, src_files, store)
            raise ModelError(f"{dest}: cannot move the staged package into place: {exc}") from exc
        _fsync(parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    try:
        validate_package(dest, policy, store_root=store.root)
    except ModelError:
        trash = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=store.root))
        os.rename(dest, trash / manifest.version)
        shutil.rmtree(trash, ignore_errors=True)
        raise
    log.info("installed model %s/%s v%s into %s", manifest.task, manifest.name, manifest.version, dest)
    return ModelRef(manifest.task, manifest.name, manifest.version, dest, manifest)
