"""``appliance faces keygen|enrol|purge|forget|status``: the face store of a passenger lane box.

Every command takes the box's config (``--config``): the key comes from
``$CREDENTIALS_DIRECTORY/face-key`` or ``faces.key_file``, the store from ``faces.store_path``.
Nothing here prints a document number, a name or face data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.config import AppConfig, load_config
from appliance.errors import ApplianceError
from appliance.faces.crypto import FaceKey, face_key_path
from appliance.faces.templates import TemplateKind, TemplateStore


def _config(args: argparse.Namespace) -> AppConfig:
    return load_config(Path(args.config))


def _store(config: AppConfig) -> TemplateStore:
    return TemplateStore(config.faces.store_path, FaceKey.load(face_key_path(config.faces.key_file)))


def cmd_keygen(args: argparse.Namespace) -> int:
    if args.out:
        path = Path(args.out)
    else:
        config = _config(args)
        if config.faces.key_file is None:
            raise ApplianceError(f"{args.config}: faces.key_file is not set; give --out PATH")
        path = config.faces.key_file
    key = FaceKey.generate(path)
    print(f"face key {key.key_id} written to {path} (mode 0600); keep a copy offline: without it no sealed "
          "template or crop can be read")
    return 0


def cmd_enrol(args: argparse.Namespace) -> int:
    from appliance.faces.embed import FaceEmbedder
    from appliance.faces.enrol import Enroller
    from appliance.lanes.passenger_run import open_face_model

    config = _config(args)
    kind: TemplateKind = "watchlist" if args.watchlist else "reference"
    ttl_s = config.faces.template_retention_days * 86400
    with _store(config) as store:
        key = store.key
        enroller = Enroller(FaceEmbedder(open_face_model(config)), store, key)
        if args.folder:
            done, problems = enroller.enrol_folder(Path(args.folder), ttl_s)
        else:
            if not (args.photo and args.subject):
                raise ApplianceError("enrol needs --folder DIR, or --photo FILE with --subject DOCUMENT_OR_LABEL")
            done, problems = [enroller.enrol(Path(args.photo), args.subject, kind, ttl_s)], []
    references = sum(1 for d in done if d.kind == "reference")
    print(f"enrolled {references} reference and {len(done) - references} watchlist template(s); "
          f"{len(problems)} photo(s) refused")
    for problem in problems:
        print(f"  refused: {problem}")
    return 1 if problems and not done else 0


def cmd_purge(args: argparse.Namespace) -> int:
    with _store(_config(args)) as store:
        removed = store.purge()
    print(f"purged {removed['templates']} expired template(s) and {removed['crops']} expired crop(s)")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    with _store(_config(args)) as store:
        removed = store.forget(store.key.person_ref(args.subject))
    print(f"forgot {removed} template(s) of that subject")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _store(_config(args)) as store:
        counts = store.counts()
        print(f"face store {store.path}: key {store.key.key_id}")
    for name, value in counts.items():
        print(f"  {name}: {value}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    faces = sub.add_parser("faces", help="the passenger lane's face store: key, enrolment, retention")
    fsub = faces.add_subparsers(dest="faces_command", required=True)
    p = fsub.add_parser("keygen", help="create the AES-256 face key (never overwrites one)")
    p.add_argument("--config", help="write it to this config's faces.key_file")
    p.add_argument("--out", help="write it here instead")
    p.set_defaults(func=cmd_keygen)
    p = fsub.add_parser("enrol", help="enrol reference or watchlist photos (the photos are not kept)")
    p.add_argument("--config", required=True)
    p.add_argument("--folder", help="<document number>.jpg references and watchlist/<label>.jpg entries")
    p.add_argument("--photo", help="one photo")
    p.add_argument("--subject", help="with --photo: its document number (reference) or label (watchlist)")
    p.add_argument("--watchlist", action="store_true", help="with --photo: a face-watchlist entry")
    p.set_defaults(func=cmd_enrol)
    p = fsub.add_parser("purge", help="delete expired templates and crops now (the lane also does it hourly)")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_purge)
    p = fsub.add_parser("forget", help="delete every template of one document number or label")
    p.add_argument("--config", required=True)
    p.add_argument("--subject", required=True)
    p.set_defaults(func=cmd_forget)
    p = fsub.add_parser("status", help="counts of templates and crops (no personal data)")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_status)
