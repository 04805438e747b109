"""``appliance store backup|restore`` (docs/OPERATIONS.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_backup(args: argparse.Namespace) -> int:
    from appliance.config import load_config
    from appliance.lifecycle.backup import backup_store

    cfg = load_config(Path(args.config))
    info = backup_store(cfg.storage.path, Path(args.out), overwrite=args.overwrite)
    print(f"backup of {cfg.storage.path} written to {info.path}: {info.bytes} bytes, schema v{info.schema_version}, "
          f"{info.crossings} crossings, {info.outbox} outbox events, {info.seconds:.2f} s")
    print("evidence files are not in it: copy them too, e.g. "
          f"rsync -a {cfg.storage.evidence_dir}/ BACKUP_DIR/evidence/")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from appliance.config import load_config
    from appliance.lifecycle.backup import restore_store

    cfg = load_config(Path(args.config))
    info = restore_store(Path(args.source), cfg.storage.path)
    print(f"{cfg.storage.path} restored from {info.restored_from}: schema v{info.schema_version}, "
          f"{info.crossings} crossings, {info.outbox} outbox events")
    for aside in info.moved_aside:
        print(f"the previous file is kept as {aside}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="online backup and restore of the local SQLite store")
    actions = p.add_subparsers(dest="action", required=True)
    b = actions.add_parser("backup", help="copy the store while the appliance runs (sqlite3 backup API)")
    b.add_argument("--config", required=True, help="the appliance's config (storage.path)")
    b.add_argument("--out", required=True, help="backup file to write")
    b.add_argument("--overwrite", action="store_true", help="replace an existing backup file")
    b.set_defaults(func=cmd_backup)
    r = actions.add_parser("restore", help="put a backup back (stop the appliance first)")
    r.add_argument("--config", required=True, help="the appliance's config (storage.path)")
    r.add_argument("--from", dest="source", required=True, help="backup file written by `appliance store backup`")
    r.set_defaults(func=cmd_restore)
