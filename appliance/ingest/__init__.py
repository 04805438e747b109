"""Camera and scanner intake: sources, motion gate, bounded queues, runners and replay.

A frame's way in: a :class:`Source` (video file, RTSP/HTTP/USB stream, folder drop) ->
:class:`SourceRunner` thread -> :class:`MotionGate` tags it -> :class:`BoundedFrameQueue` with a
named :class:`DropPolicy` -> analyzers. Offline, :func:`merge_by_time` replays finite sources in
timestamp order in one thread.
"""

from __future__ import annotations

from appliance.ingest.frames import Frame
from appliance.ingest.motion import MotionGate, MotionResult
from appliance.ingest.queues import BoundedFrameQueue, DropPolicy, QueueClosed, QueueStats
from appliance.ingest.runner import SourceRunner, TaggedFrame, merge_by_time
from appliance.ingest.sources import (
    SOURCE_TYPES,
    FolderSource,
    Source,
    StreamSource,
    VideoFileSource,
    open_source,
    redact_url,
)

__all__ = [
    "SOURCE_TYPES",
    "BoundedFrameQueue",
    "DropPolicy",
    "FolderSource",
    "Frame",
    "MotionGate",
    "MotionResult",
    "QueueClosed",
    "QueueStats",
    "Source",
    "SourceRunner",
    "StreamSource",
    "TaggedFrame",
    "VideoFileSource",
    "merge_by_time",
    "open_source",
    "redact_url",
]
