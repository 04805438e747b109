"""Datasets for retraining, from simulator runs and from inspector-reviewed crossings.

``appliance training export --sim DIR [--sim DIR ...] [--config FILE] --out OUT`` writes::

    OUT/detector/data.yaml                      ultralytics dataset (path, train, val, names)
    OUT/detector/images/{train,val}/<id>_<frame>.jpg
    OUT/detector/labels/{train,val}/<id>_<frame>.txt   YOLO "class cx cy w h" (0..1), empty: no object
    OUT/recognizer/{train,val}/<id>_<n>.png     text crops
    OUT/recognizer/{train,val}/labels.txt       "<file name>\\t<text>" per line (PaddleOCR rec_gt)
    OUT/recognizer/{train,val}/meta.jsonl       per crop: class, source, unit, ...
    OUT/manifest.json                           sources, split rule, classes, counts, command

Detector classes: 0 plate, 1 container_number, 2 seal, 3 fleet_id. ``<id>`` is the split unit
(a simulated vehicle ``sim<seed>-V0001``, or a crossing id): all samples of one unit go to the
same split. Simulator runs feed both sets; a store's evidence crops only the recogniser set
(they have no full frame). Nothing under ``../shared/eval`` is ever read.
"""

from __future__ import annotations

from appliance.errors import ApplianceError


class ExportError(ApplianceError):
    """A training export that cannot run, or that would export nothing."""
