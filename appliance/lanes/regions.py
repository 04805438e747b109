"""Where to look on a camera's frame: the region the motion gate saw change recently.

Text detection costs in proportion to the pixels it looks at, and in a lane the only text that
matters is on the vehicle, which is what moves. So the lane detects text only inside the union
of the motion gate's boxes over the last ``window_s`` seconds, grown by ``pad`` (a share of the
frame's longer side) because the gate works on a coarse, downscaled image. The detector keeps
the whole frame's scale inside the region, so text is found at the same size as before.

When the gate still says "moving" (its hysteresis) but has seen no change within the window,
the vehicle has stopped or left where change was last seen: that last region is kept for up to
``hold_s``. With no box at all for longer, the answer is ``None``: the whole frame. That is the
safe side: a region is only ever a saving, never a reason to miss a vehicle.
"""

from __future__ import annotations

from collections import deque

from appliance.reads import BBox

MotionBox = tuple[int, int, int, int]  # x, y, w, h in full-frame pixels


class MotionRegion:
    """The analysis region of one camera, fed with every frame's motion box."""

    def __init__(self, window_s: float = 0.5, hold_s: float = 2.0, pad: float = 0.04, min_share: float = 0.85):
        self.window_s = window_s
        self.hold_s = hold_s
        self.pad = pad
        # A region covering nearly the whole frame saves nothing: use the whole frame.
        self.min_share = min_share
        self._boxes: deque[tuple[float, MotionBox]] = deque()
        self._last: tuple[float, MotionBox] | None = None  # the newest box, kept past the window

    def update(self, ts: float, box: MotionBox | None) -> None:
        if box is not None:
            self._boxes.append((ts, box))
            self._last = (ts, box)
        while self._boxes and self._boxes[0][0] < ts - self.window_s:
            self._boxes.popleft()
        if self._last is not None and self._last[0] < ts - self.hold_s:
            self._last = None

    def region(self, width: int, height: int) -> BBox | None:
        """The region to analyse on a ``width`` x ``height`` frame, or None for the whole frame."""
        boxes = self._boxes or ([self._last] if self._last is not None else [])
        if not boxes:
            return None
        x0 = min(b[0] for _, b in boxes)
        y0 = min(b[1] for _, b in boxes)
        x1 = max(b[0] + b[2] for _, b in boxes)
        y1 = max(b[1] + b[3] for _, b in boxes)
        grow = int(self.pad * max(width, height))
        x0, y0 = max(0, x0 - grow), max(0, y0 - grow)
        x1, y1 = min(width, x1 + grow), min(height, y1 + grow)
        if x1 <= x0 or y1 <= y0:
            return None
        if (x1 - x0) * (y1 - y0) >= self.min_share * width * height:
            return None
        return BBox(x0, y0, x1 - x0, y1 - y0)
