"""``appliance retention hold|release|status|run`` (wired in by appliance/cli.py)."""

from __future__ import annotations

import argparse
import getpass
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.store.db import Store

if TYPE_CHECKING:
    from appliance.config import AppConfig


def _store(config_path: str) -> tuple[Store, AppConfig]:
    from appliance.config import load_config

    cfg = load_config(Path(config_path))
    return Store(cfg.storage.path, cfg.storage.evidence_dir), cfg


def _actor(args: argparse.Namespace) -> str:
    return args.actor or f"cli:{getpass.getuser()}"


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def cmd_hold(args: argparse.Namespace) -> int:
    from appliance.retention.holds import release_hold, set_hold

    store, _ = _store(args.config)
    try:
        if args.action == "hold":
            h = set_hold(store, args.crossing, args.reason, _actor(args))
            print(f"{h.crossing_id}: on legal hold since {_utc(h.held_at)} ({h.reason}); its evidence is kept "
                  "whatever the budget until `appliance retention release`")
        else:
            h = release_hold(store, args.crossing, args.reason, _actor(args))
            print(f"{h.crossing_id}: legal hold released (was held since {_utc(h.held_at)} by {h.actor})")
    finally:
        store.close()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from appliance.retention.holds import list_holds
    from appliance.retention.service import RetentionService

    store, cfg = _store(args.config)
    try:
        status: dict[str, Any] = {}
        if args.action == "run":
            RetentionService(cfg, store, status).run_once()
        else:
            _measure_only(cfg, store, status)
        holds = list_holds(store)
    finally:
        store.close()
    retention = status.get("retention", {})
    if args.json:
        print(json.dumps({**retention, "holds": [h.__dict__ for h in holds]}, indent=2))
        return 0
    print(f"{'class':<10} {'budget':>14} {'used':>14} {'use':>7} {'files':>8} {'evicted':>9} state")
    for name, c in retention.get("classes", {}).items():
        budget = "-" if c["budget_bytes"] is None else str(c["budget_bytes"])
        use = "-" if c["fraction"] is None else f"{100 * c['fraction']:.1f}%"
        print(f"{name:<10} {budget:>14} {c['used_bytes']:>14} {use:>7} {c['files']:>8} {c['evicted_files']:>9} "
              f"{c['state']}")
    disk = retention.get("evidence_disk")
    if disk:
        print(f"evidence disk: {disk['free_bytes']} of {disk['total_bytes']} bytes free")
    print(f"legal holds: {len(holds)}")
    for h in holds:
        print(f"  {h.crossing_id}  since {_utc(h.held_at)}  by {h.actor}: {h.reason}")
    return 0


def _measure_only(cfg: AppConfig, store: Store, status: dict[str, Any]) -> None:
    """Status without evicting: the same pass with no budgets, then the states against the real ones."""
    from appliance.retention.evict import state_of
    from appliance.retention.service import RetentionService

    real = cfg.retention
    unbudgeted = cfg.model_copy(update={"retention": real.model_copy(update={
        "budgets": real.budgets.model_copy(update={"evidence": None, "xray": None, "faces": None})})})
    RetentionService(unbudgeted, store, status).run_once()
    classes = status["retention"]["classes"]
    for name, c in classes.items():
        budget = getattr(real.budgets, name)
        c["budget_bytes"] = budget
        c["fraction"] = None if not budget else round(c["used_bytes"] / budget, 4)
        c["state"] = "unbudgeted" if budget is None else state_of(c["used_bytes"], budget, real.alarm_fraction)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retention", help="disk budgets and legal holds: hold|release|status|run (docs/RETENTION.md)")
    rsub = p.add_subparsers(dest="retention_action", required=True, metavar="ACTION")
    for action, text in (("hold", "keep a crossing's (or passage's) evidence whatever the budget"),
                         ("release", "release a legal hold")):
        q = rsub.add_parser(action, help=text)
        q.add_argument("--config", required=True)
        q.add_argument("--crossing", required=True, help="crossing or passage id")
        q.add_argument("--reason", required=True, help="why (case number, order); kept in the audit log")
        q.add_argument("--actor", help="who (default cli:<login user>)")
        q.set_defaults(func=cmd_hold, action=action)
    for action, text in (("status", "usage per class against its budget, and the legal holds (evicts nothing)"),
                         ("run", "one retention pass now (evicts what is over budget)")):
        q = rsub.add_parser(action, help=text)
        q.add_argument("--config", required=True)
        q.add_argument("--json", action="store_true", help="print JSON")
        q.set_defaults(func=cmd_status, action=action)
