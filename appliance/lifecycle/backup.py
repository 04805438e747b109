"""Online backup and restore of the SQLite store (docs/OPERATIONS.md).

``backup_store`` copies the live database with sqlite3's backup API while the appliance keeps
writing: WAL mode lets the copy read one consistent snapshot without blocking the lanes. The copy is
written beside the target, checked (``PRAGMA integrity_check``), switched to a single self-contained
file (journal mode DELETE), fsynced and only then renamed into place: a backup file that exists is
whole. Evidence files are content-addressed (named by their sha256) and never change: copy the
evidence folder with rsync beside the database backup.

``restore_store`` puts a backup back: it checks the backup first (integrity, a schema this appliance
knows), refuses while an appliance holds the store (``RunLock``), moves the current database and its
WAL aside (``<db>.before-restore-<time>``; nothing is deleted) and copies the backup in.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import StoreError
from appliance.lifecycle.runlock import RunLock

log = logging.getLogger(__name__)

_SIDE_FILES = ("-wal", "-shm")


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    bytes: int
    schema_version: int
    crossings: int
    outbox: int
    seconds: float


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(conn: sqlite3.Connection, path: Path) -> tuple[int, int, int]:
    """(schema version, crossings, outbox rows) of a store database; StoreError when it is not one."""
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise StoreError(f"{path}: integrity check failed: {check}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not a readable SQLite database: {exc}") from exc
    if not {"crossings", "outbox"} <= tables or version < 2:
        raise StoreError(f"{path}: not an appliance store (schema v{version}, tables {sorted(tables)[:5]}...)")
    crossings = int(conn.execute("SELECT COUNT(*) FROM crossings").fetchone()[0])
    outbox = int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    return version, crossings, outbox


def backup_store(db: Path, out: Path, overwrite: bool = False) -> BackupInfo:
    """Copy the store at ``db`` into ``out`` while it may be in use; returns what was copied."""
    started = time.monotonic()
    if not db.is_file():
        raise StoreError(f"{db}: no store database here (check storage.path in the config)")
    if out.exists() and not overwrite:
        raise StoreError(f"{out}: already exists; choose another file or pass --overwrite")
    if out.resolve() == db.resolve():
        raise StoreError(f"{out}: is the live database itself; write the backup somewhere else")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(str(db), timeout=30)
    except sqlite3.Error as exc:
        raise StoreError(f"{db}: cannot open the store: {exc}") from exc
    dst = sqlite3.connect(str(partial))
    try:
        src.backup(dst)  # all pages in one step: one consistent snapshot, writers carry on (WAL)
        dst.execute("PRAGMA journal_mode=DELETE")
        version, crossings, outbox = _describe(dst, partial)
    except sqlite3.Error as exc:
        dst.close()
        partial.unlink(missing_ok=True)
        raise StoreError(f"{db}: backup failed: {exc}") from exc
    except StoreError:
        dst.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    dst.close()
    _fsync_path(partial)
    partial.replace(out)
    _fsync_path(out.parent)
    info = BackupInfo(out, out.stat().st_size, version, crossings, outbox, time.monotonic() - started)
    log.info("store backup written to %s (%d bytes, schema v%d, %d crossings, %d outbox events)",
             out, info.bytes, version, crossings, outbox)
    return info


@dataclass(frozen=True)
class RestoreInfo:
    restored_from: Path
    moved_aside: list[Path]
    schema_version: int
    crossings: int
    outbox: int


def check_backup(backup: Path) -> tuple[int, int, int]:
    """(schema version, crossings, outbox rows) of a backup file; StoreError when it cannot be restored."""
    from appliance.store.db import MIGRATIONS

    if not backup.is_file():
        raise StoreError(f"{backup}: backup file not found")
    try:
        conn = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"{backup}: cannot open the backup: {exc}") from exc
    try:
        version, crossings, outbox = _describe(conn, backup)
    finally:
        conn.close()
    if version > len(MIGRATIONS):
        raise StoreError(f"{backup}: schema v{version} is newer than this appliance (v{len(MIGRATIONS)}); "
                         "restore it with the appliance version that wrote it")
    return version, crossings, outbox


def restore_store(backup: Path, db: Path) -> RestoreInfo:
    """Replace the store at ``db`` by ``backup`` (the appliance must be stopped); the old files are kept aside."""
    version, crossings, outbox = check_backup(backup)  # a bad backup changes nothing
    with RunLock(db).acquire("appliance store restore"):
        stamp = time.strftime("%Y%m%dT%H%M%S")
        moved: list[Path] = []
        for suffix in ("", *_SIDE_FILES):
            current = db.with_name(db.name + suffix)
            if current.exists():
                aside = db.with_name(f"{db.name}.before-restore-{stamp}{suffix}")
                current.replace(aside)
                moved.append(aside)
        db.parent.mkdir(parents=True, exist_ok=True)
        partial = db.with_name(db.name + ".restoring")
        partial.unlink(missing_ok=True)
        src = sqlite3.connect(f"file:{backup}?mode=ro", uri=True)
        dst = sqlite3.connect(str(partial))
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        _fsync_path(partial)
        partial.replace(db)
        _fsync_path(db.parent)
    log.info("store %s restored from %s (schema v%d, %d crossings); the previous files are kept as %s",
             db, backup, version, crossings, [p.name for p in moved])
    return RestoreInfo(backup, moved, version, crossings, outbox)
