"""The passages pages in a real headless Chromium: a supervisor opens a passage from the list, the face
crop is fetched only when the show-face button is pressed, it loads, and the view is in the audit log."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, Request, expect

from appliance.faces.crypto import FaceKey
from appliance.faces.templates import TemplateStore
from appliance.store.db import Store
from appliance.web.app import WebServices, create_app
from tests.web.auth_helpers import add_user
from tests.web.conftest import free_port, serving
from tests.web.test_browser import sign_in
from tests.web.test_passages import BASE, GOOD, SPOOF, TTL, add_passage, audit, face_jpeg


def test_supervisor_shows_the_face_on_request(page: Page, store: Store, tmp_path: Path) -> None:
    add_user(store, "supervisor", "supervisor")
    with TemplateStore(tmp_path / "faces.db", FaceKey.generate(tmp_path / "face.key")) as faces:
        add_passage(store, "p-manual", SPOOF, BASE, faces.put_crop(face_jpeg(2), "p-manual", TTL))
        add_passage(store, "p-open", GOOD, BASE + 60, faces.put_crop(face_jpeg(1, (120, 96)), "p-open", TTL))
        app = create_app(WebServices(store, "VNHNG", face_crops=faces.get_crop))
        face_requests: list[str] = []

        def seen(request: Request) -> None:
            if request.url.split("?")[0].endswith("/face"):
                face_requests.append(request.url)

        page.on("request", seen)
        with serving(app, free_port()) as base:
            sign_in(page, base, "supervisor", "/passages")
            rows = page.locator("#passages tbody tr")
            expect(rows).to_have_count(2)
            assert rows.first.get_attribute("data-id") == "p-open"
            page.get_by_role("link", name="KIỂM TRA THỦ CÔNG (1)").click()
            expect(rows).to_have_count(1)
            page.get_by_role("link", name="Tất cả").click()
            expect(rows).to_have_count(2)
            rows.first.locator("a").click()
            page.wait_for_url("**/passages/p-open?lang=vi")
            expect(page.locator("#passage-decision")).to_have_text("CHO QUA")
            expect(page.locator('dd[data-key="live"]')).to_have_text("Người thật")
            expect(page.locator("#face-crop")).to_have_count(0)
            assert face_requests == [] and audit(store) == []  # nothing fetched before the click
            page.get_by_role("button", name="Xem ảnh khuôn mặt").click()
            page.wait_for_url("**/passages/p-open?face=1&lang=vi#face")
            img = page.locator("#face-crop")
            expect(img).to_be_visible()
            page.wait_for_function("() => { const i = document.getElementById('face-crop');"
                                   " return i.complete && i.naturalWidth > 0; }")
            assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [96, 120]
            page.screenshot(path=str(tmp_path / "face.png"), full_page=True)
    assert len(face_requests) == 1
    assert audit(store) == [("supervisor", "face_crop.view", "p-open")]
