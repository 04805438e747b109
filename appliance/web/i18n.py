"""UI text in Vietnamese (the default), English and Chinese, from gettext catalogues.

The catalogues are ``appliance/web/locale/<lang>/LC_MESSAGES/messages.po``. Their msgids are
stable keys (``title``, ``HOLD``, ``err_bad_time``), their msgstrs the text. They are read at
import with Babel's ``read_po``: no compiled .mo files to keep in step and no build step; the .po
files ship as package data. ``make i18n-extract`` re-extracts the keys the code uses (babel.cfg,
appliance/web/i18n_extract.py) and merges them into the three catalogues; tests/web/test_i18n.py
fails while a key lacks a translation in any of them.

Templates look text up as ``{{ t.<key> }}``, ``{{ t[<key>] }}`` or ``{{ _(<key>) }}`` (Jinja2's i18n
extension, with the request language's ``gettext``); Python code as ``translator(lang)[<key>]``.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("vi", "en", "zh")
DEFAULT_LANGUAGE = "vi"
LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"


def N_(key: str) -> str:
    """Marks a key for extraction without translating it (gettext's ``gettext_noop``)."""
    return key


# Keys the code builds at run time (``t["role_" ~ user.role]``, ``t[error]``, ``t[c.decision]``),
# so that ``make i18n-extract`` keeps them: every other key is found where it is used.
DYNAMIC_KEYS = (
    # verdicts, review states and decisions (review.py, crossing.html)
    N_("CLEAR"), N_("REVIEW"), N_("HOLD"),
    N_("reviewed_approve"), N_("reviewed_hold"),
    N_("action_approve"), N_("action_hold"), N_("action_correct"),
    N_("done_approve"), N_("done_hold"), N_("done_correct"),
    # fields and comparison states of the review page (review_view.py)
    N_("trailer_plate"), N_("fleet_id"), N_("plate"), N_("seal"), N_("container_new"),
    N_("match"), N_("mismatch"), N_("not_read"), N_("not_declared"),
    # decision errors (appliance/store/decisions.py: DecisionError codes, as err_<code>)
    N_("err_bad_time"), N_("err_container_check_digit"), N_("err_invalid_declaration"), N_("err_invalid_evidence"),
    N_("err_invalid_seal"), N_("err_invalid_value"), N_("err_no_such_crossing"), N_("err_reason_required"),
    N_("err_reason_too_long"), N_("err_unknown_action"), N_("err_unknown_field"), N_("err_value_required"),
    N_("err_value_unchanged"),
    # logins, roles and user administration (login.py, admin.py, appliance/store/users.py: AccountError codes)
    N_("login_failed"), N_("login_locked"),
    N_("role_inspector"), N_("role_supervisor"), N_("role_model_engineer"), N_("role_admin"),
    N_("done_created"), N_("done_disabled"), N_("done_password"),
    N_("cannot_disable_self"), N_("invalid_role"), N_("invalid_username"), N_("no_such_user"),
    N_("password_too_long"), N_("password_too_short"), N_("user_exists"),
    # lane and source states of the status page (status_view.py)
    N_("lane_running"), N_("lane_finished"),
    N_("src_connected"), N_("src_disconnected"), N_("src_ended"), N_("src_waiting"),
    # general words kept for forms
    N_("save"),
)


def language(lang: str | None) -> str:
    """``lang`` when the UI has it, else Vietnamese."""
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def catalogue_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def catalogue(lang: str) -> Catalog:
    """The parsed .po catalogue of ``lang`` (one of LANGUAGES)."""
    with catalogue_path(lang).open("rb") as fh:
        return read_po(fh, locale=lang, domain=DOMAIN)


@cache
def translations(lang: str) -> Translations:
    """gettext translations of ``lang`` (for Jinja2's i18n extension and ``_()``)."""
    buf = io.BytesIO()
    write_mo(buf, catalogue(language(lang)))
    buf.seek(0)
    return Translations(buf, domain=DOMAIN)


def translated(lang: str) -> dict[str, str]:
    """The keys that ``lang``'s catalogue translates (fuzzy entries do not count), with their text."""
    return {str(m.id): str(m.string) for m in catalogue(lang) if m.id and m.string and not m.fuzzy}


@cache
def _texts(lang: str) -> dict[str, str]:
    if lang == DEFAULT_LANGUAGE:
        return translated(lang)
    # A key missing in this language shows in Vietnamese (tests/web/test_i18n.py forbids that anyway).
    return _texts(DEFAULT_LANGUAGE) | translated(lang)


def translator(lang: str) -> dict[str, str]:
    """All UI strings in ``lang`` by key (Vietnamese when the language is unknown)."""
    return dict(_texts(language(lang)))


# Every key with its text per language (as the UI text was kept before the catalogues).
TEXT: dict[str, dict[str, str]] = {}
for _lang in LANGUAGES:
    for _key, _text in translated(_lang).items():
        TEXT.setdefault(_key, {})[_lang] = _text
