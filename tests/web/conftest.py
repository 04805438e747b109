from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from appliance.lanes.crossing import Crossing, FieldResult, SealState
from appliance.reads import BBox, Observation, PlateRead
from appliance.store.db import Store
from appliance.verdicts.rules import Reason, Verdict
from appliance.web.app import WebServices, create_app
from tests.web.auth_helpers import add_user, logged_in

# A tiny valid JPEG (8x8 grey) used as evidence.
JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e1d1a1c1c"
    "20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b080008000801011100ffc4001f000001050101010101010000"
    "0000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191"
    "a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a"
    "737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8"
    "d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9"
)


def seed_store(store: Store) -> None:
    sha = store.put_evidence(JPEG)
    plate = PlateRead("12C-123.45", "VN", "one_line", "yellow", 0.93, BBox(10, 10, 100, 30))
    base = 1_795_000_000.0
    rows = [
        ("cargo-1-1", "CLEAR", (), "301234567890", "12C-123.45"),
        ("cargo-1-2", "HOLD", (Reason("seal_mismatch", "HOLD", "seal", "VNH7654321", "VNH1234567"),),
         "301234567891", "14C-456.78"),
        ("cargo-1-3", "REVIEW", (Reason("container_unread", "REVIEW", "container", None, "MWCU6059784"),),
         "301234567892", "桂A12345"),
    ]
    for i, (cid, decision, reasons, declaration, plate_text) in enumerate(rows):
        crossing = Crossing(
            id=cid, lane_id="cargo-1", started_at=base + 10 * i, ended_at=base + 10 * i + 3,
            tractor_plate=FieldResult(plate_text, 0.93, 4, sha),
            containers=(FieldResult("MWCU6059784", 0.9, 3, None),),
            seal=SealState(True, FieldResult("VNH7654321", 0.8, 2, None)),
            declarations=(declaration,),
            observations=(Observation("front", base + 10 * i, plate, sha),),
        )
        store.save_crossing(crossing, Verdict(decision, reasons, declaration))  # type: ignore[arg-type]


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "web.db", tmp_path / "evidence")
    seed_store(s)
    yield s
    s.close()


@pytest.fixture()
def web_app(store: Store) -> FastAPI:
    return create_app(WebServices(store, "VNHNG", {"lanes": {"cargo-1": {"state": "running"}}}))


@pytest.fixture()
def inspector(web_app: FastAPI, store: Store) -> TestClient:
    """A client logged in as user "inspector" (role inspector)."""
    return logged_in(web_app, store, "inspector")


@pytest.fixture()
def admin(web_app: FastAPI, store: Store) -> TestClient:
    """A client logged in as user "admin" (role admin)."""
    return logged_in(web_app, store, "admin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def live_server(store: Store) -> Iterator[str]:
    port = free_port()
    add_user(store, "inspector", "inspector")
    add_user(store, "admin", "admin")
    with serving(create_app(WebServices(store, "VNHNG")), port) as base:
        yield base


# --- a real browser: Debian's Chromium driven by Playwright (never a downloaded browser) ------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run scripts/setup.sh (it installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A page that records script errors, console errors and warnings and CSP violations: the test
    fails on any. A test that provokes one on purpose lists it in ``page.expected_console``."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    expected: list[str] = []
    page.expected_console = expected  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))

    def console(msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning") and not any(e in msg.text for e in expected):
            problems.append(f"console {msg.type}: {msg.text}")

    page.on("console", console)
    yield page
    page.close()
    assert problems == []


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a loopback port in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("web server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
