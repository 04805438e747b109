"""``appliance users create-admin|list`` and ``appliance audit verify`` (wired in by appliance/cli.py).

There is no default account and no default password: the first admin is created here, with a
password typed twice (or read from ``--password-file``); the admin then creates the others in
the web UI (``/admin/users``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import secrets
from pathlib import Path

from appliance.config import AppConfig, load_config
from appliance.errors import ApplianceError
from appliance.store.db import Store
from appliance.store.users import AccountError, Accounts, check_password, normalise_username

DEMO_ADMIN = "demo-admin"


def _open_store(config: AppConfig) -> Store:
    return Store(config.storage.path, config.storage.evidence_dir)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            lines = Path(args.password_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ApplianceError(f"{args.password_file}: cannot read the password file: {exc}") from exc
        return lines[0] if lines else ""
    first = getpass.getpass("Password (12 characters or more): ")
    check_password(first)
    if getpass.getpass("Same password again: ") != first:
        raise ApplianceError("the two passwords differ; nothing was changed")
    return first


def cmd_create_admin(args: argparse.Namespace) -> int:
    password = _read_password(args)
    check_password(password)
    store = _open_store(load_config(Path(args.config)))
    try:
        accounts = Accounts(store)
        name = normalise_username(args.username)
        if accounts.count_admins() > 0 and not args.force:
            raise ApplianceError("an admin already exists; admins create users at /admin/users "
                                 "(--force adds another admin or recovers this one)")
        if accounts.get(name) is None:
            accounts.create_user(name, password, "admin", actor="cli")
        elif args.force:  # recovery: new password, admin role, enabled
            accounts.set_password(name, password, actor="cli")
            accounts.set_role(name, "admin", actor="cli")
            accounts.set_disabled(name, False, actor="cli")
        else:
            raise AccountError("user_exists", f"user {name!r} already exists (--force resets it as an admin)")
    finally:
        store.close()
    print(f"admin {name!r} is ready; log in at /login")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _open_store(load_config(Path(args.config)))
    try:
        users = Accounts(store).list_users()
    finally:
        store.close()
    if not users:
        print("no users yet: appliance users create-admin --config FILE --username NAME")
    for u in users:
        created = dt.datetime.fromtimestamp(u.created_at).strftime("%Y-%m-%d %H:%M")
        print(f"{u.username:<32} {u.role:<15} {'disabled' if u.disabled else 'active':<9} {created}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    store = _open_store(load_config(Path(args.config)))
    try:
        broken = store.verify_audit_chain()
        if broken is None:
            n, head = store.query("SELECT COUNT(*), (SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1) "
                                  "FROM audit_log")[0]
            print(f"ok: {n} audit entries chain correctly; head {head or '-'} (keep it elsewhere to detect "
                  "removal of the newest entries)")
            return 0
        row = store.query("SELECT id, ts, actor, action, target FROM audit_log WHERE id = ?", (broken,))[0]
        when = dt.datetime.fromtimestamp(row[1]).isoformat(timespec="seconds")
        print(f"BROKEN: audit entry {row[0]} ({when} {row[2]} {row[3]} {row[4] or '-'}) does not chain: "
              "it or an entry before it was changed or removed")
        return 1
    finally:
        store.close()


def create_demo_admin(config: AppConfig) -> None:
    """Demo mode only: an admin with a random password, printed once on the console."""
    password = secrets.token_urlsafe(12)
    store = _open_store(config)
    try:
        accounts = Accounts(store)
        if accounts.get(DEMO_ADMIN) is None:
            accounts.create_user(DEMO_ADMIN, password, "admin", actor="demo")
        else:
            accounts.set_password(DEMO_ADMIN, password, actor="demo")
    finally:
        store.close()
    url = f"http://{config.web.host}:{config.web.port}/login"
    print(f"\n  Demo login ({url}), this run only:  user {DEMO_ADMIN}  password {password}\n", flush=True)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("users", help="web UI accounts: create the first admin, list users")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("create-admin", help="create an admin (prompts for the password twice)")
    a.add_argument("--config", required=True)
    a.add_argument("--username", required=True)
    a.add_argument("--password-file", help="read the password from the first line of this file instead")
    a.add_argument("--force", action="store_true", help="even if an admin exists; resets an existing user as admin")
    a.set_defaults(func=cmd_create_admin)
    a = actions.add_parser("list", help="list the web UI users")
    a.add_argument("--config", required=True)
    a.set_defaults(func=cmd_list)

    p = sub.add_parser("audit", help="the hash-chained audit log")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("verify", help="check the chain; exit 1 at the first broken entry")
    a.add_argument("--config", required=True)
    a.set_defaults(func=cmd_audit_verify)
