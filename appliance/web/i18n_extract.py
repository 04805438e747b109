"""Babel extraction method for the UI's message keys (see babel.cfg and ``make i18n-extract``).

UI text is looked up by stable keys, so the usual gettext keywords alone would miss most of it.
This method finds, line by line:

- ``t.<key>`` in templates (``attributes = yes`` in babel.cfg; not in Python, where ``t.`` may be anything),
- ``t[<key>]`` and ``t.get(<key>, ...)`` with a quoted key (templates and Python),
- ``_(<key>)``, ``gettext(<key>)`` and ``N_(<key>)`` with a quoted key (``N_`` marks the keys that the
  code builds at run time, listed in appliance/web/i18n.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import IO, Any

_KEY = r"(['\"])([A-Za-z][A-Za-z0-9_]*)\1"
ATTRIBUTE = re.compile(r"(?<![\w.])t\.(?!get\b)([A-Za-z][A-Za-z0-9_]*)")
LOOKUPS = (
    re.compile(r"(?<![\w.])t\[\s*" + _KEY + r"\s*\]"),
    re.compile(r"(?<![\w.])t\.get\(\s*" + _KEY),
    re.compile(r"(?<![\w.])(?:_|N_|gettext)\(\s*" + _KEY + r"\s*\)"),
)


def keys_in(text: str, attributes: bool = True) -> Iterator[tuple[int, str]]:
    """(line number, key) of every key looked up in ``text``."""
    for lineno, line in enumerate(text.splitlines(), 1):
        if attributes:
            for m in ATTRIBUTE.finditer(line):
                yield lineno, m.group(1)
        for pattern in LOOKUPS:
            for m in pattern.finditer(line):
                yield lineno, m.group(2)


def extract_keys(
    fileobj: IO[bytes], keywords: Mapping[str, Any], comment_tags: Any, options: Mapping[str, Any]
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel's extraction-method interface: ``(lineno, funcname, message, comments)`` per key."""
    text = fileobj.read().decode(options.get("encoding", "utf-8"))
    attributes = str(options.get("attributes", "yes")).lower() in ("yes", "true", "1")
    for lineno, key in keys_in(text, attributes):
        yield lineno, "_", key, []
