"""UI text through gettext catalogues: every key translated in vi, en and zh; the catalogues hold
exactly the keys the code uses (as ``make i18n-extract`` finds them); ``?lang=`` and ``_()`` work."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from fastapi import FastAPI
from fastapi.testclient import TestClient

from appliance.web.i18n import LANGUAGES, TEXT, catalogue_path, translations, translator
from appliance.web.i18n_extract import keys_in

ROOT = Path(__file__).resolve().parents[2]


def read(lang: str) -> Catalog:
    with catalogue_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang)


def used_keys() -> set[str]:
    """The keys `make i18n-extract` finds (babel.cfg and appliance/web/i18n_extract.py)."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    return {str(msg[2]) for msg in extract_from_dir(str(ROOT), method_map, options_map)}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_msgid_has_a_translation(lang: str) -> None:
    catalog = read(lang)
    missing = sorted(str(m.id) for m in catalog if m.id and (not m.string or not str(m.string).strip()))
    fuzzy = sorted(str(m.id) for m in catalog if m.id and m.fuzzy)
    assert not missing, f"{catalogue_path(lang)}: no {lang} text for {missing}"
    assert not fuzzy, f"{catalogue_path(lang)}: fuzzy (unchecked) entries {fuzzy}"
    assert not catalog.obsolete, f"{catalogue_path(lang)}: obsolete entries {sorted(catalog.obsolete)}"


def test_the_three_catalogues_have_the_same_keys_as_the_code() -> None:
    keys = {lang: {str(m.id) for m in read(lang) if m.id} for lang in LANGUAGES}
    assert keys["vi"] == keys["en"] == keys["zh"]
    used = used_keys()
    assert used - keys["vi"] == set(), "keys used but not in the catalogues: run `make i18n-extract`, then translate"
    assert keys["vi"] - used == set(), ("keys no code uses: remove them, or list the ones built at run time "
                                        "with N_() in DYNAMIC_KEYS (appliance/web/i18n.py)")
    with (ROOT / "appliance/web/locale/messages.pot").open("rb") as fh:
        assert {str(m.id) for m in read_po(fh) if m.id} == used, "messages.pot is stale: run `make i18n-extract`"


def test_extractor_finds_each_lookup_form() -> None:
    template = '{{ t.title }} {{ t["HOLD"] }} {{ t.get("plate", r.kind) }} {{ _("login") }} {{ dt.x }} {{ fmt.y }}'
    assert [k for _, k in keys_in(template)] == ["title", "HOLD", "plate", "login"]
    python = 't["state_pending"]; N_("role_admin"); stats.t.nothing; t.attribute_in_python'
    assert [k for _, k in keys_in(python, attributes=False)] == ["state_pending", "role_admin"]


def test_translator_gettext_and_text_agree() -> None:
    for lang in LANGUAGES:
        t, gettext = translator(lang), translations(lang).gettext
        assert t and all(gettext(key) == text for key, text in t.items())
        assert all(TEXT[key][lang] == text for key, text in t.items())
    assert translator("fr") == translator("vi")  # unknown languages fall back to Vietnamese
    assert translator("zh")["HOLD"] == "扣留" and translator("en")["status"] == "Lane status"


def test_templates_get_the_request_languages_gettext(web_app: FastAPI) -> None:
    env = web_app.state.templates.env
    source = '{{ _("login") }}|{% trans %}logout{% endtrans %}|{{ t.search }}'
    for lang, expected in (("vi", "Đăng nhập|Đăng xuất|Tra cứu"), ("zh", "登录|退出登录|查询")):
        rendered = env.from_string(source).render(gettext=translations(lang).gettext,
                                                  ngettext=translations(lang).ngettext, t=translator(lang))
        assert rendered == expected


def test_lang_parameter_still_switches_every_page(web_app: FastAPI, inspector: TestClient) -> None:
    assert "Đăng nhập" in TestClient(web_app).get("/login").text
    assert ">登录<" in TestClient(web_app).get("/login?lang=zh").text
    assert "Log in" in TestClient(web_app).get("/login?lang=en").text
    assert "Tra cứu" in inspector.get("/search").text and "Search in" in inspector.get("/search?lang=en").text


def test_catalogues_ship_as_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"web/locale/*/LC_MESSAGES/*.po"' in text
    for lang in LANGUAGES:
        assert io.BytesIO(catalogue_path(lang).read_bytes()).read(1)
