"""Frame analysis helpers that decide what a frame's text means for the lane."""

from __future__ import annotations

from appliance.lanes.analysis import _unreadable_serial
from appliance.reads import BBox, TextLine


def test_badly_read_serial_text_counts_as_an_unreadable_seal() -> None:
    def line(text: str, x: int) -> TextLine:
        return TextLine(text, 0.6, BBox(x, 100, 120, 20))

    assert _unreadable_serial([line("YHEZ00400", 500)], []) == BBox(500, 100, 120, 20)
    # Explained text (a container number, a plate) and text too short or with too few digits is not.
    assert _unreadable_serial([line("YHEZ00400", 500)], [BBox(490, 95, 150, 30)]) is None
    assert _unreadable_serial([line("097.47", 500), line("HOTLINE", 700), line("桂P2664挂", 900)], []) is None
