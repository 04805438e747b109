"""``appliance users create-admin|list``, ``appliance audit verify`` and the audit chain itself."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.store.db import Store
from appliance.store.users import Accounts, LoginRefused

CONFIG = """\
site: {gate: VNHNG, box_id: lane1-box}
lanes:
  - id: cargo-1
    sources: [{id: front, type: video_file, role: front, path: front.avi}]
storage: {path: var/appliance.db, evidence_dir: var/evidence}
"""
GOOD = "a long enough passphrase"


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "lane.yaml"
    path.write_text(CONFIG)
    return path


def secret_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "password.txt"
    path.write_text(text + "\n")
    return str(path)


def open_store(config: Path) -> Store:
    return Store(config.parent / "var/appliance.db", config.parent / "var/evidence")


def test_create_admin_refuses_a_short_password(config: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["users", "create-admin", "--config", str(config), "--username", "root",
               "--password-file", secret_file(tmp_path, "short")])
    assert rc == 2 and "12 characters" in capsys.readouterr().err
    store = open_store(config)
    assert Accounts(store).list_users() == []
    store.close()


def test_create_admin_from_a_password_file_then_login(config: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = ["users", "create-admin", "--config", str(config), "--username", "Chief",
            "--password-file", secret_file(tmp_path, GOOD)]
    assert main(args) == 0
    assert GOOD not in capsys.readouterr().out
    store = open_store(config)
    accounts = Accounts(store)
    _, session = accounts.login("chief", GOOD, "127.0.0.1")
    assert session.user.role == "admin" and session.user.has_role("supervisor", "model_engineer")
    with pytest.raises(LoginRefused):
        accounts.login("chief", GOOD + "x", "127.0.0.1")
    store.close()
    # A second admin needs --force (it also recovers a forgotten admin password).
    assert main([*args[:5], "second", *args[6:]]) == 2
    assert main([*args, "--force"]) == 0
    assert main(["users", "list", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "chief" in out and "admin" in out and "second" not in out


def test_create_admin_prompts_twice(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([GOOD, GOOD + "!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["users", "create-admin", "--config", str(config), "--username", "root"]) == 2  # they differ
    answers = iter([GOOD, GOOD])
    assert main(["users", "create-admin", "--config", str(config), "--username", "root"]) == 0


def test_audit_chain_detects_tampering(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(config)
    for i in range(5):
        store.append_audit("admin", "user_created", f"user{i}", {"role": "inspector"})
    store.close()
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("ok: 5 audit entries")

    db = sqlite3.connect(config.parent / "var/appliance.db")
    db.execute("UPDATE audit_log SET target = 'someone-else' WHERE id = 3")
    db.commit()
    db.close()
    store = open_store(config)
    assert store.verify_audit_chain() == 3
    store.close()
    assert main(["audit", "verify", "--config", str(config)]) == 1
    assert "BROKEN: audit entry 3" in capsys.readouterr().out


@pytest.mark.parametrize(("tamper", "first_broken"), [
    ("DELETE FROM audit_log WHERE id = 2", 3),
    ("UPDATE audit_log SET details_json = '{\"role\":\"admin\"}' WHERE id = 2", 2),
    ("UPDATE audit_log SET ts = ts + 1 WHERE id = 2", 2),
    ("UPDATE audit_log SET actor = 'x', hash = 'f' || substr(hash, 2) WHERE id = 2", 2),
])
def test_any_change_breaks_the_chain(tmp_path: Path, tamper: str, first_broken: int) -> None:
    store = Store(tmp_path / "a.db", tmp_path / "ev")
    for i in range(4):
        store.append_audit("admin", "user_created", f"user{i}", {"role": "inspector"})
    assert store.verify_audit_chain() is None
    with store.transaction() as conn:
        conn.execute(tamper)
    assert store.verify_audit_chain() == first_broken
    store.close()


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    stores = [Store(tmp_path / "a.db", tmp_path / "ev") for _ in range(3)]  # three connections, as three processes

    def write(store: Store, n: int) -> None:
        for i in range(40):
            store.append_audit(f"writer{n}", "decision", f"crossing-{i}", {"i": i})

    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].verify_audit_chain() is None
    assert stores[0].query("SELECT COUNT(*) FROM audit_log")[0][0] == 120
    for s in stores:
        s.close()
