"""Which models a running appliance has loaded, and the execution provider each really runs on.

``model_status(readers)`` finds every ``OnnxModel`` held by the readers (the OCR detector and
recogniser today, any model a reader adds later) and describes it for ``/api/status``.
"""

from __future__ import annotations

from typing import Any

from appliance.inference.session import OnnxModel
from appliance.inference.slots import ModelSlot

_MAX_DEPTH = 5


def loaded_models(*roots: object) -> list[OnnxModel]:
    """The distinct OnnxModel objects reachable from ``roots`` through the project's own objects."""
    found: dict[int, OnnxModel] = {}
    seen: set[int] = set()

    def walk(obj: object, depth: int) -> None:
        if isinstance(obj, OnnxModel):
            found.setdefault(id(obj), obj)
            return
        if isinstance(obj, ModelSlot):  # the model it serves now (not a shadow candidate)
            found.setdefault(id(obj.active), obj.active)
            return
        if depth <= 0 or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, dict):
            children: list[Any] = list(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            children = list(obj)
        elif type(obj).__module__.startswith("appliance.") and hasattr(obj, "__dict__"):
            children = list(vars(obj).values())
        else:
            return
        for child in children:
            walk(child, depth - 1)

    for root in roots:
        walk(root, _MAX_DEPTH)
    return list(found.values())


def describe(model: OnnxModel) -> dict[str, Any]:
    m = model.manifest
    return {"task": m.task, "name": m.name, "version": m.version, "file": model.path.name,
            "providers": list(model.providers), "provider": model.providers[0] if model.providers else None}


def model_status(*roots: object) -> list[dict[str, Any]]:
    """``describe`` of every model reachable from ``roots``, sorted by task and name."""
    return sorted((describe(m) for m in loaded_models(*roots)), key=lambda d: (d["task"], d["name"], d["version"]))
