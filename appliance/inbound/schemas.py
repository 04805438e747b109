"""JSON Schemas of the inbound messages, generated from the pydantic models.

The committed files in ``docs/schemas/`` must equal ``generate()`` (a test checks it); after a
change to appliance/inbound/messages.py run ``python -m appliance.inbound.schemas`` to rewrite them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from appliance.inbound.messages import (
    MANIFEST_SCHEMA,
    WATCHLIST_SCHEMA,
    ManifestEvent,
    WatchlistEvent,
)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"

_DOCS: dict[str, tuple[type[ManifestEvent] | type[WatchlistEvent], str, str]] = {
    "manifest.v1.json": (
        ManifestEvent, MANIFEST_SCHEMA,
        "Pre-arrival manifest from central, version 1 (CloudEvents 1.0 JSON envelope). An entry replaces "
        "the box's entry of the same declaration; cancel withdraws declarations. Boxes apply each id once.",
    ),
    "watchlist.v1.json": (
        WatchlistEvent, WATCHLIST_SCHEMA,
        "Watchlist changes from central, version 1 (CloudEvents 1.0 JSON envelope). Plates and containers "
        "on an active entry make the verdict HOLD; persons are kept only as a salted SHA-256.",
    ),
}


def generate() -> dict[str, str]:
    """File name -> the text of its JSON Schema (2020-12)."""
    out: dict[str, str] = {}
    for name, (model, schema_id, description) in _DOCS.items():
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": schema_id,
            **model.model_json_schema(),
        }
        schema["description"] = description
        out[name] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return out


def write(folder: Path = SCHEMA_DIR) -> list[Path]:
    written = []
    for name, text in generate().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR):
        print(path)
