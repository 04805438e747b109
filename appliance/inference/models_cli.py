"""``appliance models ...``: the model store and the model registry from the command line.

The store (a folder of model packages, ``models/<task>/<name>/<version>/``)::

    appliance models list|prepare [--root STORE]
    appliance models quantize text-detection/ppocrv4-det       # the int8 build, as a new version
    appliance models keygen --out DIR                          # an Ed25519 key pair for signing
    appliance models sign DIR --key PRIVATE_PEM
    appliance models verify DIR [--config FILE] [--trusted PUB ...] [--allow-unsigned]
    appliance models install DIR [--config FILE] [...]        # validate, then copy into the store

The registry (which version serves each task on this box) works on the store of a config
(``--config FILE``); a running appliance on that store picks a change up within
``models.watch_interval_s`` (hot swap, no restart)::

    appliance models activate text-detection ppocrv4-det 2 --config site.yaml [--force --reason TEXT]
    appliance models rollback text-detection --config site.yaml
    appliance models shadow text-detection ppocrv4-det 2 --config site.yaml
    appliance models shadow text-detection --stop --config site.yaml
    appliance models status --config site.yaml

``add_parsers(sub)`` adds the ``models`` command with all of these as its sub-commands.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError
from appliance.inference.registry import HistoryEntry, ModelRegistry, TaskState
from appliance.inference.store import ModelStore
from appliance.inference.validation import ValidationPolicy


def default_actor() -> str:
    """Who runs the command: $SUDO_USER when run through sudo, else the login name."""
    try:
        return os.environ.get("SUDO_USER") or getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return "unknown"


@contextmanager
def open_registry(config_path: str | Path) -> Iterator[ModelRegistry]:
    from appliance.config import load_config
    from appliance.store.db import Store

    config = load_config(Path(config_path))
    store = Store(config.storage.path, config.storage.evidence_dir)
    try:
        yield ModelRegistry(store, config)
    finally:
        store.close()


def _actor(args: argparse.Namespace) -> str:
    return str(getattr(args, "actor", None) or default_actor())


def cmd_activate(args: argparse.Namespace) -> int:
    if args.force and not (args.reason or "").strip():
        raise ApplianceError("models activate --force needs --reason TEXT (it is recorded in the model history)")
    with open_registry(args.config) as registry:
        state = registry.activate(args.task, args.name, args.version, _actor(args), reason=args.reason or "",
                                  force=args.force)
    previous = state.previous.label if state.previous else "-"
    print(f"activated {args.task} {state.active.label} (previous {previous}, generation {state.generation}); "
          "a running appliance swaps it in within models.watch_interval_s")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    with open_registry(args.config) as registry:
        state = registry.rollback(args.task, _actor(args), reason=args.reason or "")
    previous = state.previous.label if state.previous else "-"
    print(f"rolled {args.task} back to {state.active.label} (previous {previous}, generation {state.generation})")
    return 0


def cmd_shadow(args: argparse.Namespace) -> int:
    if args.stop:
        if args.name or args.version:
            raise ApplianceError("models shadow --stop takes only the TASK")
        with open_registry(args.config) as registry:
            registry.shadow(args.task, None, None, _actor(args))
        print(f"stopped the shadow of {args.task}")
        return 0
    if not args.name or not args.version:
        raise ApplianceError("models shadow needs TASK NAME VERSION (or TASK --stop)")
    with open_registry(args.config) as registry:
        state = registry.shadow(args.task, args.name, args.version, _actor(args))
    assert state.shadow is not None
    print(f"shadowing {args.task} {state.shadow.label} beside {state.active.label} (generation {state.generation})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with open_registry(args.config) as registry:
        states = registry.state()
        history = registry.history(limit=args.history)
    print(format_status(states, history))
    return 0


def _ts(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _ms(stats: dict[str, Any], key: str) -> str:
    value = stats.get(key) or {}
    p50, p95 = value.get("p50"), value.get("p95")
    return "-" if p50 is None else f"p50 {p50:g} ms, p95 {p95:g} ms"


def format_status(states: dict[str, TaskState], history: list[HistoryEntry]) -> str:
    lines = []
    for task, s in states.items():
        source = "config" if s.configured else f"registry, generation {s.generation}"
        lines.append(f"{task}")
        lines.append(f"  active    {s.active.label}  sha256 {s.active.sha256[:12] or '-'}  ({source})")
        lines.append(f"  previous  {s.previous.label if s.previous else '-'}")
        lines.append(f"  shadow    {s.shadow.label if s.shadow else '-'}")
        if s.shadow is not None:
            stats = s.shadow_stats or {}
            agreement = stats.get("agreement")
            lines.append(
                f"    samples {stats.get('samples', 0)}, dropped {stats.get('dropped', 0)}, errors "
                f"{stats.get('errors', 0)}, agreement {'-' if agreement is None else f'{agreement:.4f}'}"
                f"  (saved {_ts(s.shadow_stats_at)})"
            )
            lines.append(f"    latency active {_ms(stats, 'active_ms')}; candidate {_ms(stats, 'candidate_ms')}")
    lines.append("")
    lines.append("history (newest first)" if history else "history: none")
    for h in history:
        forced = " FORCED" if h.forced else ""
        reason = f"  reason: {h.reason}" if h.reason else ""
        lines.append(f"  {_ts(h.ts)}  {h.task:<17} {h.action:<12} {h.label:<24} by {h.actor}{forced}{reason}")
    return "\n".join(lines)


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "activate": (cmd_activate, "validate a model version and make it serve its task (hot swap)"),
    "rollback": (cmd_rollback, "make the previous model version serve its task again"),
    "shadow": (cmd_shadow, "run a candidate beside the active model on live inputs, or --stop it"),
    "status": (cmd_status, "active, previous and shadow model per task, shadow stats, recent history"),
}


def add_command_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """The arguments of one command (``activate``, ``rollback``, ``shadow``, ``status``); sets ``func``."""
    func, _ = COMMANDS[name]
    if name != "status":
        parser.add_argument("task", help="text-detection or text-recognition")
    if name == "activate":
        parser.add_argument("name", help="model name in the store")
        parser.add_argument("version", help="model version in the store")
        parser.add_argument("--force", action="store_true", help="activate past the regression gate (needs --reason)")
    if name == "shadow":
        parser.add_argument("name", nargs="?", help="candidate model name in the store")
        parser.add_argument("version", nargs="?", help="candidate model version in the store")
        parser.add_argument("--stop", action="store_true", help="stop the task's shadow candidate")
    if name in ("activate", "rollback"):
        parser.add_argument("--reason", default="", help="why (recorded in the model history)")
    if name == "status":
        parser.add_argument("--history", type=int, default=20, help="history rows to show (newest first)")
    if name != "status":
        parser.add_argument("--actor", help="who makes the change (default: the login name)")
    parser.add_argument("--config", required=True, help="the appliance's config file (its store holds the registry)")
    parser.set_defaults(func=func)


def _policy(args: argparse.Namespace) -> ValidationPolicy:
    """The validation policy of ``verify``/``install``: the config's, plus --trusted / --allow-unsigned."""
    from appliance.config import load_config
    from appliance.inference.validation import validation_policy

    policy = validation_policy(load_config(Path(args.config))) if args.config else ValidationPolicy()
    return ValidationPolicy(
        trusted_keys=(*policy.trusted_keys, *(Path(k) for k in args.trusted)),
        allow_unsigned=policy.allow_unsigned or args.allow_unsigned,
        options=policy.options,
    )


def _store(args: argparse.Namespace) -> ModelStore:
    """--root, else models.root of --config (where given), else the project's models/."""
    root = getattr(args, "root", None)
    if root is None and getattr(args, "config", None):
        from appliance.config import load_config

        root = load_config(Path(args.config)).models.root
    return ModelStore(Path(root)) if root else ModelStore()


def cmd_list(args: argparse.Namespace) -> int:
    for ref in _store(args).list():
        state = "prepared" if ref.file.is_file() else "not prepared"
        print(f"{ref.task}/{ref.name} v{ref.version}  {ref.manifest.licence}  ({state})")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    store = _store(args)
    for ref in store.list():
        print(f"ready  {ref.task}/{ref.name} v{ref.version}  {store.prepare(ref)}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from appliance.inference.quantize import quantize

    if args.model.count("/") != 1:
        raise ApplianceError("models quantize needs the float model as TASK/NAME, e.g. text-detection/ppocrv4-det")
    task, name = args.model.split("/")
    result = quantize(_store(args), task, name, vehicles=args.vehicles)
    print(f"installed {result.ref.task}/{result.ref.name} v{result.ref.version}  {result.ref.folder}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from appliance.inference.signing import keygen
    from appliance.keys import key_id, load_signing_key

    private, public = keygen(Path(args.out))
    print(f"private key {private}  (keep it with whoever builds models; mode 0600)")
    print(f"public key  {public}  (add it to models.trusted_keys on the boxes)")
    print(f"key id      {key_id(load_signing_key(private).public_key())}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from appliance.inference.signing import sign_package

    path = sign_package(Path(args.package), Path(args.key))
    print(f"signed {path.parent}: {path} (key {json.loads(path.read_text(encoding='utf-8'))['key_id']})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from appliance.inference.validation import validate_package

    validated = validate_package(Path(args.package), _policy(args))
    for check in validated.checks:
        print(f"ok  {check}")
    m = validated.manifest
    print(f"{validated.folder}: {m.task}/{m.name} v{m.version} passed every check")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from appliance.inference.install import install_package

    ref = install_package(Path(args.package), _store(args), _policy(args))
    print(f"installed {ref.task}/{ref.name} v{ref.version}  {ref.folder}  "
          f"(not serving yet: `appliance models activate {ref.task} {ref.name} {ref.version} --config ...`)")
    return 0


def _policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="take models.trusted_keys / allow_unsigned / root from this config")
    parser.add_argument("--trusted", action="append", default=[], metavar="PUB",
                        help="a trusted public key (PEM), in addition to the config's (repeatable)")
    parser.add_argument("--allow-unsigned", action="store_true",
                        help="accept a package without signature.json (development only)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``models`` command and its sub-commands."""
    models = sub.add_parser("models", help="the model store (list, install, sign, ...) and registry (activate, ...)")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="COMMAND")
    root_help = "model store folder (default: models.root of --config, else the project's models/)"

    p = msub.add_parser("list", help="models in the store")
    p.add_argument("--root", help=root_help)
    p.set_defaults(func=cmd_list)
    p = msub.add_parser("prepare", help="copy the models that ship in installed packages into the store")
    p.add_argument("--root", help=root_help)
    p.set_defaults(func=cmd_prepare)
    p = msub.add_parser("quantize", help="write the int8 build of a float model as a new version")
    p.add_argument("model", help="the float model, TASK/NAME (e.g. text-detection/ppocrv4-det)")
    p.add_argument("--vehicles", type=int, default=12, help="vehicles in the simulated calibration lane")
    p.add_argument("--root", help=root_help)
    p.set_defaults(func=cmd_quantize)
    p = msub.add_parser("keygen", help="make an Ed25519 key pair for signing model packages")
    p.add_argument("--out", required=True, help="folder for the new key pair")
    p.set_defaults(func=cmd_keygen)
    p = msub.add_parser("sign", help="sign a model package (writes signature.json)")
    p.add_argument("package", help="the model package folder (manifest.yaml, model file, ...)")
    p.add_argument("--key", required=True, help="the Ed25519 private key (PEM) to sign with")
    p.set_defaults(func=cmd_sign)
    p = msub.add_parser("verify", help="run every validation check on a model package")
    p.add_argument("package", help="the model package folder")
    _policy_arguments(p)
    p.set_defaults(func=cmd_verify)
    p = msub.add_parser("install", help="validate a model package and copy it into the store (not activated)")
    p.add_argument("package", help="the model package folder")
    p.add_argument("--root", help=root_help)
    _policy_arguments(p)
    p.set_defaults(func=cmd_install)
    for name, (_, help_text) in COMMANDS.items():
        add_command_arguments(name, msub.add_parser(name, help=help_text))
